"""pytest plugin (entry point pytest11): fail tests that leave connections checked out."""
