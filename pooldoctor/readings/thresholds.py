"""Thresholds that more than one place judges by, each defined once with its reason."""

from __future__ import annotations

# No web request legitimately holds a session past a gateway timeout: a transaction or checkout
# open this long is stuck (a leak when it persists), for the checks and the report alike.
STUCK_SECONDS = 60.0
# An OLTP web query running longer than this holds its connection too long.
SLOW_QUERY_SECONDS = 5.0
# Generous for web requests, bounds runaway queries: the statement_timeout findings suggest.
SUGGESTED_STATEMENT_TIMEOUT = 60
# Enough of a query to recognise it, in a finding's evidence and in the report.
QUERY_PREVIEW_CHARS = 160
# Log errors this close to collection describe the incident in progress.
RECENT_SECONDS = 15 * 60
# Older than this a burst is history: timeline material, not a cause.
HISTORY_SECONDS = 6 * 3600
# Recency weight an old burst keeps, enough for a low-confidence INFO.
HISTORY_WEIGHT = 0.1
# Fewer app backends than this is a quiet database: too little to judge.
MIN_APP_BACKENDS = 3
# pids/holders listed in a finding's evidence before truncating.
MAX_LISTED = 10
