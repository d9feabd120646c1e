"""Runbooks: load `runbooks/<slug>.md` (YAML front matter + sections), validate, look up by slug."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

RUNBOOK_SLUGS: tuple[str, ...] = (
    "connection-leak",
    "pool-undersized",
    "slow-queries",
    "lock-contention",
    "idle-in-transaction",
    "server-max-connections",
    "stale-connections",
    "connect-timeouts",
    "missing-timeouts",
    "pgbouncer-saturation",
    "fork-shared-engine",
    "streaming-holds-session",
    "threadpool-deadlock",
    "async-cancellation-leak",
    "prepared-statements-pgbouncer",
    "failover-read-only",
)
REQUIRED_SECTIONS: tuple[str, ...] = (
    "Meaning",
    "Impact",
    "Diagnosis",
    "Mitigation",
    "Prevention",
    "Related",
)
REQUIRED_KEYS: tuple[str, ...] = (
    "title",
    "description",
    "severity",
    "tags",
    "alerts",
    "symptoms",
    "related",
)
SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")

# Installed (non-editable) packages carry a copy of the repo's runbooks/ under this package folder.
PACKAGE_DATA_DIR = "_runbooks"
_SOURCE_DIR = Path(__file__).resolve().parent.parent / "runbooks"
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(?P<yaml>.*?)\n---[ \t]*\n(?P<body>.*)\Z", re.DOTALL)
_FENCE = re.compile(r"^\s*(```|~~~)")
_SECTION = re.compile(r"^## +(?P<name>.+?)\s*#*\s*$")
_FENCE_WITHOUT_LANGUAGE = re.compile(r"^\s*(```|~~~)\s*$")
_INLINE_CODE = re.compile(r"`[^`]*`")
_RAW_HTML = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(\s[^<>]*)?/?>|<!--")
_RELATIVE_MD_LINK = re.compile(r"\]\((?P<target>(?![a-z][a-z0-9+.-]*:)[^)#\s]+\.md)(?:#[^)]*)?\)")


class RunbookError(ValueError):
    """A runbook file (or the runbooks folder) cannot be read or parsed."""


class UnknownRunbook(KeyError):
    """No runbook has this slug; the message suggests the closest one."""

    def __init__(self, slug: str, known: tuple[str, ...] = RUNBOOK_SLUGS) -> None:
        self.slug = slug
        close = difflib.get_close_matches(slug, known, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else "; see `pooldoctor runbooks list`"
        self.message = f"unknown runbook '{slug}'{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Runbook:
    """One runbook: its front matter, its markdown body and the `## ` sections found in it."""

    slug: str
    title: str
    description: str
    severity: str
    tags: tuple[str, ...]
    alerts: tuple[str, ...]
    symptoms: tuple[str, ...]
    related: tuple[str, ...]
    body: str
    sections: tuple[str, ...]
    missing_keys: tuple[str, ...] = ()
    """Front-matter keys absent from the file (reported by `validate_runbook`)."""

    def links(self) -> tuple[str, ...]:
        """Relative `.md` link targets in the body, in order of appearance."""
        return tuple(match["target"] for match in _RELATIVE_MD_LINK.finditer(_prose(self.body)))


def runbooks_dir() -> Path:
    """The folder holding the runbooks: the repo's `runbooks/` in a checkout, else package data."""
    if (_SOURCE_DIR / f"{RUNBOOK_SLUGS[0]}.md").is_file():
        return _SOURCE_DIR
    packaged = Path(str(resources.files("pooldoctor").joinpath(PACKAGE_DATA_DIR)))
    if (packaged / f"{RUNBOOK_SLUGS[0]}.md").is_file():
        return packaged
    raise RunbookError(f"runbooks not found (looked in {_SOURCE_DIR} and {packaged})")


def runbook_path(slug: str) -> Path:
    """Path of the runbook file for slug; raises UnknownRunbook for a slug not in RUNBOOK_SLUGS."""
    if slug not in RUNBOOK_SLUGS:
        raise UnknownRunbook(slug)
    return runbooks_dir() / f"{slug}.md"


def parse_runbook(slug: str, text: str) -> Runbook:
    """Parse one runbook's text; raises RunbookError when the front matter is absent or not YAML."""
    match = _FRONT_MATTER.match(text.replace("\r\n", "\n"))
    if match is None:
        raise RunbookError(f"{slug}: no YAML front matter (the file must start with a --- block)")
    try:
        meta = yaml.safe_load(match["yaml"])
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise RunbookError(f"{slug}: front matter is not valid YAML: {problem}") from None
    if not isinstance(meta, dict):
        raise RunbookError(f"{slug}: front matter must be a mapping of keys to values")
    body = match["body"]
    return Runbook(
        slug=slug,
        title=_text(meta.get("title")),
        description=_text(meta.get("description")),
        severity=_text(meta.get("severity")),
        tags=_strings(meta.get("tags")),
        alerts=_strings(meta.get("alerts")),
        symptoms=_strings(meta.get("symptoms")),
        related=_strings(meta.get("related")),
        body=body,
        sections=_sections(body),
        missing_keys=tuple(key for key in REQUIRED_KEYS if key not in meta),
    )


def load_runbooks(directory: Path | None = None) -> dict[str, Runbook]:
    """Load every `*.md` in directory (default: `runbooks_dir()`), keyed by slug (file stem)."""
    folder = runbooks_dir() if directory is None else directory
    if not folder.is_dir():
        raise RunbookError(f"runbooks folder not found: {folder}")
    loaded: dict[str, Runbook] = {}
    for path in sorted(folder.glob("*.md")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RunbookError(f"cannot read {path}: {exc}") from None
        loaded[path.stem] = parse_runbook(path.stem, text)
    return loaded


def get_runbook(slug: str) -> Runbook:
    """The runbook for slug; raises UnknownRunbook (with a suggestion) when there is none."""
    path = runbook_path(slug)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UnknownRunbook(slug) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunbookError(f"cannot read {path}: {exc}") from None
    return parse_runbook(slug, text)


def validate_runbook(rb: Runbook, known: tuple[str, ...] = RUNBOOK_SLUGS) -> list[str]:
    """Problems with one runbook (empty when it is fine), each a one-line message."""
    problems = [f"missing front-matter key '{key}'" for key in rb.missing_keys]
    if rb.slug not in known:
        problems.append(f"slug '{rb.slug}' is not a known runbook slug")
    if "title" not in rb.missing_keys and not rb.title:
        problems.append("title is empty")
    if "description" not in rb.missing_keys and (not rb.description or "\n" in rb.description):
        problems.append("description must be one non-empty line")
    if "severity" not in rb.missing_keys and rb.severity not in SEVERITIES:
        problems.append(f"severity '{rb.severity}' is not one of {', '.join(SEVERITIES)}")
    if "symptoms" not in rb.missing_keys and not rb.symptoms:
        problems.append("symptoms is empty: list the exact error strings an engineer would grep")
    if "tags" not in rb.missing_keys and not rb.tags:
        problems.append("tags is empty")
    problems.extend(_section_problems(rb.sections))
    problems.extend(_markdown_problems(rb.body))
    for slug in rb.related:
        if slug not in known:
            problems.append(f"related slug '{slug}' is not a known runbook")
        elif slug == rb.slug:
            problems.append("related lists the runbook itself")
    linked = set()
    for target in rb.links():
        linked_slug = target.removesuffix(".md")
        linked.add(linked_slug)
        if "/" in target or linked_slug not in known:
            problems.append(f"link '{target}' does not point at a runbook in the same folder")
    problems.extend(
        f"related slug '{slug}' is not linked in the Related section"
        for slug in rb.related
        if slug in known and slug not in linked
    )
    return problems


def _section_problems(found: tuple[str, ...]) -> list[str]:
    problems = [f"missing section '## {name}'" for name in REQUIRED_SECTIONS if name not in found]
    problems.extend(
        f"unexpected section '## {name}'" for name in found if name not in REQUIRED_SECTIONS
    )
    if len(set(found)) != len(found):
        problems.append("a section appears more than once")
    present = [name for name in found if name in REQUIRED_SECTIONS]
    expected = [name for name in REQUIRED_SECTIONS if name in present]
    if present != expected:
        problems.append(f"sections out of order: {', '.join(present)}; want {', '.join(expected)}")
    return problems


def _markdown_problems(body: str) -> list[str]:
    """mkdocs hygiene: every opening code fence names its language; no raw HTML in prose."""
    problems: list[str] = []
    fenced = False
    for number, line in enumerate(body.splitlines(), start=1):
        if _FENCE.match(line):
            if not fenced and _FENCE_WITHOUT_LANGUAGE.match(line):
                problems.append(f"body line {number}: code fence without a language")
            fenced = not fenced
        elif not fenced and _RAW_HTML.search(_INLINE_CODE.sub("", line)):
            problems.append(f"body line {number}: raw HTML")
    if fenced:
        problems.append("a code fence is never closed")
    return problems


def _prose(body: str) -> str:
    """The body without fenced code blocks (a `## ` or a link inside code is not markdown)."""
    kept: list[str] = []
    fenced = False
    for line in body.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(line)
    return "\n".join(kept)


def _sections(body: str) -> tuple[str, ...]:
    matches = (_SECTION.match(line) for line in _prose(body).splitlines())
    return tuple(match["name"] for match in matches if match)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value if item is not None)
    return (str(value),)


_LIST_ITEM = re.compile(r"^(?:\d+\.|[-*])\s+(?P<text>.*)$")
_MD_LINK = re.compile(r"\[(?P<text>[^\]]+)\]\([^)]*\)")
SLUG_PLACEHOLDER = "{slug}"


def runbook_url(site_url: str, slug: str) -> str:
    """The one URL rule for a runbook page, shared by `alerts` and the report.

    `site/runbooks/<slug>/` (mkdocs directory URLs under the site root), or the given URL with
    `{slug}` replaced when it carries that placeholder.

    >>> runbook_url("https://ops.example.com/pooldoctor/", "connection-leak")
    'https://ops.example.com/pooldoctor/runbooks/connection-leak/'
    >>> runbook_url("https://wiki.example.com/{slug}.html", "pool-undersized")
    'https://wiki.example.com/pool-undersized.html'
    """
    if SLUG_PLACEHOLDER in site_url:
        return site_url.replace(SLUG_PLACEHOLDER, slug)
    return f"{site_url.rstrip('/')}/runbooks/{slug}/"


def section_item_blocks(body: str, name: str) -> tuple[tuple[str, ...], ...]:
    """The top-level list items of one `## name` section, each as its markdown lines (dedented)."""
    items: list[list[str]] = []
    inside = fenced = False
    for line in body.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (heading := _SECTION.match(line)):
            inside = heading["name"] == name
            continue
        if not inside:
            continue
        item = None if fenced else _LIST_ITEM.match(line)
        if item:
            items.append([item["text"].rstrip()])
        elif items and (not line.strip() or line.startswith(" ") or fenced or _FENCE.match(line)):
            items[-1].append(line)
        elif line.strip() and items:
            inside = False
    return tuple(tuple(_dedent(block)) for block in items)


def _dedent(block: list[str]) -> list[str]:
    while block and not block[-1].strip():
        block.pop()
    rest = [line for line in block[1:] if line.strip()]
    indent = min((len(line) - len(line.lstrip()) for line in rest), default=0)
    return [block[0], *(line[indent:] for line in block[1:])]


def _one_line(block: tuple[str, ...]) -> str:
    """An item's first paragraph on one line; a code block it introduces with ':' joins inline."""
    paragraph: list[str] = []
    lines = iter(block)
    for line in lines:
        if not line.strip() or _FENCE.match(line):
            break
        paragraph.append(line.strip())
    text = _MD_LINK.sub(r"\g<text>", " ".join(paragraph))
    if text.endswith(":"):
        code: list[str] = []
        started = False
        for line in block:
            if _FENCE.match(line):
                if started:
                    break
                started = True
            elif started:
                code.append(line.strip())
        if code:
            text += " `" + " ".join(part for part in code if part) + "`"
    return text


def section_items(body: str, name: str) -> tuple[str, ...]:
    """The top-level list items of one `## name` section, each on one line."""
    return tuple(_one_line(block) for block in section_item_blocks(body, name))


def first_mitigation_step(runbook: Runbook) -> str:
    """The runbook's first Mitigation step (what the report shows when no site URL is set)."""
    steps = section_items(runbook.body, "Mitigation")
    return steps[0] if steps else ""
