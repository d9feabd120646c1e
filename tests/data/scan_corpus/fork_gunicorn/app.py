"""An engine at import time, served by gunicorn --preload (see Procfile), never disposed."""

# ruff: noqa  (a scanner corpus: leak-prone code on purpose)

from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

engine = create_engine("postgresql+psycopg://app@db/app")  # expect: PD301
unpooled = create_engine("postgresql+psycopg://app@db/app", poolclass=NullPool)


def make_engine():
    return create_engine("postgresql+psycopg://app@db/app")
