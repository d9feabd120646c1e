"""A WSGI app serving pool status (JSON or Prometheus text); mount it in Flask or Django."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pooldoctor.app.respond import engines_by_label, respond

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def pool_status_wsgi(engines: Any) -> WSGIApp:
    """A WSGI app for one engine or a mapping of label -> engine."""
    labelled = engines_by_label(engines)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        response = respond(
            labelled,
            method,
            path or "/",
            environ.get("QUERY_STRING", ""),
            environ.get("HTTP_ACCEPT", ""),
        )
        start_response(
            f"{response.status} {response.reason}",
            [
                ("Content-Type", response.content_type),
                ("Content-Length", str(len(response.body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [b"" if method == "HEAD" else response.body]

    return app
