"""pooldoctor: diagnose database connection pool exhaustion from live evidence."""

# The package version (pyproject.toml reads it from here): a literal, so starting the CLI does
# not pay for importlib.metadata.
__version__ = "0.1.0"

_APP_EXPORTS = ("instrument", "uninstrument", "pool_status", "pool_status_asgi", "pool_status_wsgi")


def __getattr__(name: str) -> object:
    """Lazy re-exports of the app side, so `import pooldoctor` does not import SQLAlchemy."""
    if name in _APP_EXPORTS:
        from pooldoctor import app

        return getattr(app, name)
    raise AttributeError(f"module 'pooldoctor' has no attribute {name!r}")
