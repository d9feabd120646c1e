"""Facts derived once from evidence, shared by the checks, the diagnosis step and the report."""
