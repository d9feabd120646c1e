-- Bound everything pooldoctor's own session does, and make it unable to write.
SELECT
    set_config('statement_timeout', %(statement_timeout)s, false),
    set_config('lock_timeout', %(lock_timeout)s, false),
    set_config('idle_in_transaction_session_timeout', %(idle_in_transaction_timeout)s, false),
    set_config('default_transaction_read_only', 'on', false)
