"""PostgreSQL DSNs: accept libpq URIs, key=value strings and SQLAlchemy URLs."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pooldoctor.redact import dsn_secrets, redact, scrub_secrets, split_uri

LIBPQ_SCHEMES = ("postgresql", "postgres")

# Query parameters that only mean something to a Python driver or to SQLAlchemy, not to libpq.
DRIVER_ONLY_PARAMS = frozenset(
    {
        "async_fallback",
        "command_timeout",
        "direct_tls",
        "executemany_batch_page_size",
        "executemany_mode",
        "executemany_values_page_size",
        "max_cacheable_statement_size",
        "max_cached_statement_lifetime",
        "plugin",
        "prepared_statement_cache_size",
        "prepared_statement_name_func",
        "record_class",
        "server_settings",
        "statement_cache_size",
        "timeout",
        "use_native_hstore",
        "use_native_unicode",
    }
)
SSLMODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
SSL_TRUE = frozenset({"true", "1", "yes", "on"})
SSL_FALSE = frozenset({"false", "0", "no", "off"})

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://")


class InvalidDsnError(ValueError):
    """A DSN that cannot be used; the message never contains the password."""


def normalize_dsn(dsn: str) -> str:
    """Turn any accepted DSN form into a libpq key=value string, validated by libpq's parser."""
    return make_conninfo("", **parse_dsn(dsn))


def parse_dsn(dsn: str) -> dict[str, str]:
    """Parse any accepted DSN form into libpq parameters (only those the DSN sets)."""
    text = dsn.strip()
    if not text:
        raise InvalidDsnError("invalid DSN: empty")
    secrets = dsn_secrets(text)
    conninfo = _libpq_uri(text) if _SCHEME.match(text) else text
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        raise InvalidDsnError(f"invalid DSN: {redact(scrub_secrets(reason, secrets))}") from None
    return {key: str(value) for key, value in params.items()}


def _libpq_uri(text: str) -> str:
    match = _SCHEME.match(text)
    assert match is not None
    scheme, _, driver = match["scheme"].lower().partition("+")
    if scheme not in LIBPQ_SCHEMES:
        raise InvalidDsnError(
            f"invalid DSN: unsupported scheme {match['scheme']!r} "
            "(expected postgresql://, postgres:// or postgresql+driver://)"
        )
    userinfo, location, query = split_uri(text[match.end() :])
    credentials = ""
    if userinfo is not None:
        user, colon, password = userinfo.partition(":")
        credentials = _reencode(user) + (f":{_reencode(password)}" if colon else "") + "@"
    if driver:
        location, query = _translate_driver_query(location, query)
    return f"postgresql://{credentials}{location}" + (f"?{query}" if query else "")


def _reencode(component: str) -> str:
    return quote(unquote(component), safe="")


def _translate_driver_query(location: str, query: str) -> tuple[str, str]:
    """Map SQLAlchemy/asyncpg query parameters to libpq ones; drop the driver-only ones."""
    hosts: list[str] = []
    kept: list[tuple[str, str]] = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in DRIVER_ONLY_PARAMS:
            continue
        if key == "ssl":
            kept.append(("sslmode", _sslmode_from_asyncpg(value)))
        elif key == "host":
            hosts.append(value)
        else:
            kept.append((key, value))
    if len(hosts) == 1 and (hosts[0].startswith("/") or ":" not in hosts[0]):
        kept.append(("host", hosts[0]))
    elif hosts:
        names, ports = zip(*(_host_port(h) for h in hosts), strict=True)
        kept.append(("host", ",".join(names)))
        if any(ports):
            kept.append(("port", ",".join(ports)))
    return location, urlencode(kept, quote_via=quote)


def _host_port(host: str) -> tuple[str, str]:
    if host.startswith("/"):
        return host, ""
    name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
    return name, port


def _sslmode_from_asyncpg(value: str) -> str:
    lowered = value.lower()
    if lowered in SSLMODES:
        return lowered
    if lowered in SSL_TRUE:
        return "require"
    if lowered in SSL_FALSE:
        return "disable"
    raise InvalidDsnError(
        f"invalid DSN: unsupported ssl value {value!r} (expected true/false or a libpq sslmode)"
    )
