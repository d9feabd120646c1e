-- PostgreSQL 16+: login roles that may use the reserved_connections slots.
SELECT rolname
FROM pg_roles
WHERE rolcanlogin AND NOT rolsuper AND pg_has_role(oid, 'pg_use_reserved_connections', 'USAGE')
ORDER BY rolname
