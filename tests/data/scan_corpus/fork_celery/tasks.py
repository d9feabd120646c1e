"""A Celery app (prefork workers) with an engine created at import time."""

# ruff: noqa  (a scanner corpus: leak-prone code on purpose)

from celery import Celery
from sqlalchemy import create_engine, text

celery_app = Celery("tasks")
engine = create_engine("postgresql+psycopg://app@db/app")  # expect: PD301


@celery_app.task
def ping():
    with engine.connect() as conn:
        conn.execute(text("select 1"))
