"""An engine at import time with nothing that forks: not flagged."""

# ruff: noqa  (a scanner corpus: leak-prone code on purpose)

from sqlalchemy import create_engine

engine = create_engine("postgresql+psycopg://app@db/app")
