"""The pool-status collector against a real local HTTP(S) server: payloads, failures, secrets."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import QueuePool

from pooldoctor.app import instrument, pool_status_wsgi, uninstrument
from pooldoctor.collect.options import SourceOptions
from pooldoctor.collect.pool_payloads import HTML_MESSAGE
from pooldoctor.collect.pool_status import TOKEN_ENV, fetch_pool_sample
from pooldoctor.collect.session import capture
from pooldoctor.evidence import PoolSample, SampleError, SourceState
from tests.httpserver import LocalHTTPServer, Response, serve_http
from tests.test_pool_payloads import (
    HELPER_JSON,
    POOLDOCTOR_PROMETHEUS,
    PSYCOPG_STATS,
    SEED_JSON,
    SEED_PROMETHEUS,
    sqlite_connection,
)

TIMEOUT = 2.0
SHORT_TIMEOUT = 0.5  # for hangs: small, so the tests stay quick
HANG_BOUND_SECONDS = 5.0  # a generous upper bound on a 0.5 s timeout, not a benchmark
SECRET = "s3cr3t-Tok3n"
PASSWORD = "hunter2-pw"


def sample_of(url: str, timeout: float = TIMEOUT) -> PoolSample:
    result = fetch_pool_sample(url, timeout)
    assert isinstance(result, PoolSample), result
    return result


def error_of(url: str, timeout: float = TIMEOUT) -> str:
    result = fetch_pool_sample(url, timeout)
    assert isinstance(result, SampleError), result
    assert "\n" not in result.error
    assert SECRET not in result.error and PASSWORD not in result.error
    return result.error


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- payloads over HTTP -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "payload_format", "checked_out"),
    [
        (SEED_JSON, "application/json", "json", 20),
        (json.dumps(HELPER_JSON), "application/json", "json", 20),
        (json.dumps(PSYCOPG_STATS), "application/json", "psycopg-pool", 8),
        (SEED_PROMETHEUS, "text/plain; version=0.0.4; charset=utf-8", "prometheus", 20),
        (POOLDOCTOR_PROMETHEUS, "text/plain; version=0.0.4", "prometheus", 18),
        ("NullPool", "text/plain", "sqlalchemy-nullpool", None),
        # A JSON body served with a wrong content type is still recognised by its content.
        (SEED_JSON, "text/html", "json", 20),
    ],
)
def test_each_payload_format_over_http(
    http_server: LocalHTTPServer,
    body: str,
    content_type: str,
    payload_format: str,
    checked_out: int | None,
) -> None:
    http_server.routes["/pool-status"] = Response(body=body, content_type=content_type)
    sample = sample_of(http_server.url("/pool-status"))
    assert (sample.payload_format, sample.checked_out) == (payload_format, checked_out)


def test_live_sqlalchemy_status_from_a_real_queuepool(http_server: LocalHTTPServer) -> None:
    pool = QueuePool(sqlite_connection, pool_size=2)
    held = [pool.connect() for _ in range(3)]
    http_server.routes["/status"] = lambda: Response(body=pool.status(), content_type="text/plain")
    try:
        busy = sample_of(http_server.url("/status"))
        held.pop().close()
        calmer = sample_of(http_server.url("/status"))
    finally:
        for connection in held:
            connection.close()
        pool.dispose()
    assert (busy.payload_format, busy.size, busy.checked_out, busy.overflow) == (
        "sqlalchemy-status",
        2,
        3,
        1,
    )
    # The returned overflow connection goes back into the queue (it had room): 2 out, 1 in.
    assert (calmer.checked_out, calmer.checked_in, calmer.overflow) == (2, 1, 1)


def test_real_psycopg_pool_stats(http_server: LocalHTTPServer, pg: object) -> None:
    from psycopg_pool import ConnectionPool

    from pooldoctor.lab.cluster import TempCluster

    assert isinstance(pg, TempCluster)
    with ConnectionPool(pg.dsn(), min_size=2, max_size=3, timeout=5, open=True) as pool:
        pool.wait(timeout=5)
        http_server.routes["/stats"] = lambda: Response(body=json.dumps(pool.get_stats()))
        with pool.connection(timeout=5):
            sample = sample_of(http_server.url("/stats"))
    assert sample.payload_format == "psycopg-pool"
    assert (sample.size, sample.max_overflow, sample.checked_out) == (3, 0, 1)
    assert sample.counters["pool_min"] == 2


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """Serve a WSGI app on 127.0.0.1 (ephemeral port) in a thread; yield its base URL."""

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

    server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_app_side_helper_end_to_end() -> None:
    """pooldoctor's own WSGI pool-status app on instrumented engines, read by this collector."""
    orders = create_engine("sqlite://", poolclass=QueuePool, pool_size=2, max_overflow=1)
    reports = create_engine("sqlite://", poolclass=QueuePool, pool_size=3, max_overflow=0)
    for engine in (orders, reports):
        instrument(engine)
    held = [orders.connect(), orders.connect(), reports.connect()]
    try:
        single_app = pool_status_wsgi(orders)
        fleet_app = pool_status_wsgi({"orders": orders, "reports": reports})
        with serve_wsgi(single_app) as single, serve_wsgi(fleet_app) as fleet:
            as_json = sample_of(f"{single}/pool-status")
            as_metrics = sample_of(f"{single}/metrics")
            both = sample_of(f"{fleet}/pool-status")
            one = sample_of(f"{fleet}/pool-status?engine=reports")
    finally:
        for connection in held:
            connection.close()
        for engine in (orders, reports):
            uninstrument(engine)
            engine.dispose()
    assert (as_json.payload_format, as_json.size, as_json.checked_out) == ("json", 2, 2)
    assert (as_json.max_overflow, as_json.timeout) == (1, 30.0)
    assert len(as_json.holders) == 2 and "test_pool_status.py" in as_json.holders[0].origin
    assert as_json.counters["checkouts"] >= 2
    assert (as_metrics.payload_format, as_metrics.checked_out, as_metrics.size) == (
        "prometheus",
        2,
        2,
    )
    assert as_metrics.counters["checkouts"] == as_json.counters["checkouts"]
    assert (both.size, both.checked_out, len(both.holders)) == (5, 3, 3)
    assert both.notes[0].startswith("summed 2 engines (orders, reports)")
    assert (one.size, one.checked_out) == (3, 1)


def test_redirect_is_followed(http_server: LocalHTTPServer) -> None:
    http_server.routes["/old"] = Response(301, headers={"Location": "/pool-status"})
    http_server.routes["/pool-status"] = Response(body=SEED_JSON)
    assert sample_of(http_server.url("/old")).size == 20


def test_https_with_a_trusted_certificate(
    tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, _key = tls_files
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # OpenSSL's default trust store override
    with serve_https(tls_files) as server:
        server.routes["/pool-status"] = Response(body=SEED_JSON)
        assert sample_of(server.url("/pool-status")).checked_out == 20


# --- failures -----------------------------------------------------------------------------------


def test_http_404(http_server: LocalHTTPServer) -> None:
    assert error_of(http_server.url("/missing")) == "HTTP 404 Not Found (wrong path?)"


def test_http_401_hints_at_the_token(http_server: LocalHTTPServer) -> None:
    http_server.routes["/p"] = Response(401, "denied", "text/plain")
    assert (
        error_of(http_server.url("/p")) == f"HTTP 401 Unauthorized (needs a token? set {TOKEN_ENV})"
    )


def test_http_500_with_a_text_excerpt(http_server: LocalHTTPServer) -> None:
    body = (
        "Traceback ...\nsqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 10 reached"
    )
    http_server.routes["/p"] = Response(500, body, "text/plain")
    message = error_of(http_server.url("/p"))
    assert message.startswith("HTTP 500 Internal Server Error: 'Traceback ... sqlalchemy.exc.")
    assert "QueuePool limit" in message


def test_http_503_html_names_the_page_title(http_server: LocalHTTPServer) -> None:
    page = "<html><head><title>503 Service Temporarily Unavailable</title></head></html>"
    http_server.routes["/p"] = Response(503, page, "text/html")
    assert error_of(http_server.url("/p")) == (
        "HTTP 503 Service Unavailable: HTML page titled '503 Service Temporarily Unavailable'"
    )


def test_html_body_is_a_login_page_or_wrong_path(http_server: LocalHTTPServer) -> None:
    page = "<!DOCTYPE html><html><body><form>Sign in</form></body></html>"
    http_server.routes["/p"] = Response(200, page, "text/html; charset=utf-8")
    assert error_of(http_server.url("/p")) == HTML_MESSAGE


def test_unknown_payload(http_server: LocalHTTPServer) -> None:
    http_server.routes["/p"] = Response(200, "healthy", "text/plain")
    assert error_of(http_server.url("/p")).startswith("unrecognised pool-status payload")


def test_invalid_json_payload(http_server: LocalHTTPServer) -> None:
    http_server.routes["/p"] = Response(200, '{"size": 20, "checked_out": ', "application/json")
    assert error_of(http_server.url("/p")).startswith("invalid JSON:")


def test_redirect_loop_is_named_without_secrets(http_server: LocalHTTPServer) -> None:
    http_server.routes["/a"] = Response(302, headers={"Location": f"/b?token={SECRET}"})
    http_server.routes["/b"] = Response(302, headers={"Location": f"/a?token={SECRET}"})
    message = error_of(http_server.url(f"/a?token={SECRET}"))
    assert message == "redirect loop: /a?token=*** -> /b?token=*** -> /a?token=***"


def test_too_many_redirects(http_server: LocalHTTPServer) -> None:
    for hop in range(10):
        http_server.routes[f"/{hop}"] = Response(307, headers={"Location": f"/{hop + 1}"})
    assert error_of(http_server.url("/0")).startswith("too many redirects (more than 5)")


def test_oversized_body(http_server: LocalHTTPServer) -> None:
    http_server.routes["/p"] = Response(200, b"x" * (5 * 1024 * 1024), "text/plain")
    assert error_of(http_server.url("/p")).startswith("response too large (5242880 bytes")


def test_https_url_to_a_plain_http_server(http_server: LocalHTTPServer) -> None:
    url = http_server.url("/p").replace("http://", "https://")
    message = error_of(url)
    assert message.startswith("TLS handshake with 127.0.0.1:")
    assert message.endswith("(plain HTTP on an https:// URL?)")


def test_self_signed_certificate_is_refused(tls_files: tuple[Path, Path]) -> None:
    with serve_https(tls_files) as server:
        server.routes["/p"] = Response(body=SEED_JSON)
        message = error_of(server.url("/p"))
    assert (
        message
        == f"TLS certificate not accepted for 127.0.0.1:{server.port}: self-signed certificate"
    )


def test_connection_refused() -> None:
    port = closed_port()
    message = error_of(f"http://127.0.0.1:{port}/pool-status")
    assert message == f"connection refused by 127.0.0.1:{port}: nothing listening there?"


def test_not_an_http_url() -> None:
    assert (
        error_of("postgresql://app:x@db/app") == "not an http(s) URL: postgresql://app:***@db/app"
    )


def test_hanging_server_answers_within_the_timeout(http_server: LocalHTTPServer) -> None:
    http_server.routes["/p"] = Response(body=SEED_JSON, delay=3.0)
    started = time.monotonic()
    message = error_of(http_server.url("/p"), timeout=SHORT_TIMEOUT)
    elapsed = time.monotonic() - started
    assert message == "no answer within 0.5s: connected, but no response"
    assert elapsed < HANG_BOUND_SECONDS


def test_slow_drip_is_bounded_by_a_total_deadline(http_server: LocalHTTPServer) -> None:
    # Each byte comes well inside a 0.5 s socket timeout; only a total deadline stops this.
    http_server.routes["/p"] = Response(body=SEED_JSON + " " * 200, drip_interval=0.02)
    started = time.monotonic()
    message = error_of(http_server.url("/p"), timeout=SHORT_TIMEOUT)
    elapsed = time.monotonic() - started
    assert message.startswith("no complete answer within 0.5s: ")
    assert message.endswith("bytes received, server sends too slowly")
    assert elapsed < HANG_BOUND_SECONDS


def test_fetches_run_in_the_calling_thread_under_one_shared_watchdog(
    http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fleet fetches thousands of URLs a run: a thread per fetch was most of its CPU.
    http_server.routes["/p"] = Response(body=SEED_JSON)
    sample_of(http_server.url("/p"))  # the watchdog thread exists from here on
    started: list[str] = []
    original_start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        original_start(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    for _ in range(20):
        sample_of(http_server.url("/p"))
    assert [name for name in started if name.startswith("pool-status")] == []


def test_cancel_abandons_a_hung_fetch(http_server: LocalHTTPServer) -> None:
    http_server.routes["/p"] = Response(body=SEED_JSON, delay=30.0)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    result = fetch_pool_sample(http_server.url("/p"), 30.0, cancel)
    assert isinstance(result, SampleError)
    assert result.error == "cancelled: pooldoctor was interrupted"


def test_silent_listener_that_never_accepts() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/p"
        started = time.monotonic()
        message = error_of(url, timeout=SHORT_TIMEOUT)
        elapsed = time.monotonic() - started
    assert message.startswith("no answer within 0.5s: ")
    assert elapsed < HANG_BOUND_SECONDS


# --- authentication and secrets ----------------------------------------------------------------


def test_bearer_token_from_the_environment(
    http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, SECRET)
    http_server.routes["/p"] = Response(body=SEED_JSON)
    sample_of(http_server.url("/p"))
    assert http_server.request_headers["/p"]["Authorization"] == f"Bearer {SECRET}"


def test_bearer_token_never_follows_a_redirect_to_another_origin(
    http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, SECRET)
    with serve_http() as other:
        other.routes["/p"] = Response(body=SEED_JSON)
        http_server.routes["/p"] = Response(302, headers={"Location": other.url("/p")})
        sample_of(http_server.url("/p"))
        assert "Authorization" in http_server.request_headers["/p"]
        assert "Authorization" not in other.request_headers["/p"]


def test_server_echoing_the_token_is_scrubbed(
    http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, SECRET)
    http_server.routes["/p"] = Response(500, f"bad token {SECRET}", "text/plain")
    assert error_of(http_server.url("/p")) == "HTTP 500 Internal Server Error: 'bad token ***'"


def test_userinfo_becomes_basic_auth(http_server: LocalHTTPServer) -> None:
    http_server.routes["/p"] = Response(body=SEED_JSON)
    sample_of(http_server.url("/p").replace("http://", f"http://ops:{PASSWORD}@"))
    assert http_server.request_headers["/p"]["Authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    "route",
    [
        Response(404),
        Response(500, f"password={PASSWORD} token={SECRET}", "text/plain"),
        Response(200, f"<html>{SECRET}</html>", "text/html"),
        Response(200, f"unknown {PASSWORD} {SECRET}", "text/plain"),
        Response(301, headers={"Location": "/p?x=1"}),
    ],
)
def test_url_secrets_never_reach_error_messages(
    http_server: LocalHTTPServer, route: Response
) -> None:
    http_server.routes["/p"] = route
    url = http_server.url(f"/p?token={SECRET}").replace("http://", f"http://ops:{PASSWORD}@")
    error_of(url)  # asserts the absence of both secrets


def test_url_secrets_never_reach_network_error_messages() -> None:
    port = closed_port()
    error_of(f"http://ops:{PASSWORD}@127.0.0.1:{port}/p?api_key={SECRET}")
    error_of(f"https://ops:{PASSWORD}@127.0.0.1:99999/p?api_key={SECRET}")


# --- the orchestrator ---------------------------------------------------------------------------


def test_capture_samples_a_fleet(http_server: LocalHTTPServer) -> None:
    http_server.routes["/one"] = Response(body=SEED_JSON)
    http_server.routes["/two"] = Response(body=POOLDOCTOR_PROMETHEUS, content_type="text/plain")
    urls = (http_server.url("/one"), http_server.url(f"/two?token={SECRET}"))
    evidence = capture(SourceOptions(pool_status=urls, samples=3, interval=0.1, timeout=TIMEOUT))
    assert len(evidence.pools) == 2
    assert [len(pool.samples) for pool in evidence.pools] == [3, 3]
    assert [pool.errors for pool in evidence.pools] == [(), ()]
    assert evidence.pools[1].url.endswith("/two?token=***")
    assert [source.status for source in evidence.sources] == [SourceState.OK, SourceState.OK]
    assert SECRET not in repr(evidence)


def test_capture_records_a_failing_instance(http_server: LocalHTTPServer) -> None:
    http_server.routes["/one"] = Response(body=SEED_JSON)
    urls = (http_server.url("/one"), http_server.url("/gone"))
    evidence = capture(SourceOptions(pool_status=urls, samples=2, interval=0.0, timeout=TIMEOUT))
    assert [len(pool.samples) for pool in evidence.pools] == [2, 0]
    assert [error.error for error in evidence.pools[1].errors] == [
        "HTTP 404 Not Found (wrong path?)"
    ] * 2
    assert evidence.sources[1].status == SourceState.ERROR


# --- TLS helpers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def serve_https(tls_files: tuple[Path, Path]) -> AbstractContextManager[LocalHTTPServer]:
    cert, key = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return serve_http(context)
