"""An ASGI app serving pool status (JSON or Prometheus text); mount it in FastAPI or Starlette."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pooldoctor.app.respond import engines_by_label, respond

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def pool_status_asgi(engines: Any) -> ASGIApp:
    """An ASGI 3 app for one engine or a mapping of label -> engine (Engine or AsyncEngine)."""
    labelled = engines_by_label(engines)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise ValueError(f"pooldoctor pool status app serves http only, not {scope['type']}")
        response = respond(
            labelled,
            scope.get("method", "GET"),
            scope.get("path", "/"),
            bytes(scope.get("query_string", b"")).decode("latin-1"),
            _header(scope, b"accept"),
        )
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (b"content-type", response.content_type.encode()),
                    (b"content-length", str(len(response.body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        body = b"" if scope.get("method") == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body})

    return app
