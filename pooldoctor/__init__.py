"""pooldoctor: diagnose database connection pool exhaustion from live evidence."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pooldoctor")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"
