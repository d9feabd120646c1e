"""Draw a watch round: the rich live layout for terminals, one plain line otherwise."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pooldoctor.durations import format_duration
from pooldoctor.findings import Severity, Status
from pooldoctor.readings.text import shorten
from pooldoctor.report.textfmt import clock, percent
from pooldoctor.watch.model import PoolRow, SessionRow, SortKey, WatchView

STATUS_STYLES = {
    Status.OK: "bold green",
    Status.WARNING: "bold yellow",
    Status.CRITICAL: "bold red",
    Status.UNKNOWN: "bold magenta",
}
SEVERITY_STYLES = {Severity.CRITICAL: "red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
# Fill colours: past these shares of capacity a pool is close to making requests wait.
FILL_WARNING = 0.8
FILL_CRITICAL = 0.95
BAR_WIDTH = 20
DETAIL_CHARS = 70
KEYS_HELP = "keys: s sort · p pause · q quit    (pooldoctor never terminates anything itself)"


def _fill_style(fill: float | None) -> str:
    if fill is None:
        return "dim"
    if fill >= FILL_CRITICAL:
        return "red"
    if fill >= FILL_WARNING:
        return "yellow"
    return "green"


def fill_bar(row: PoolRow) -> Text:
    """A bar plus `28/30 (93%)`, coloured by how close the pool is to full."""
    fill = row.fill
    if fill is None:
        known = "?" if row.checked_out is None else str(row.checked_out)
        return Text(f"{known}/{row.capacity or '?'}", style="dim")
    filled = min(BAR_WIDTH, round(fill * BAR_WIDTH))
    style = _fill_style(fill)
    bar = Text("█" * filled, style=style) + Text("░" * (BAR_WIDTH - filled), style="dim")
    return bar + Text(f" {row.checked_out}/{row.capacity} ({percent(fill)})", style=style)


def _pools_table(view: WatchView) -> Table:
    table = Table(title="pools", title_justify="left", expand=True)
    table.add_column("instance", overflow="fold")
    table.add_column("fill", no_wrap=True)
    table.add_column("waiting", justify="right")
    table.add_column("timeouts", justify="right")
    for row in view.pools:
        rate = ("—" if row.timeouts is None else row.timeouts.cell()) + log_source(row)
        waiting = "—" if row.waiting is None else str(row.waiting)
        first = Text(row.instance)
        if row.error:
            first.append(f"\n{row.error}", style="red")
        table.add_row(first, fill_bar(row), waiting, rate)
    return table


def _groups_table(view: WatchView) -> Table:
    limit = f" of max_connections {view.max_connections}" if view.max_connections else ""
    total = sum(group.count for group in view.groups)
    table = Table(title=f"server backends: {total}{limit}", title_justify="left", expand=True)
    table.add_column("application")
    table.add_column("state")
    table.add_column("count", justify="right")
    table.add_column("oldest transaction", justify="right")
    table.add_column("lock waits", justify="right")
    for group in view.groups:
        oldest = group.oldest_transaction_seconds
        table.add_row(  # outside text as Text: a plain str cell is parsed as rich markup
            Text(group.application),
            Text(group.state, style="yellow" if "transaction" in group.state else ""),
            str(group.count),
            "—" if oldest is None else format_duration(oldest),
            Text(str(group.lock_waits), style="red" if group.lock_waits else "dim"),
        )
    return table


def _sessions_table(view: WatchView, sort: SortKey) -> Table:
    table = Table(
        title=f"holders and stuck sessions (sorted by {sort.value})",
        title_justify="left",
        expand=True,
    )
    table.add_column("age", justify="right", no_wrap=True)
    table.add_column("what", no_wrap=True)
    table.add_column("who")
    table.add_column("application")
    table.add_column("detail", overflow="fold")
    for row in view.sessions:
        table.add_row(
            format_duration(row.age_seconds),
            Text(row.what),
            Text(row.who),
            Text(row.application),
            Text(shorten(row.detail, DETAIL_CHARS)),
        )
    return table


def _copy_command(sessions: tuple[SessionRow, ...]) -> Text | None:
    scoped = next((row for row in sessions if row.command), None)
    if scoped is None:
        return None
    return Text.assemble(
        ("to end the oldest stuck session yourself, copy: ", "dim"), (scoped.command or "", "bold")
    )


def _leading_panel(view: WatchView) -> RenderableType:
    if view.leading is None:
        return Text("no warning or critical finding", style="green")
    lead = view.leading
    style = SEVERITY_STYLES.get(lead.severity, "")
    body = Text.assemble(
        (lead.title, "bold"),
        "\n",
        shorten(lead.summary, 300),
        "\n",
        ("runbook: ", "dim"),
        (f"pooldoctor runbooks show {lead.runbook}", "bold"),
    )
    return Panel(body, title=f"leading finding · {lead.severity.value}", border_style=style)


def render_view(view: WatchView, sort: SortKey, paused: bool, interval: float) -> RenderableType:
    """The whole live screen for one round."""
    header = Text.assemble(
        ("pooldoctor watch ", "bold"),
        (view.status.value.upper(), STATUS_STYLES[view.status]),
        f"  round {view.round} at {clock(view.at)} UTC, every {format_duration(interval)}",
        ("   PAUSED (p resumes)" if paused else "", "bold yellow"),
    )
    parts: list[RenderableType] = [header]
    if view.pools:
        parts.append(_pools_table(view))
        unattributed = _unattributed(view)
        if unattributed is not None:
            parts.append(Text(unattributed, style="dim"))
    if view.groups:
        parts.append(_groups_table(view))
    if view.sessions:
        parts.append(_sessions_table(view, sort))
        command = _copy_command(view.sessions)
        if command is not None:
            parts.append(command)
    parts.append(_leading_panel(view))
    parts.extend(Text(problem, style="red") for problem in view.problems)
    parts.append(Text(KEYS_HELP, style="dim"))
    return Group(*parts)


def log_source(row: PoolRow) -> str:
    """Where a rate came from when not the pool's own counter: this instance's log lines, or
    the whole app's (lines that do not say which instance logged them)."""
    if not row.timeouts_from_log:
        return ""
    return " (log, app-wide)" if row.timeouts_app_wide else " (log)"


def _unattributed(view: WatchView) -> str | None:
    if view.log_unattributed is None or not view.log_unattributed.count:
        return None
    return f"log: {view.log_unattributed.phrase()} name no watched instance"


def _pool_phrase(row: PoolRow) -> str:
    if row.fill is None:
        return f"{row.instance} {row.error or 'fill unknown'}"
    text = f"{row.instance} {row.checked_out}/{row.capacity} ({percent(row.fill)})"
    if row.waiting is not None:
        text += f" {row.waiting} waiting"
    if row.timeouts is not None:
        text += f" {row.timeouts.phrase()}{log_source(row)}"
    return text


def status_line(view: WatchView) -> str:
    """One plain line per round, for pipes and logs (no terminal)."""
    parts = [_pool_phrase(row) for row in view.pools]
    unattributed = _unattributed(view)
    if unattributed is not None:
        parts.append(unattributed)
    if view.groups:
        backends = sum(group.count for group in view.groups)
        idle = [g for g in view.groups if g.state.startswith("idle in transaction")]
        phrase = f"postgres {backends} backends"
        if idle:
            oldest = max(g.oldest_transaction_seconds or 0.0 for g in idle)
            count = sum(g.count for g in idle)
            phrase += f", {count} idle in transaction (oldest {format_duration(oldest)})"
        waits = sum(group.lock_waits for group in view.groups)
        if waits:
            phrase += f", {waits} lock waits"
        parts.append(phrase)
    if view.leading is not None:
        parts.append(f"leading: {view.leading.title} [{view.leading.runbook}]")
    parts.extend(view.problems)
    body = "; ".join(parts) or "no source answered"
    return " ".join(
        f"{clock(view.at)}Z round {view.round} {view.status.value.upper()}: {body}".split()
    )
