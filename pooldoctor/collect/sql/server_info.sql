-- Who and what pooldoctor is connected to.
SELECT
    current_setting('server_version') AS server_version,
    current_setting('server_version_num')::integer AS server_version_num,
    current_user AS user_name,
    current_setting('is_superuser') = 'on' AS is_superuser
