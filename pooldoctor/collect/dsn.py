"""PostgreSQL DSNs: accept libpq URIs, key=value strings and SQLAlchemy URLs; redact for display."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pooldoctor.redact import redact

LIBPQ_SCHEMES = ("postgresql", "postgres")
SECRET_PARAMS = frozenset({"password", "sslpassword"})
REDACTED = "***"
# Fragments shorter than this are not scrubbed out of messages: replacing every "a" would garble
# the message, and libpq only echoes whole tokens, which the quoted-fragment rule catches.
MIN_SCRUB_LENGTH = 3

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
_KV_SECRET = re.compile(
    r"\b(?P<key>(?:ssl)?password)\s*(?:=\s*)?"
    # An unquoted value runs on over following words up to the next key=: libpq rejects a
    # password with a space unquoted, and its message then echoes the second word.
    r"(?P<value>'(?:[^'\\]|\\.)*'?|[^\s']+(?:\s+[^\s'=]+(?=\s|$))*)",
    re.IGNORECASE,
)
_KV_PAIR = re.compile(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")
_QUOTED_FRAGMENT = re.compile(r'"([^"]*)"')


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
    secrets = _secret_fragments(text)
    conninfo = _libpq_uri(text) if _SCHEME.match(text) else text
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        raise InvalidDsnError(f"invalid DSN: {redact(scrub_secrets(reason, secrets))}") from None
    return {key: str(value) for key, value in params.items()}


def redact_dsn(dsn: str) -> str:
    """The DSN for display: host, port, dbname, user and options kept; passwords removed."""
    text = dsn.strip()
    match = _SCHEME.match(text)
    if match:
        scheme = match["scheme"]
        userinfo, location, query = _split_uri(text[match.end() :])
        user = userinfo.partition(":")[0] if userinfo is not None else None
        pairs = [
            (k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in SECRET_PARAMS
        ]
        shown = f"{scheme}://" + (f"{user}@" if user else "") + location
        return shown + (f"?{urlencode(pairs, quote_via=quote)}" if pairs else "")
    try:
        conninfo_to_dict(text)
    except psycopg.Error:  # a DSN that does not parse may still hold a password (`app:pw@db`)
        loose = _loose_userinfo_password(text)
        if loose is not None:
            start, end = loose
            text = text[:start] + REDACTED + text[end:]
        return redact(_KV_SECRET.sub(lambda m: f"{m['key']}={REDACTED}", text))
    kept = (m[0] for m in _KV_PAIR.finditer(text) if m[1].lower() not in SECRET_PARAMS)
    return " ".join(kept)


_MISTYPED_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:/*")


def _loose_userinfo_password(text: str) -> tuple[int, int] | None:
    """Where the password of a URL-like DSN with a mistyped scheme (`postgresql:/u:pw@h`,
    `postgresql//u:pw@h`, `u:pw@h`) is: after the user's colon, up to the last `@`."""
    at = text.rfind("@")
    if at <= 0 or "=" in text[:at].split(":", 1)[0]:
        return None
    scheme = _MISTYPED_SCHEME.match(text)
    user_start = (
        scheme.end() if scheme and scheme.end() < at and ":" in text[scheme.end() : at] else 0
    )
    colon = text.find(":", user_start, at)
    if colon < 0:
        return None
    return colon + 1, at


def scrub_secrets(message: str, secrets: set[str]) -> str:
    """Remove any of `secrets` from a message, and quoted fragments that contain one."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= MIN_SCRUB_LENGTH:
            message = message.replace(secret, REDACTED)

    def quoted(match: re.Match[str]) -> str:
        fragment = match[1]
        hit = any(
            secret in fragment or (len(fragment) >= MIN_SCRUB_LENGTH and fragment in secret)
            for secret in secrets
        )
        return f'"{REDACTED}"' if hit else match[0]

    return _QUOTED_FRAGMENT.sub(quoted, message)


def dsn_secrets(dsn: str) -> set[str]:
    """Every spelling of a password the DSN contains, for scrubbing messages that echo it."""
    return _secret_fragments(dsn.strip())


def _secret_fragments(text: str) -> set[str]:
    secrets: set[str] = set()
    match = _SCHEME.match(text)
    if match:
        userinfo, _, query = _split_uri(text[match.end() :])
        if userinfo is not None and ":" in userinfo:
            raw = userinfo.partition(":")[2]
            secrets.update({raw, unquote(raw)})
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key in SECRET_PARAMS:
                secrets.update({value, quote(value, safe="")})
        return {s for s in secrets if s}
    for match in _KV_SECRET.finditer(text):
        secrets.update({match["value"], match["value"].strip("'")})
    loose = _loose_userinfo_password(text)
    if loose is not None:
        password = text[loose[0] : loose[1]]
        secrets.update({password, *password.split()})
    return {s for s in secrets if s}


def _split_uri(rest: str) -> tuple[str | None, str, str]:
    """Split what follows `scheme://` into (userinfo, hosts-and-path, query).

    The userinfo ends at the last `@`, so unencoded `@`, `/`, `?` or `:` in a password still
    split correctly; an `@` inside a query parameter (an e-mail in application_name) is skipped.
    """
    at = rest.rfind("@")
    first_question = rest.find("?")
    if 0 <= first_question < at and "=" in rest[first_question:at]:
        earlier = rest.rfind("@", 0, first_question)
        if earlier >= 0:
            at = earlier
    userinfo = rest[:at] if at >= 0 else None
    location, _, query = rest[at + 1 :].partition("?")
    return userinfo, location, query


def _libpq_uri(text: str) -> str:
    match = _SCHEME.match(text)
    assert match is not None
    scheme, _, driver = match["scheme"].lower().partition("+")
    if scheme not in LIBPQ_SCHEMES:
        raise InvalidDsnError(
            f"invalid DSN: unsupported scheme {match['scheme']!r} "
            "(expected postgresql://, postgres:// or postgresql+driver://)"
        )
    userinfo, location, query = _split_uri(text[match.end() :])
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
