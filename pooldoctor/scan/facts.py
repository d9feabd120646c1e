"""Facts about parsed modules and the whole scanned tree that the rules rely on."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pooldoctor.scan.parse import parse_module

SESSION = "session"
ASYNC_SESSION = "async_session"
CONNECTION = "connection"

SESSION_CLASSES = {"Session": SESSION, "AsyncSession": ASYNC_SESSION}
SESSIONMAKERS = {"sessionmaker": SESSION, "async_sessionmaker": ASYNC_SESSION}
ENGINE_FACTORIES = frozenset({"create_engine", "create_async_engine", "engine_from_config"})
CONNECTION_METHODS = frozenset({"connect", "begin", "raw_connection"})
ENGINE_NAME = re.compile(r"(^|_)engine$", re.IGNORECASE)
SCOPE_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


@dataclass
class ModuleInfo:
    """One parsed file with a parent map and its imports (local name -> dotted origin)."""

    path: Path
    tree: ast.Module
    lines: list[str]
    parents: dict[ast.AST, ast.AST] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def parse(path: Path, source: str) -> ModuleInfo:
        tree = parse_module(source, filename=str(path))
        info = ModuleInfo(path, tree, source.splitlines())
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                info.parents[child] = node
            if isinstance(node, ast.Import):
                for alias in node.names:
                    info.imports[alias.asname or alias.name.split(".")[0]] = alias.name
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    info.imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        return info

    def from_sqlalchemy(self, name: str) -> bool:
        return self.imports.get(name, "").startswith("sqlalchemy")


def terminal_name(node: ast.AST) -> str | None:
    """`x` for Name x, `attr` for `a.b.attr`, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def walk_scope(scope: ast.AST) -> Iterator[ast.AST]:
    """Nodes of one scope, not descending into nested functions and classes."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, SCOPE_NODES):
            stack.extend(ast.iter_child_nodes(node))


def scopes(tree: ast.Module) -> Iterator[ast.AST]:
    yield tree
    for node in ast.walk(tree):
        if isinstance(node, SCOPE_NODES[1:]):
            yield node


def depends_target(node: ast.AST) -> str | None:
    """For `Depends(fn)` / `Security(fn)` / `Depends(dependency=fn)`: the name `fn`."""
    if not isinstance(node, ast.Call) or terminal_name(node.func) not in ("Depends", "Security"):
        return None
    args = [*node.args, *(kw.value for kw in node.keywords if kw.arg == "dependency")]
    return terminal_name(args[0]) if args else None


@dataclass
class ProjectFacts:
    """Names that mean something across the tree (imports cross files by name)."""

    sessionmakers: dict[str, str] = field(default_factory=dict)  # name -> session kind
    engines: set[str] = field(default_factory=set)
    factories: dict[str, str] = field(default_factory=dict)  # function returning a session
    session_providers: set[str] = field(default_factory=set)  # functions yielding/returning one
    dependencies: set[str] = field(default_factory=set)  # names used in Depends(...)


def sessionmaker_kind(call: ast.AST, module: ModuleInfo) -> str | None:
    """The session kind a `sessionmaker(...)`/`async_sessionmaker(...)` call produces."""
    if not isinstance(call, ast.Call):
        return None
    name = terminal_name(call.func)
    if name not in SESSIONMAKERS:
        return None
    func = call.func
    if (
        isinstance(func, ast.Name)
        and func.id in module.imports
        and not module.from_sqlalchemy(name)
    ):
        return None
    return SESSIONMAKERS[name]


def is_engine_factory_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and terminal_name(node.func) in ENGINE_FACTORIES


def collect_names(module: ModuleInfo, facts: ProjectFacts) -> None:
    """First pass: sessionmaker and engine bindings, and Depends targets."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            kind = sessionmaker_kind(node.value, module)
            for target in targets:
                name = terminal_name(target)
                if name is None:
                    continue
                if kind is not None:
                    facts.sessionmakers[name] = kind
                elif is_engine_factory_call(node.value):
                    facts.engines.add(name)
        target_name = depends_target(node)
        if target_name:
            facts.dependencies.add(target_name)
