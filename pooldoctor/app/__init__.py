"""The app side: instrument an engine, report its pool, serve that over ASGI/WSGI."""

from pooldoctor.app.asgi import pool_status_asgi
from pooldoctor.app.instrument import instrument, instrumented_engines, uninstrument
from pooldoctor.app.status import pool_status
from pooldoctor.app.wsgi import pool_status_wsgi

__all__ = [
    "instrument",
    "instrumented_engines",
    "pool_status",
    "pool_status_asgi",
    "pool_status_wsgi",
    "uninstrument",
]
