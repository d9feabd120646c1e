-- Who and what pooldoctor is connected to, and whether it may see other roles' sessions:
-- without pg_read_all_stats (pg_monitor has it) their state, query and backend_type read NULL.
-- in_recovery: this server is a standby (after a failover, the old primary demoted).
SELECT
    current_setting('server_version') AS server_version,
    current_setting('server_version_num')::integer AS server_version_num,
    current_user AS user_name,
    current_setting('is_superuser') = 'on' AS is_superuser,
    pg_has_role('pg_read_all_stats', 'USAGE') AS can_read_all_stats,
    pg_is_in_recovery() AS in_recovery
