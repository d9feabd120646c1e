"""Collectors: I/O only, one module per source; every call is bounded and none raises."""
