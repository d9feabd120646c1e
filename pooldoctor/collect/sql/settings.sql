-- The settings a fresh session of this role starts with (reset_val ignores pooldoctor's own SETs).
-- Asking by name makes the query version-aware: a setting this server lacks is simply absent.
SELECT name, reset_val, unit
FROM pg_settings
WHERE name = ANY(%(names)s)
ORDER BY name
