-- One pg_stat_activity snapshot stamped with the server's clock, excluding pooldoctor's backend.
-- Auxiliary processes (checkpointer, walwriter, launchers...) hold no connection slot and have no
-- database: they are skipped. Client backends and walsenders are always kept; for rows this role
-- may not inspect, backend_type is hidden but datname is not, so client backends still show;
-- a hidden row without a role is an autovacuum or background worker, not a client.
-- pg_blocking_pids() takes lock-manager locks: only call it where a lock wait is possible.
-- lock_wait_start is pg_locks.waitstart on PostgreSQL 14+ (lock_wait_start.sql), NULL before.
WITH activity AS (
    SELECT
        pid,
        usename,
        datname,
        application_name,
        host(client_addr) AS client_addr,
        backend_type,
        state,
        backend_start,
        xact_start,
        query_start,
        state_change,
        wait_event_type,
        wait_event,
        CASE WHEN wait_event_type = 'Lock' OR query = '<insufficient privilege>'
            THEN pg_blocking_pids(pid) END AS blocking_pids,
        {lock_wait_start} AS lock_wait_start,
        left(query, %(query_chars)s) AS query
    FROM pg_stat_activity AS a
    WHERE pid <> pg_backend_pid()
        AND (datname IS NOT NULL OR backend_type IN ('client backend', 'walsender'))
        AND (backend_type IS NOT NULL OR usesysid IS NOT NULL)
)
SELECT clock.sampled_at, activity.*
FROM (SELECT clock_timestamp() AS sampled_at) AS clock
LEFT JOIN activity ON true
ORDER BY activity.backend_start, activity.pid
