"""Checks: pure functions from Evidence to Findings, one module per failure family."""
