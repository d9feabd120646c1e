"""False-positive traps: correct session and connection handling; nothing here is flagged."""

# ruff: noqa  (a scanner corpus: leak-prone code on purpose)

import contextlib
import socket

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, scoped_session, sessionmaker

engine = create_engine("postgresql+psycopg://app@db/app")
SessionLocal = sessionmaker(bind=engine)
ScopedSession = scoped_session(SessionLocal)


def with_session():
    with Session(engine) as session:
        session.execute(text("select 1"))


def with_session_and_begin():
    with SessionLocal() as session, session.begin():
        session.execute(text("select 1"))


def try_finally():
    session = SessionLocal()
    try:
        session.execute(text("select 1"))
        session.commit()
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()


def session_begin_block():
    session = SessionLocal()
    with session.begin():
        session.execute(text("select 1"))


def with_connection():
    with engine.connect() as conn:
        conn.execute(text("select 1"))


def with_begin():
    with engine.begin() as conn:
        conn.execute(text("select 1"))


def closing_wrapper():
    with contextlib.closing(engine.raw_connection()) as raw:
        raw.cursor().execute("select 1")


def exit_stack():
    with contextlib.ExitStack() as stack:
        session = stack.enter_context(SessionLocal())
        session.execute(text("select 1"))


def callback_registered(request):
    session = SessionLocal()
    request.addfinalizer(session.close)
    return None


def make_session():
    """A factory: the caller owns the session and uses it in `with`."""
    return SessionLocal()


def uses_factory():
    with make_session() as session:
        session.execute(text("select 1"))


@contextlib.contextmanager
def session_scope():
    session = SessionLocal()
    try:
        yield session
        session.commit()
    finally:
        session.close()


class Repository:
    def __init__(self):
        self.session = SessionLocal()  # owned by the object; closed in close()

    def close(self):
        self.session.close()


def not_an_engine():
    sock = socket.socket()
    sock.connect(("127.0.0.1", 5432))
    sock.close()


def scoped_registry():
    ScopedSession().execute(text("select 1"))
    ScopedSession.remove()
