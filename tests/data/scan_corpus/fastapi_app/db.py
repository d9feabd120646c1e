"""Engine, sessionmaker and dependencies of a FastAPI app."""

# ruff: noqa  (a scanner corpus: leak-prone code on purpose)

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

engine = create_engine("postgresql+psycopg://app@db/app")
SessionLocal = sessionmaker(bind=engine)


def get_db():
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


def get_db_with():
    with SessionLocal() as db:
        yield db


def get_db_returned():
    db = SessionLocal()
    return db  # expect: PD201


def get_session_factory():
    """Not a dependency: callers use it in `with`."""
    return SessionLocal()
