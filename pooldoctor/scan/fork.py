"""PD301: an engine created at import time in a tree that forks workers after import."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from pooldoctor.scan.facts import ModuleInfo, is_engine_factory_call, terminal_name
from pooldoctor.scan.leaks import RawFinding

PRELOAD_FLAG = re.compile(r"(^|\s)--preload(\s|$|\")", re.MULTILINE)
POST_FORK_HOOKS = frozenset({"post_fork", "post_worker_init"})  # gunicorn server hooks
FORK_REGISTRARS = frozenset({"register_at_fork", "register_after_fork"})
CELERY_CHILD_SIGNALS = frozenset({"worker_process_init"})


@dataclass
class ForkFacts:
    """Where the tree forks after import, and whether a post-fork hook disposes an engine."""

    fork_sources: list[str] = field(default_factory=list)
    hook_names: set[str] = field(default_factory=set)
    disposing_functions: set[str] = field(default_factory=set)
    disposing_lambda_hook: bool = False

    @property
    def disposes_after_fork(self) -> bool:
        return self.disposing_lambda_hook or bool(self.hook_names & self.disposing_functions)


def _calls_dispose(node: ast.AST) -> bool:
    return any(
        isinstance(part, ast.Call) and terminal_name(part.func) == "dispose"
        for part in ast.walk(node)
    )


def _is_celery_signal(node: ast.AST) -> bool:
    """`worker_process_init.connect` (possibly called with options)."""
    if isinstance(node, ast.Call):
        node = node.func
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "connect"
        and terminal_name(node.value) in CELERY_CHILD_SIGNALS
    )


def learn_fork_facts(module: ModuleInfo, facts: ForkFacts) -> None:
    for node in ast.walk(module.tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name in POST_FORK_HOOKS:
                facts.hook_names.add(node.name)
            if any(_is_celery_signal(decorator) for decorator in node.decorator_list):
                facts.hook_names.add(node.name)
            if _calls_dispose(node):
                facts.disposing_functions.add(node.name)
        elif isinstance(node, ast.Call):
            name = terminal_name(node.func)
            if name == "Celery":
                facts.fork_sources.append(f"a Celery app in {module.path.name}")
            if name in FORK_REGISTRARS or _is_celery_signal(node.func):
                for value in [*node.args, *(kw.value for kw in node.keywords)]:
                    if isinstance(value, ast.Lambda) and _calls_dispose(value):
                        facts.disposing_lambda_hook = True
                    hook = terminal_name(value)
                    if hook:
                        facts.hook_names.add(hook)
    for statement in module.tree.body:
        if (
            isinstance(statement, ast.Assign)
            and any(terminal_name(t) == "preload_app" for t in statement.targets)
            and isinstance(statement.value, ast.Constant)
            and statement.value.value is True
        ):
            facts.fork_sources.append(f"gunicorn preload_app in {module.path.name}")


def learn_fork_text(path: Path, text: str, facts: ForkFacts) -> None:
    """Non-Python files (Procfile, Dockerfile, scripts, YAML) may start gunicorn --preload."""
    if PRELOAD_FLAG.search(text):
        facts.fork_sources.append(f"gunicorn --preload in {path.name}")


def _module_level_statements(module: ModuleInfo) -> list[ast.stmt]:
    statements: list[ast.stmt] = []
    pending: list[ast.stmt] = list(module.tree.body)
    while pending:
        statement = pending.pop(0)
        if isinstance(statement, ast.If | ast.Try | ast.With):
            for block in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(statement, block, []):
                    pending.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])
        elif not isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            statements.append(statement)
    return statements


def _eager_nodes(statement: ast.stmt) -> list[ast.AST]:
    """Nodes evaluated when the statement runs (lambda bodies are not)."""
    nodes: list[ast.AST] = []
    pending: list[ast.AST] = [statement]
    while pending:
        node = pending.pop()
        nodes.append(node)
        if not isinstance(node, ast.Lambda):
            pending.extend(ast.iter_child_nodes(node))
    return nodes


def _uses_null_pool(call: ast.Call) -> bool:
    return any(
        keyword.arg == "poolclass" and terminal_name(keyword.value) == "NullPool"
        for keyword in call.keywords
    )


def analyse_fork(module: ModuleInfo, facts: ForkFacts) -> list[RawFinding]:
    if not facts.fork_sources or facts.disposes_after_fork:
        return []
    findings: list[RawFinding] = []
    for statement in _module_level_statements(module):
        for node in _eager_nodes(statement):
            if is_engine_factory_call(node) and isinstance(node, ast.Call):
                if _uses_null_pool(node):
                    continue
                findings.append(
                    RawFinding(
                        node,
                        "PD301",
                        f"engine created at import time while the tree forks workers "
                        f"({facts.fork_sources[0]}) and no post-fork hook calls dispose()",
                    )
                )
    return findings
