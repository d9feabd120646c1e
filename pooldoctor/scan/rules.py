"""The scan rules: stable ids, what each one catches, why it matters, and its runbook."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One static check; `id` never changes once released."""

    id: str
    name: str
    title: str
    explanation: str
    runbook: str

    @property
    def runbook_command(self) -> str:
        return f"pooldoctor runbooks show {self.runbook}"


RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule(
            "PD101",
            "session-not-closed",
            "Session created without `with` or a try/finally that closes it",
            "A Session holds a pooled connection from its first query until it is closed. If an "
            "exception is raised between creating the session and `close()`, the connection stays "
            "checked out until the garbage collector finds the session: under load the pool "
            "empties and requests fail with QueuePool timeouts (3o7r). Use `with Session(engine) "
            "as session:` (or close it in `finally`).",
            "connection-leak",
        ),
        Rule(
            "PD102",
            "connection-not-closed",
            "Engine connection opened without `with` or a try/finally that closes it",
            "`engine.connect()`, `engine.begin()` and `engine.raw_connection()` check a connection "
            "out of the pool; it returns only on `close()`. Without `with engine.connect() as "
            "conn:` (or `close()` in `finally`), an exception leaves it checked out.",
            "connection-leak",
        ),
        Rule(
            "PD103",
            "async-session-not-closed",
            "AsyncSession created without `async with` or a try/finally that closes it",
            "An AsyncSession that is not closed keeps its connection until garbage collection, "
            "which for asyncio drivers cannot even return it cleanly (SQLAlchemy warns and "
            "terminates it). Cancellation makes this worse: use `async with sessionmaker() as "
            "session:` so cleanup runs on every path.",
            "connection-leak",
        ),
        Rule(
            "PD201",
            "dependency-returns-session",
            "FastAPI dependency returns a session instead of yielding it",
            "A dependency that `return`s a session gives FastAPI nothing to run after the "
            "request, so the session is never closed. Write it as `with SessionLocal() as "
            "session: yield session` so FastAPI closes it when the request ends.",
            "connection-leak",
        ),
        Rule(
            "PD202",
            "dependency-session-in-background-task",
            "Session from a dependency passed to BackgroundTasks.add_task",
            "Background tasks run after the response, when the dependency's cleanup has run "
            "(FastAPI 0.106+) or is waiting for them: the task either uses a closed session or "
            "keeps the connection checked out for its whole duration. Open a new session inside "
            "the task.",
            "streaming-holds-session",
        ),
        Rule(
            "PD203",
            "dependency-session-in-streaming-response",
            "Session from a dependency used by a streaming response",
            "A yield dependency's cleanup runs after the response is sent (FastAPI 0.118+), so a "
            "StreamingResponse that reads from the request's session pins a pooled connection "
            "until the client has read the last byte. Load the data before streaming, or open a "
            "short session inside the generator.",
            "streaming-holds-session",
        ),
        Rule(
            "PD301",
            "engine-shared-across-fork",
            "Engine created at import time in code that forks, with no dispose after fork",
            "With gunicorn --preload/preload_app or Celery prefork, an engine created at import "
            "time is copied into every worker together with its pooled sockets; two processes "
            "then talk on one connection (SSL errors, `consuming input failed`). Call "
            "`engine.dispose(close=False)` in a post-fork hook (gunicorn `post_fork`, Celery "
            "`worker_process_init`) or create the engine after the fork.",
            "fork-shared-engine",
        ),
    )
}
