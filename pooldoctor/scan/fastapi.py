"""PD202/PD203: a request's dependency session handed to background tasks or streaming bodies."""

from __future__ import annotations

import ast

from pooldoctor.scan.facts import (
    SESSION_CLASSES,
    ModuleInfo,
    ProjectFacts,
    depends_target,
    terminal_name,
    walk_scope,
)
from pooldoctor.scan.leaks import RawFinding

STREAMING_RESPONSES = frozenset({"StreamingResponse", "EventSourceResponse"})


def _mentions_session_dependency(node: ast.AST | None, facts: ProjectFacts) -> bool:
    """True for `Depends(get_db)` of a session provider, or an annotation naming a Session."""
    if node is None:
        return False
    for part in ast.walk(node):
        target = depends_target(part)
        if target is not None and target in facts.session_providers:
            return True
    return False


def _annotated_aliases(module: ModuleInfo, facts: ProjectFacts) -> set[str]:
    """Module-level `SessionDep = Annotated[Session, Depends(get_db)]` names."""
    aliases: set[str] = set()
    for node in module.tree.body:
        if isinstance(node, ast.Assign) and _mentions_session_dependency(node.value, facts):
            aliases.update(t.id for t in node.targets if isinstance(t, ast.Name))
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and _mentions_session_dependency(node.value, facts)
        ):
            aliases.add(node.target.id)
    return aliases


def _session_parameters(
    function: ast.FunctionDef | ast.AsyncFunctionDef, facts: ProjectFacts, aliases: set[str]
) -> set[str]:
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    defaults: dict[str, ast.AST | None] = dict.fromkeys((a.arg for a in positional), None)
    with_default = positional[len(positional) - len(args.defaults) :]
    for arg, positional_default in zip(with_default, args.defaults, strict=True):
        defaults[arg.arg] = positional_default
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        defaults[arg.arg] = kw_default
    names: set[str] = set()
    for arg in [*positional, *args.kwonlyargs]:
        annotation = arg.annotation
        default = defaults.get(arg.arg)
        typed = terminal_name(annotation) if annotation is not None else None
        if (
            _mentions_session_dependency(default, facts)
            or _mentions_session_dependency(annotation, facts)
            or typed in aliases
            or (typed in SESSION_CLASSES and default is not None)
        ):
            names.add(arg.arg)
    return names


def _references(node: ast.AST, names: set[str], local_functions: dict[str, ast.AST]) -> bool:
    for part in ast.walk(node):
        if isinstance(part, ast.Name) and part.id in names:
            return True
        if (
            isinstance(part, ast.Name)
            and part.id in local_functions
            and _references(local_functions[part.id], names, {})
        ):
            return True
    return False


def analyse_fastapi(module: ModuleInfo, facts: ProjectFacts) -> list[RawFinding]:
    aliases = _annotated_aliases(module, facts)
    findings: list[RawFinding] = []
    for function in ast.walk(module.tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        params = _session_parameters(function, facts, aliases)
        if not params:
            continue
        local_functions: dict[str, ast.AST] = {
            node.name: node
            for node in walk_scope(function)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        for node in walk_scope(function):
            if not isinstance(node, ast.Call):
                continue
            name = terminal_name(node.func)
            arguments = [*node.args, *(kw.value for kw in node.keywords)]
            if name == "add_task" and isinstance(node.func, ast.Attribute):
                rule, where = "PD202", "a background task"
            elif name in STREAMING_RESPONSES:
                rule, where = "PD203", f"a {name}"
            else:
                continue
            used = sorted(
                param
                for param in params
                if any(_references(arg, {param}, local_functions) for arg in arguments)
            )
            if used:
                findings.append(
                    RawFinding(
                        node,
                        rule,
                        f"dependency session `{used[0]}` of `{function.name}` is used by {where}, "
                        "which runs after the request's session handling",
                    )
                )
    return findings
