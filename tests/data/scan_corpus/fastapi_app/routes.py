"""Path operations: dependency sessions in background tasks and streaming responses."""

# ruff: noqa  (a scanner corpus: leak-prone code on purpose)

from typing import Annotated

from db import get_db, get_db_returned, get_db_with, get_session_factory
from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from sqlalchemy import text
from sqlalchemy.orm import Session

app = FastAPI()
SessionDep = Annotated[Session, Depends(get_db_with)]


def send_receipt(db, order_id):
    db.execute(text("select 1"))


@app.post("/orders")
def create_order(tasks: BackgroundTasks, db: Session = Depends(get_db)):
    tasks.add_task(send_receipt, db, 42)  # expect: PD202
    return {"ok": True}


@app.post("/orders/annotated")
def create_order_annotated(tasks: BackgroundTasks, db: SessionDep):
    tasks.add_task(lambda: db.execute(text("select 1")))  # expect: PD202
    return {"ok": True}


@app.post("/orders/fresh-session")
def create_order_fresh(tasks: BackgroundTasks, db: Session = Depends(get_db)):
    tasks.add_task(send_receipt_in_own_session, 42)
    return {"ok": True}


def send_receipt_in_own_session(order_id):
    with get_session_factory() as db:
        db.execute(text("select 1"))


@app.get("/export")
def export(db: Session = Depends(get_db)):
    def rows():
        for row in db.execute(text("select * from orders")):
            yield f"{row}\n"

    return StreamingResponse(rows())  # expect: PD203


@app.get("/export-preloaded")
def export_preloaded(db: Session = Depends(get_db)):
    rows = [f"{row}\n" for row in db.execute(text("select * from orders"))]
    return StreamingResponse(iter(rows))


@app.get("/legacy")
def legacy(db: Session = Depends(get_db_returned)):
    return db.execute(text("select 1")).scalar()
