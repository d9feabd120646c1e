"""Keep secrets out of evidence, reports and messages: the one place that knows what a secret is.

`redact(text)` is the entry point for free text (log lines, error messages, anything quoted);
`redact_url` and `redact_dsn` keep the structure of a URL or DSN shown to the user;
`scrub_secrets` removes known secret values from a message that may echo them.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, unquote_plus, urlencode, urlsplit, urlunsplit

REDACTED = "***"
MIN_SCRUB_LENGTH = 3  # shorter secret values would mangle ordinary words when scrubbed
DSN_SECRET_PARAMS = frozenset({"password", "sslpassword"})

_SENSITIVE_PARTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "signature",
    "credential",
    "auth",
    "apikey",
    "sessionid",
)
_SENSITIVE_EXACT = frozenset({"key", "sig", "pwd", "pass", "jwt", "session", "code"})

# The password runs to the last `@` before whitespace: passwords may hold `@`, `/` and quotes.
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)\S*@(?=[\w\[])")
# `user:password@host` without (or with a mistyped) scheme: `postgresql:/app:pw@db`, `app:pw@db`.
_USERINFO_PASSWORD = re.compile(r"(?<![\w.%+-])([\w.%+-]+:)(?!//)(\S+)@(?=[\w\[])")
_SECRET_WORD = r"(?:[\w.-]*(?:token|secret|passw(?:or)?d|pwd|api[_-]?key|apikey|credential)[\w.-]*)"
# A secret-named key and its value, as key=value, key: value or "key": "value" (JSON). An
# unquoted value is one word; the words after it (`more`) are part of it only inside a
# key=value list (libpq conninfo), where a password with a space must not leak its second word.
_KEY_SECRET = re.compile(
    r"(?i)(?P<key>[\"']?\b" + _SECRET_WORD + r"[\"']?\s*[=:]\s*)"
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"?|'(?:[^'\\]|\\.)*'?"
    r"|(?![\"'])[^\s,;&\"'}\]]+)"
    r"(?P<more>(?:[ \t]+(?![\w.-]+\s*[=:])[^\s,;&\"'}\]=]+)*)"
)
# Inside a key=value list: a `key=value` pair right before the secret key, or a `key=` after
# the words that follow its value.
_PAIR_BEFORE = re.compile(r"[\w.-]+=\S+[ \t]+$")
_PAIR_AFTER = re.compile(r"[ \t]+[\w.-]+=")
_AUTHORIZATION = re.compile(
    r"(?i)(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
    r"(?:(bearer|basic|token|digest|negotiate|ntlm|aws4-hmac-sha256)\s+)?([^\s\"',;]+)"
)
_SCHEME_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)\s+([A-Za-z0-9._~+/-]{8,}=*)")
_COOKIE = re.compile(r"(?i)(\b(?:set-)?cookie[\"']?\s*[:=]\s*[\"']?)([^\"'\r\n]+)")
_LOOSE_USERINFO = re.compile(r"(//[^/:@\s]*:)[^@/\s]*@")
_LOOSE_PARAM = re.compile(r"([?&#;]([^=&#\s]+)=)([^&#\s]*)")
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://")
_DSN_KV_SECRET = re.compile(
    r"\b(?P<key>(?:ssl)?password)\s*(?:=\s*)?"
    # An unquoted value runs on over following words up to the next key=: libpq rejects a
    # password with a space unquoted, and its message then echoes the second word.
    r"(?P<value>'(?:[^'\\]|\\.)*'?|[^\s']+(?:\s+[^\s'=]+(?=\s|$))*)",
    re.IGNORECASE,
)
_MISTYPED_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:/*")
_DSN_KV_PAIR = re.compile(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")
_QUOTED_FRAGMENT = re.compile(r'"([^"]*)"')


# Cheap test that a text may hold any of the secrets below (most texts do not).
_MAYBE_SECRET = re.compile(
    r"(?i)@|[?&#;][^=\s]*=|token|secret|passw|pwd|api.?key|credential|authoriz|bearer|basic"
    r"|cookie"
)


def redact(text: str) -> str:
    """Free text with every secret class pooldoctor knows hidden: URL and DSN passwords (even
    in a DSN that does not parse), Authorization and Cookie headers, bearer/basic credentials,
    sensitive query parameters, and values of *token*/*secret*/*password* keys in key=value
    and JSON form."""
    if not _MAYBE_SECRET.search(text):
        return text
    text = _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)
    text = _USERINFO_PASSWORD.sub(rf"\1{REDACTED}@", text)
    text = _AUTHORIZATION.sub(_authorization, text)
    text = _SCHEME_CREDENTIAL.sub(rf"\1 {REDACTED}", text)
    text = _COOKIE.sub(rf"\1{REDACTED}", text)
    text = _KEY_SECRET.sub(_key_secret, text)
    return _redact_params_loosely(text)


def _authorization(match: re.Match[str]) -> str:
    scheme = f"{match[2]} " if match[2] else ""
    return f"{match[1]}{scheme}{REDACTED}"


def _key_secret(match: re.Match[str]) -> str:
    value, more = match["value"], match["more"]
    text, start, end = match.string, match.start(), match.end()
    quoted = value.startswith(("'", '"'))
    in_pairs = (
        bool(more)
        and not quoted
        and (
            _PAIR_BEFORE.search(text, max(0, start - 256), start) is not None
            or _PAIR_AFTER.match(text, end) is not None
        )
    )
    kept = "" if in_pairs else more
    if quoted:
        quote_char = value[0]
        return f"{match['key']}{quote_char}{REDACTED}{quote_char}{kept}"
    if value in (REDACTED, "\\*\\*\\*"):  # already redacted (and maybe markdown-escaped)
        return f"{match['key']}{value}{kept}"
    return f"{match['key']}{REDACTED}{kept}"


def is_sensitive_param(name: str) -> bool:
    """True for query parameter names that usually carry a credential."""
    normal = re.sub(r"[^a-z0-9]", "", name.lower())
    return (
        normal in _SENSITIVE_EXACT
        or normal.endswith("key")
        or any(part in normal for part in _SENSITIVE_PARTS)
    )


def redact_url(url: str) -> str:
    """The URL with the userinfo password and sensitive query/fragment values replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _redact_url_loosely(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, has_password, _password = userinfo.partition(":")
        if has_password:
            netloc = f"{user}:{REDACTED}@{hostport}"
    return urlunsplit(
        parts._replace(
            netloc=netloc,
            query=_redact_params(parts.query),
            fragment=_redact_params(parts.fragment),
        )
    )


def url_secrets(url: str) -> set[str]:
    """Every spelling of the credentials a URL carries, for scrubbing messages that echo them."""
    secrets: set[str] = set()
    try:
        parts = urlsplit(url)
    except ValueError:
        return secrets
    if parts.password:
        secrets.update({parts.password, unquote(parts.password)})
    for text in (parts.query, parts.fragment):
        for piece in text.split("&"):
            name, _, value = piece.partition("=")
            if value and is_sensitive_param(unquote_plus(name)):
                secrets.update({value, unquote_plus(value)})
    return secrets


def redact_dsn(dsn: str) -> str:
    """The DSN for display: host, port, dbname, user and options kept; passwords removed."""
    text = dsn.strip()
    match = _SCHEME.match(text)
    if match:
        scheme = match["scheme"]
        userinfo, location, query = split_uri(text[match.end() :])
        user = userinfo.partition(":")[0] if userinfo is not None else None
        pairs = [
            (k, v)
            for k, v in parse_qsl(query, keep_blank_values=True)
            if k not in DSN_SECRET_PARAMS
        ]
        shown = f"{scheme}://" + (f"{user}@" if user else "") + location
        return shown + (f"?{urlencode(pairs, quote_via=quote)}" if pairs else "")
    import psycopg  # only key=value DSNs need libpq's parser; URLs and HTTP redaction do not
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(text)
    except psycopg.Error:  # a DSN that does not parse may still hold a password (`app:pw@db`)
        loose = _loose_userinfo_password(text)
        if loose is not None:
            start, end = loose
            text = text[:start] + REDACTED + text[end:]
        return redact(_DSN_KV_SECRET.sub(lambda m: f"{m['key']}={REDACTED}", text))
    kept = (m[0] for m in _DSN_KV_PAIR.finditer(text) if m[1].lower() not in DSN_SECRET_PARAMS)
    return " ".join(kept)


def dsn_secrets(dsn: str) -> set[str]:
    """Every spelling of a password the DSN contains, for scrubbing messages that echo it."""
    text = dsn.strip()
    secrets: set[str] = set()
    match = _SCHEME.match(text)
    if match:
        userinfo, _, query = split_uri(text[match.end() :])
        if userinfo is not None and ":" in userinfo:
            raw = userinfo.partition(":")[2]
            secrets.update({raw, unquote(raw)})
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key in DSN_SECRET_PARAMS:
                secrets.update({value, quote(value, safe="")})
        return {s for s in secrets if s}
    for kv in _DSN_KV_SECRET.finditer(text):
        secrets.update({kv["value"], kv["value"].strip("'")})
    loose = _loose_userinfo_password(text)
    if loose is not None:
        password = text[loose[0] : loose[1]]
        secrets.update({password, *password.split()})
    return {s for s in secrets if s}


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


def split_uri(rest: str) -> tuple[str | None, str, str]:
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


def _redact_params(text: str) -> str:
    if "=" not in text:
        return text
    pieces = []
    for piece in text.split("&"):
        name, has_value, _value = piece.partition("=")
        pieces.append(
            f"{name}={REDACTED}" if has_value and is_sensitive_param(unquote_plus(name)) else piece
        )
    return "&".join(pieces)


def _redact_url_loosely(text: str) -> str:
    return _redact_params_loosely(_LOOSE_USERINFO.sub(rf"\1{REDACTED}@", text))


def _redact_params_loosely(text: str) -> str:
    return _LOOSE_PARAM.sub(
        lambda m: m.group(1) + REDACTED if is_sensitive_param(m.group(2)) else m.group(0), text
    )
