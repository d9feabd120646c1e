"""The pool-status endpoints: WSGI under a real wsgiref server, ASGI called with real messages."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import sqlalchemy as sa

import pooldoctor
from pooldoctor.app.prometheus import exposition
from pooldoctor.lab.cluster import TempCluster

HTTP_TIMEOUT = 5.0


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def engines(pg: TempCluster) -> Iterator[dict[str, sa.Engine]]:
    primary = sa.create_engine(pg.url(), pool_size=3, max_overflow=2, pool_timeout=7)
    replica = sa.create_engine(pg.url(), poolclass=sa.NullPool)
    pooldoctor.instrument(primary)
    yield {"primary": primary, "replica": replica}
    pooldoctor.uninstrument(primary)
    primary.dispose()
    replica.dispose()


@pytest.fixture
def wsgi_url(engines: dict[str, sa.Engine]) -> Iterator[str]:
    server: WSGIServer = make_server(
        "127.0.0.1", 0, pooldoctor.pool_status_wsgi(engines), handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(HTTP_TIMEOUT)


def _get(url: str, accept: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        body = error.read().decode()
        content_type = error.headers["Content-Type"]
        error.close()
        return error.code, content_type, body


def test_wsgi_serves_one_engine_as_the_collector_payload(
    wsgi_url: str, engines: dict[str, sa.Engine]
) -> None:
    with engines["primary"].connect():
        status, content_type, body = _get(f"{wsgi_url}/pool?engine=primary")
    assert status == 200
    assert content_type == "application/json"
    payload = json.loads(body)
    assert payload["size"] == 3
    assert payload["checked_out"] == 1
    assert payload["max_overflow"] == 2
    assert payload["timeout"] == 7.0
    assert payload["pool_class"] == "QueuePool"
    [holder] = payload["holders"]
    assert holder["origin"].startswith("tests/test_app_endpoints.py:")
    assert payload["counters"]["checkouts"] == 1


def test_wsgi_serves_all_engines_and_prometheus(
    wsgi_url: str, engines: dict[str, sa.Engine]
) -> None:
    _, _, body = _get(f"{wsgi_url}/")
    assert set(json.loads(body)["engines"]) == {"primary", "replica"}
    with engines["primary"].connect():
        status, content_type, text = _get(f"{wsgi_url}/pooldoctor/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    pool = 'db_client_connection_pool_name="primary"'
    assert f'db_client_connection_count{{{pool},db_client_connection_state="used"}} 1.0' in text
    assert f'db_client_connection_count{{{pool},db_client_connection_state="idle"}}' in text
    assert f"db_client_connection_max{{{pool}}} 5.0" in text
    assert f"db_client_connection_pending_requests{{{pool}}} 0.0" in text
    assert f"db_client_connection_timeouts_total{{{pool}}} 0.0" in text
    assert f'db_client_connection_wait_time_seconds_bucket{{{pool},le="+Inf"}} 1.0' in text
    assert "# TYPE db_client_connection_use_time_seconds histogram" in text
    assert f"db_client_connection_create_time_seconds_count{{{pool}}} 1.0" in text
    assert 'pooldoctor_pool_size{engine="primary"} 3.0' in text
    assert 'pooldoctor_pool_checked_out{engine="primary"} 1.0' in text
    assert 'pooldoctor_pool_timeout_seconds{engine="primary"} 7.0' in text
    assert 'pooldoctor_pool_checkouts_total{engine="primary"} 1.0' in text
    assert 'pooldoctor_pool_size{engine="replica"}' not in text  # NullPool has no size
    assert "# TYPE pooldoctor_pool_timeouts_total counter" in text
    assert "# TYPE pooldoctor_pool_oldest_checkout_age_seconds gauge" in text


def test_wsgi_negotiates_prometheus_by_accept_and_query(wsgi_url: str) -> None:
    _, by_accept, _ = _get(f"{wsgi_url}/status", accept="text/plain")
    _, by_query, _ = _get(f"{wsgi_url}/status?format=prometheus")
    _, json_default, _ = _get(f"{wsgi_url}/status", accept="application/json, text/plain")
    assert by_accept.startswith("text/plain")
    assert by_query.startswith("text/plain")
    assert json_default == "application/json"


def test_wsgi_unknown_engine_is_404(wsgi_url: str) -> None:
    status, _, body = _get(f"{wsgi_url}/?engine=nope")
    assert status == 404
    assert json.loads(body)["engines"] == ["primary", "replica"]


async def _call_asgi(app: Any, scope: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, body = sent
    assert start["type"] == "http.response.start"
    assert body["type"] == "http.response.body"
    return start, body["body"]


def _scope(path: str, query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": headers or [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


def test_asgi_json_and_metrics(engines: dict[str, sa.Engine]) -> None:
    app = pooldoctor.pool_status_asgi(engines)
    with engines["primary"].connect():
        start, body = asyncio.run(_call_asgi(app, _scope("/pool", b"engine=primary")))
        _, metrics = asyncio.run(_call_asgi(app, _scope("/internal/metrics")))
    assert start["status"] == 200
    assert (b"content-type", b"application/json") in start["headers"]
    payload = json.loads(body)
    assert payload["checked_out"] == 1
    assert payload["holders"][0]["origin"].startswith("tests/test_app_endpoints.py:")
    assert b'pooldoctor_pool_checked_out{engine="primary"} 1' in metrics


def test_asgi_accept_text_plain_and_method_not_allowed(engines: dict[str, sa.Engine]) -> None:
    app = pooldoctor.pool_status_asgi(engines["primary"])
    start, body = asyncio.run(_call_asgi(app, _scope("/", headers=[(b"accept", b"text/plain")])))
    assert b'pooldoctor_pool_size{engine="default"} 3' in body
    post = {**_scope("/"), "method": "POST"}
    start, _ = asyncio.run(_call_asgi(app, post))
    assert start["status"] == 405


def test_asgi_answers_lifespan(engines: dict[str, sa.Engine]) -> None:
    app = pooldoctor.pool_status_asgi(engines)
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert [message["type"] for message in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


def test_prometheus_escapes_labels_and_skips_unknown_values() -> None:
    engine = sa.create_engine("sqlite://", poolclass=sa.NullPool)
    text = exposition({'a"b': engine}).decode()
    assert 'pooldoctor_pool_size{engine="a\\"b"}' not in text  # NullPool: no size
    assert 'db_client_connection_max{db_client_connection_pool_name="a\\"b"}' not in text
    assert "pooldoctor_pool_oldest_checkout_age_seconds" not in text  # not instrumented
    assert "# TYPE db_client_connection_count gauge" in text
