"""Same engine at import time, but gunicorn.conf.py disposes it after fork: not flagged."""

# ruff: noqa  (a scanner corpus: leak-prone code on purpose)

from sqlalchemy import create_engine

engine = create_engine("postgresql+psycopg://app@db/app")
