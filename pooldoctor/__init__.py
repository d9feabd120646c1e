"""pooldoctor: diagnose database connection pool exhaustion from live evidence."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pooldoctor")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

_APP_EXPORTS = ("instrument", "uninstrument", "pool_status", "pool_status_asgi", "pool_status_wsgi")


def __getattr__(name: str) -> object:
    """Lazy re-exports of the app side, so `import pooldoctor` does not import SQLAlchemy."""
    if name in _APP_EXPORTS:
        from pooldoctor import app

        return getattr(app, name)
    raise AttributeError(f"module 'pooldoctor' has no attribute {name!r}")
