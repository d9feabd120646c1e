-- Per-role and per-database connection limits with the client connections counted against them.
SELECT 'role' AS kind, r.rolname AS name, r.rolconnlimit AS connection_limit,
    (SELECT count(*) FROM pg_stat_activity a
     WHERE a.usesysid = r.oid AND a.backend_type = 'client backend') AS current_count
FROM pg_roles r
WHERE r.rolconnlimit >= 0
UNION ALL
SELECT 'database', d.datname, d.datconnlimit,
    (SELECT count(*) FROM pg_stat_activity a
     WHERE a.datid = d.oid AND a.backend_type = 'client backend')
FROM pg_database d
WHERE d.datconnlimit >= 0
ORDER BY 1, 2
