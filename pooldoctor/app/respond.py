"""Framework-neutral request handling shared by the ASGI app, the WSGI app and Django views."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from pooldoctor.app import prometheus
from pooldoctor.app.status import pool_status
from pooldoctor.status_schema import ENGINES_KEY

JSON_CONTENT_TYPE = "application/json"
DEFAULT_ENGINE_LABEL = "default"


@dataclass(frozen=True)
class Response:
    """What to send back: status code, content type and body bytes."""

    status: int
    content_type: str
    body: bytes

    @property
    def reason(self) -> str:
        return {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(self.status, "")


def engines_by_label(engines: Any) -> dict[str, Any]:
    """Accept one engine or a mapping of label -> engine; return the mapping."""
    if isinstance(engines, Mapping):
        if not engines:
            raise ValueError("no engines given")
        return {str(label): engine for label, engine in engines.items()}
    return {DEFAULT_ENGINE_LABEL: engines}


def wants_prometheus(path: str, query: Mapping[str, list[str]], accept: str) -> bool:
    """Prometheus text for `.../metrics`, `?format=prometheus`, or an Accept of text/plain."""
    if path.rstrip("/").endswith("/metrics") or path == "metrics":
        return True
    if "prometheus" in query.get("format", []):
        return True
    if "json" in query.get("format", []):
        return False
    media = [part.split(";")[0].strip().lower() for part in accept.split(",") if part.strip()]
    return "text/plain" in media and "application/json" not in media


def _json(status: int, body: object) -> Response:
    return Response(status, JSON_CONTENT_TYPE, json.dumps(body, indent=2).encode() + b"\n")


def respond(
    engines: Mapping[str, Any], method: str, path: str, query_string: str, accept: str
) -> Response:
    """Answer one request for pool status: JSON for one engine, all engines, or Prometheus."""
    if method not in ("GET", "HEAD"):
        return _json(405, {"error": "only GET and HEAD are supported"})
    query = parse_qs(query_string)
    selected = dict(engines)
    wanted = query.get("engine", [])
    if wanted:
        selected = {label: engines[label] for label in wanted if label in engines}
        if not selected:
            return _json(404, {"error": "unknown engine", "engines": sorted(engines)})
    if wants_prometheus(path, query, accept):
        return Response(200, prometheus.CONTENT_TYPE, prometheus.exposition(selected))
    payloads = {label: pool_status(engine) for label, engine in selected.items()}
    if len(payloads) == 1:
        return _json(200, next(iter(payloads.values())))
    return _json(200, {ENGINES_KEY: payloads})
