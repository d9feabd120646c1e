-- PostgreSQL 14+: when a lock waiter began waiting (pg_locks.waitstart), only for lock waiters.
CASE WHEN a.wait_event_type = 'Lock'
    THEN (SELECT min(l.waitstart) FROM pg_locks AS l WHERE l.pid = a.pid AND NOT l.granted) END
