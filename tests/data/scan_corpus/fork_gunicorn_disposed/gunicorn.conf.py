"""gunicorn config: preload, and dispose the inherited pool in each worker."""

# ruff: noqa  (a scanner corpus: leak-prone code on purpose)

preload_app = True
workers = 4


def post_fork(server, worker):
    from app import engine

    engine.dispose(close=False)
