"""A factory's caller that forgets `with` is flagged at the call; one that uses it is not."""

# ruff: noqa  (a scanner corpus: leak-prone code on purpose)

from sqlalchemy import text

from sessions_correct import make_session


def forgets_with():
    session = make_session()  # expect: PD101
    session.execute(text("select 1"))


def remembers_with():
    with make_session() as session:
        session.execute(text("select 1"))
