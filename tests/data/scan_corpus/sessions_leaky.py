"""True positives: sessions and connections nothing is sure to close."""

# ruff: noqa  (a scanner corpus: leak-prone code on purpose)

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

engine = create_engine("postgresql+psycopg://app@db/app")
SessionLocal = sessionmaker(bind=engine)


def create_order(order):
    session = SessionLocal()  # expect: PD101
    session.add(order)
    session.commit()
    notify(order)  # raises -> the session above is never closed
    session.close()


def count_orders():
    session = Session(engine)  # expect: PD101
    return session.execute(text("select count(*) from orders")).scalar()


def inline_query():
    return Session(engine).execute(text("select 1")).scalar()  # expect: PD101


def direct_sessionmaker_call():
    session = sessionmaker(bind=engine)()  # expect: PD101
    session.execute(text("select 1"))


def raw_connection():
    conn = engine.connect()  # expect: PD102
    conn.execute(text("select 1"))
    conn.commit()


def read_frame(pd):
    return pd.read_sql("select 1", engine.connect())  # expect: PD102


def begin_without_with():
    engine.begin()  # expect: PD102


def dbapi_connection():
    raw = engine.raw_connection()  # expect: PD102
    raw.cursor().execute("select 1")


def yielded_without_cleanup():
    yield SessionLocal()  # expect: PD101


def connection_begin_is_not_close():
    conn = engine.connect()  # expect: PD102
    with conn.begin():
        conn.execute(text("select 1"))


def suppressed():
    session = SessionLocal()  # pooldoctor: ignore[PD101]
    session.execute(text("select 1"))


def suppressed_bare():
    conn = engine.connect()  # pooldoctor: ignore
    conn.execute(text("select 1"))


def suppressed_other_rule_only():
    session = SessionLocal()  # pooldoctor: ignore[PD102]  # expect: PD101
    session.execute(text("select 1"))


def notify(order):
    raise RuntimeError(order)
