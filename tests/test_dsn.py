"""DSN normalisation (libpq URI, key=value, SQLAlchemy URLs) and redaction for display."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from pooldoctor.collect.dsn import InvalidDsnError, normalize_dsn, parse_dsn
from pooldoctor.redact import redact_dsn


def normalized(dsn: str) -> dict[str, str]:
    """What libpq itself reads from the normalised DSN."""
    return {key: str(value) for key, value in conninfo_to_dict(normalize_dsn(dsn)).items()}


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (
            "postgresql://app:s3cret@db.example:6432/orders?sslmode=require",
            {
                "user": "app",
                "password": "s3cret",
                "host": "db.example",
                "port": "6432",
                "dbname": "orders",
                "sslmode": "require",
            },
        ),
        ("postgres://app@db/orders", {"user": "app", "host": "db", "dbname": "orders"}),
        (
            "host=db port=5433 dbname=orders user=app password='it\\'s a secret'",
            {
                "host": "db",
                "port": "5433",
                "dbname": "orders",
                "user": "app",
                "password": "it's a secret",
            },
        ),
        (
            "postgresql+psycopg://app:pw@db:5432/orders",
            {"user": "app", "password": "pw", "host": "db", "port": "5432", "dbname": "orders"},
        ),
        (
            "postgresql+psycopg2://app@db/orders?application_name=web",
            {"user": "app", "host": "db", "dbname": "orders", "application_name": "web"},
        ),
        (
            "postgresql+asyncpg://app@db/orders?ssl=require&prepared_statement_cache_size=0"
            "&command_timeout=30",
            {"user": "app", "host": "db", "dbname": "orders", "sslmode": "require"},
        ),
        (
            "postgresql+asyncpg://app@db/orders?ssl=true",
            {"user": "app", "host": "db", "dbname": "orders", "sslmode": "require"},
        ),
        (
            "postgresql+asyncpg://app@db/orders?ssl=false",
            {"user": "app", "host": "db", "dbname": "orders", "sslmode": "disable"},
        ),
        (
            "postgresql+psycopg2://app@/orders?host=HostA:5432&host=HostB:5433",
            {"user": "app", "dbname": "orders", "host": "HostA,HostB", "port": "5432,5433"},
        ),
        (
            "postgresql+psycopg2://app@/orders?host=/var/run/postgresql",
            {"user": "app", "dbname": "orders", "host": "/var/run/postgresql"},
        ),
        (
            "postgresql://[::1]:5432,db2:5433/orders",
            {"host": "::1,db2", "port": "5432,5433", "dbname": "orders"},
        ),
    ],
)
def test_normalize_accepts_every_form(dsn: str, expected: dict[str, str]) -> None:
    assert normalized(dsn) == expected
    assert parse_dsn(dsn) == expected


@pytest.mark.parametrize(
    ("dsn", "password"),
    [
        ("postgresql://app:p@ss/w:rd?#@db:5432/orders", "p@ss/w:rd?#"),
        ("postgresql://app:p%40ss%2Fw%3Ard@db:5432/orders", "p@ss/w:rd"),
        ("postgresql+asyncpg://app:p@ss%w rd@db:5432/orders", "p@ss%w rd"),
        ("postgresql://app:p%zz@db:5432/orders", "p%zz"),
        ("postgresql://app:pa$$=word@db/orders?application_name=me@corp", "pa$$=word"),
    ],
)
def test_passwords_with_special_characters_survive(dsn: str, password: str) -> None:
    params = normalized(dsn)
    assert params["password"] == password
    assert params["host"] == "db"
    assert params["user"] == "app"
    redacted = redact_dsn(dsn)
    assert password not in redacted
    assert "app@db" in redacted


def test_email_in_a_query_parameter_is_not_mistaken_for_credentials() -> None:
    params = normalized("postgresql://app:pw@db/orders?application_name=me@corp")
    assert params == {
        "user": "app",
        "password": "pw",
        "host": "db",
        "dbname": "orders",
        "application_name": "me@corp",
    }


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        (
            "postgresql://app:s3cret@db.example:6432/orders?sslmode=require",
            "postgresql://app@db.example:6432/orders?sslmode=require",
        ),
        (
            "postgresql+asyncpg://app:s3cret@db:5432/orders",
            "postgresql+asyncpg://app@db:5432/orders",
        ),
        (
            "postgresql://app@db/orders?password=s3cret&application_name=web",
            "postgresql://app@db/orders?application_name=web",
        ),
        ("postgresql://db/orders", "postgresql://db/orders"),
        (
            "host=db port=5432 dbname=orders user=app password=s3cret",
            "host=db port=5432 dbname=orders user=app",
        ),
        (
            "host=db user=app password='s3 cret' sslmode=require",
            "host=db user=app sslmode=require",
        ),
        ("host=db user=app password=s3cret bogus=1", "host=db user=app password=*** bogus=1"),
    ],
)
def test_redact_removes_passwords_and_keeps_the_rest(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown


@pytest.mark.parametrize(
    ("dsn", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("mysql://app:s3cret@db/orders", "unsupported scheme 'mysql'"),
        ("host=db password=s3cret bogus_option=1", 'invalid connection option "bogus_option"'),
        ("postgresql://app:s3cret@db/orders?bogus=1", 'invalid URI query parameter: "bogus"'),
        ("host=db passwords3cret", 'missing "="'),
        ("host=db password='s3cret", "unterminated quoted string"),
        ("postgresql+asyncpg://app:s3cret@db/orders?ssl=maybe", "unsupported ssl value"),
    ],
)
def test_malformed_dsn_gives_a_clear_error_without_the_password(dsn: str, says: str) -> None:
    with pytest.raises(InvalidDsnError) as caught:
        normalize_dsn(dsn)
    message = str(caught.value)
    assert message.startswith("invalid DSN: ")
    assert says in message
    assert "s3cret" not in message
    assert "\n" not in message
    assert "s3cret" not in redact_dsn(dsn)
