"""PD101/PD102/PD103/PD201: sessions and connections that nothing is sure to close."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from pooldoctor.scan.facts import (
    ASYNC_SESSION,
    CONNECTION,
    CONNECTION_METHODS,
    ENGINE_NAME,
    FUNCTION_NODES,
    SESSION,
    SESSION_CLASSES,
    ModuleInfo,
    ProjectFacts,
    is_engine_factory_call,
    scopes,
    sessionmaker_kind,
    terminal_name,
    walk_scope,
)

RULE_FOR_KIND = {SESSION: "PD101", ASYNC_SESSION: "PD103", CONNECTION: "PD102"}
CLOSERS = frozenset({"close", "aclose"})
OWNERSHIP_CALLS = frozenset(
    {"closing", "aclosing", "enter_context", "enter_async_context", "push", "push_async_exit"}
)
STORING_METHODS = frozenset({"append", "add", "extend", "setdefault", "put", "put_nowait"})


@dataclass(frozen=True)
class RawFinding:
    """A rule hit on an AST node, before paths and suppressions are applied."""

    node: ast.AST
    rule_id: str
    message: str


class Classifier:
    """Which calls create a session or check out a connection."""

    def __init__(self, module: ModuleInfo, facts: ProjectFacts) -> None:
        self.module = module
        self.facts = facts
        self.local_rebinds = {
            target.id
            for node in module.tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }

    def _looks_like_engine(self, node: ast.AST) -> bool:
        if is_engine_factory_call(node):
            return True
        name = terminal_name(node)
        return name is not None and (name in self.facts.engines or bool(ENGINE_NAME.search(name)))

    def kind_of(self, call: ast.Call) -> str | None:
        func = call.func
        name = terminal_name(func)
        if isinstance(func, ast.Call):
            return sessionmaker_kind(func, self.module)
        if name is None:
            return None
        if isinstance(func, ast.Attribute) and name in CONNECTION_METHODS:
            return CONNECTION if self._looks_like_engine(func.value) else None
        if name in self.facts.sessionmakers:
            return self.facts.sessionmakers[name]
        if name in SESSION_CLASSES:
            imported = isinstance(func, ast.Name) and self.module.from_sqlalchemy(name)
            qualified = isinstance(func, ast.Attribute)
            if (imported or qualified) and name not in self.local_rebinds:
                return SESSION_CLASSES[name]
            return None
        if isinstance(func, ast.Name) and name in self.facts.factories:
            return self.facts.factories[name]
        return None


def _describe(call: ast.Call) -> str:
    text = ast.unparse(call.func)
    return (text if len(text) <= 40 else "..." + text[-37:]) + "()"


def _parent(module: ModuleInfo, node: ast.AST) -> ast.AST | None:
    parent = module.parents.get(node)
    while isinstance(parent, ast.Await):
        node, parent = parent, module.parents.get(parent)
    return parent


def _ancestors(module: ModuleInfo, node: ast.AST) -> list[ast.AST]:
    chain: list[ast.AST] = []
    current = module.parents.get(node)
    while current is not None:
        chain.append(current)
        current = module.parents.get(current)
    return chain


def _in_with_item(module: ModuleInfo, node: ast.AST) -> bool:
    child = node
    for ancestor in _ancestors(module, node):
        if isinstance(ancestor, ast.withitem):
            return ancestor.context_expr is child
        if isinstance(ancestor, ast.stmt):
            return False
        child = ancestor
    return False


def _in_finally(module: ModuleInfo, node: ast.AST) -> bool:
    child = node
    for ancestor in _ancestors(module, node):
        if isinstance(ancestor, ast.Try | ast.TryStar) and any(
            child is stmt for stmt in ancestor.finalbody
        ):
            return True
        if isinstance(ancestor, FUNCTION_NODES):
            return False
        child = ancestor
    return False


def _owned_by_call(parent: ast.AST | None) -> bool:
    return isinstance(parent, ast.Call) and terminal_name(parent.func) in OWNERSHIP_CALLS


@dataclass
class _Uses:
    """How a variable holding a session/connection is used within its scope."""

    managed: bool = False  # `with`, finally-close, escape to an owner
    closed_outside_finally: bool = False
    returned: list[ast.Return] | None = None


def _uses_of(module: ModuleInfo, scope: ast.AST, name: str, kind: str) -> _Uses:
    uses = _Uses(returned=[])
    for node in walk_scope(scope):
        if isinstance(node, FUNCTION_NODES) and node is not scope:
            if any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node)):
                uses.managed = True  # a closure owns it now (callback, cleanup function)
            continue
        if not (isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load)):
            continue
        parent = _parent(module, node)
        if isinstance(parent, ast.withitem) or _owned_by_call(parent):
            uses.managed = True
        elif isinstance(parent, ast.Attribute) and parent.value is node:
            grand = _parent(module, parent)
            if parent.attr in CLOSERS and isinstance(grand, ast.Call) and grand.func is parent:
                if _in_finally(module, grand):
                    uses.managed = True
                else:
                    uses.closed_outside_finally = True
            elif parent.attr in CLOSERS:
                uses.managed = True  # `stack.callback(session.close)`: registered for later
            elif (
                parent.attr == "begin"
                and kind != CONNECTION
                and grand is not None
                and _in_with_item(module, grand)
            ):
                uses.managed = True  # `with session.begin():` ends the transaction either way
        elif isinstance(parent, ast.Return):
            assert uses.returned is not None
            uses.returned.append(parent)
        elif isinstance(parent, ast.Assign | ast.AnnAssign | ast.NamedExpr):
            uses.managed = True  # stored on an object or aliased: its owner closes it
        elif (
            isinstance(parent, ast.Call)
            and isinstance(parent.func, ast.Attribute)
            and parent.func.attr in STORING_METHODS
        ):
            uses.managed = True
        elif isinstance(parent, ast.Dict | ast.List | ast.Tuple | ast.Set | ast.keyword):
            if isinstance(parent, ast.keyword):
                continue
            uses.managed = True
    return uses


def _function_of(
    module: ModuleInfo, node: ast.AST
) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    for ancestor in _ancestors(module, node):
        if isinstance(ancestor, ast.FunctionDef | ast.AsyncFunctionDef):
            return ancestor
        if isinstance(ancestor, ast.Lambda | ast.ClassDef):
            return None
    return None


def _is_generator(function: ast.AST) -> bool:
    return any(isinstance(node, ast.Yield | ast.YieldFrom) for node in walk_scope(function))


class LeakAnalysis:
    """Runs over one module; `returns` records functions that hand a session to their caller."""

    def __init__(self, module: ModuleInfo, facts: ProjectFacts) -> None:
        self.module = module
        self.facts = facts
        self.classifier = Classifier(module, facts)
        self.findings: list[RawFinding] = []
        self.returns: dict[str, tuple[str, ast.Return]] = {}  # function name -> (kind, return)
        self.yields: set[str] = set()

    def run(self) -> list[RawFinding]:
        for scope in scopes(self.module.tree):
            for node in walk_scope(scope):
                if isinstance(node, ast.Call):
                    kind = self.classifier.kind_of(node)
                    if kind is not None:
                        self._note_provider(node, kind)
                        self._check(scope, node, kind)
        self._dependencies_returning_sessions()
        return self.findings

    def _flag(self, node: ast.AST, kind: str, message: str) -> None:
        self.findings.append(RawFinding(node, RULE_FOR_KIND[kind], message))

    def _note_provider(self, call: ast.Call, kind: str) -> None:
        function = _function_of(self.module, call)
        if function is not None and kind != CONNECTION and _is_generator(function):
            self.yields.add(function.name)

    def _note_return(self, node: ast.Return, kind: str) -> None:
        function = _function_of(self.module, node)
        if function is not None and not _is_generator(function):
            self.returns[function.name] = (kind, node)

    def _check(self, scope: ast.AST, call: ast.Call, kind: str) -> None:
        what = _describe(call)
        parent = _parent(self.module, call)
        if _in_with_item(self.module, call) or _owned_by_call(parent):
            return
        if isinstance(parent, ast.Return):
            self._note_return(parent, kind)
            return
        if isinstance(parent, ast.Yield | ast.YieldFrom):
            self._flag(call, kind, f"{what} is yielded but nothing closes it after the yield")
            return
        if isinstance(parent, ast.Assign | ast.AnnAssign) and parent.value is not None:
            targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
            if len(targets) == 1 and isinstance(targets[0], ast.Name):
                self._check_variable(scope, call, targets[0].id, kind)
            return
        if isinstance(parent, ast.Attribute | ast.Expr | ast.Call | ast.keyword):
            self._flag(call, kind, f"{what} is used inline: nothing keeps it to close it")

    def _check_variable(self, scope: ast.AST, call: ast.Call, name: str, kind: str) -> None:
        uses = _uses_of(self.module, scope, name, kind)
        if uses.returned:
            for node in uses.returned:
                self._note_return(node, kind)
            return
        if uses.managed:
            return
        what = _describe(call)
        if uses.closed_outside_finally:
            message = (
                f"`{name}` = {what} is closed only on the success path: an exception before "
                "close() leaks its connection"
            )
        else:
            message = f"`{name}` = {what} is never closed (no `with`, no close() in `finally`)"
        self._flag(call, kind, message)

    def _dependencies_returning_sessions(self) -> None:
        for function_name, (kind, node) in self.returns.items():
            if kind != CONNECTION and function_name in self.facts.dependencies:
                self.findings.append(
                    RawFinding(
                        node,
                        "PD201",
                        f"dependency `{function_name}` returns a session that is never closed; "
                        "yield it from `with` (or try/finally) instead",
                    )
                )


def learn_factories(module: ModuleInfo, facts: ProjectFacts) -> None:
    """Record functions that return a session (factories) or provide one to Depends."""
    analysis = LeakAnalysis(module, facts)
    analysis.run()
    for name, (kind, _) in analysis.returns.items():
        facts.factories.setdefault(name, kind)
        if kind != CONNECTION:
            facts.session_providers.add(name)
    facts.session_providers.update(analysis.yields)
