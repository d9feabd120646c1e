"""The demo's report in a real headless Chromium: phone and desktop widths, charts from evidence."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from pooldoctor.lab.demo import DemoResult, run_demo
from pooldoctor.report.present import setting_assignments
from pooldoctor.report.render import CHARTS_DIR

PHONE_WIDTH = 390
DESKTOP_WIDTH = 1280
CHROMIUM_SECONDS = 60
_PROBE = """<!DOCTYPE html><html><head><style>body{{margin:0}} iframe{{border:0}}</style></head>
<body><iframe id="page" src="report.html" width="{width}" height="2400"></iframe><script>
window.addEventListener("load", function () {{
  var doc = document.getElementById("page").contentDocument;
  document.body.setAttribute("data-scroll-width", doc.documentElement.scrollWidth);
  document.body.setAttribute("data-client-width", doc.documentElement.clientWidth);
  var heading = [].find.call(doc.querySelectorAll("h2"), function (h) {{
    return h.textContent === "Key times";
  }});
  var box = heading.nextElementSibling;
  var table = box.querySelector("table");
  document.body.setAttribute("data-key-times", table.scrollWidth + "/" + box.clientWidth);
}});
</script></body></html>
"""
_PATH_D = re.compile(r'<g id="series-checked-out">.*?<path d="(?P<d>[^"]+)"', re.DOTALL)
_NUMBER_PAIR = re.compile(r"(-?[\d.]+) (-?[\d.]+)")


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is required (make test installs it: scripts/ensure-chromium.sh)"
    return found


def _run_chromium(profile: Path, *args: str) -> str:
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=CHROMIUM_SECONDS, check=True
    )
    return done.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoResult]:
    out = tmp_path_factory.mktemp("demo")
    yield run_demo(out, Console(file=io.StringIO(), width=100))


def _overflow_at(width: int, out: Path, profile: Path) -> tuple[int, int, int, int]:
    """The page's scroll and client widths, then the key-times table's and its box's."""
    probe = out / f"probe-{width}.html"
    probe.write_text(_PROBE.format(width=width))
    dom = _run_chromium(
        profile,
        "--allow-file-access-from-files",
        "--virtual-time-budget=5000",
        "--window-size=1400,900",
        "--dump-dom",
        probe.as_uri(),
    )
    match = re.search(
        r'data-scroll-width="(\d+)" data-client-width="(\d+)" data-key-times="(\d+)/(\d+)"', dom
    )
    assert match, "the probe page did not measure the report"
    page_scroll, page_client, table, table_box = (int(group) for group in match.groups())
    return page_scroll, page_client, table, table_box


@pytest.mark.slow
def test_report_fits_a_phone_and_renders_at_desktop_width(demo: DemoResult, tmp_path: Path) -> None:
    scroll, client, key_times, key_times_box = _overflow_at(
        PHONE_WIDTH, demo.out, tmp_path / "profile"
    )
    assert 0 < client <= PHONE_WIDTH
    assert scroll <= client, f"page scrolls sideways at {PHONE_WIDTH}px: {scroll} > {client}"
    # The key-times table wraps its paths and URLs instead of hiding them past its box's edge.
    assert 0 < key_times <= key_times_box, (key_times, key_times_box)
    for width in (DESKTOP_WIDTH, PHONE_WIDTH):
        shot = demo.out / f"screenshot-{width}.png"
        _run_chromium(
            tmp_path / "profile",
            "--hide-scrollbars",
            f"--window-size={width},2400",
            f"--screenshot={shot}",
            (demo.out / "report.html").as_uri(),
        )
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_pool_chart_points_are_the_pool_samples(demo: DemoResult) -> None:
    html = (demo.out / "report.html").read_text()
    assert "<script" not in html
    figure = html[html.index('<figure class="chart" id="chart-pool-usage-1">') :]
    svg = figure[: figure.index("</svg>")]
    assert "<title" in svg and "<desc" in svg
    match = _PATH_D.search(svg)
    assert match, "the checked-out series is not drawn"
    ys = [float(y) for _, y in _NUMBER_PAIR.findall(match["d"])]
    samples = [s.checked_out for s in demo.evidence.pools[0].samples]
    assert len(ys) == len(samples) and all(v is not None for v in samples)
    values = [float(v or 0) for v in samples]
    # SVG y grows downwards: the drawn points must be one linear map of the sampled values.
    low, high = min(values), max(values)
    if high == low:
        assert max(ys) - min(ys) < 0.01
    else:
        scale = (ys[values.index(high)] - ys[values.index(low)]) / (high - low)
        assert scale < 0
        offset = ys[values.index(low)] - scale * low
        assert all(abs(scale * v + offset - y) < 0.05 for v, y in zip(values, ys, strict=True))
    caption = figure[figure.index("<figcaption>") : figure.index("</figcaption>")]
    assert "checked out " + ", ".join(str(v) for v in samples) in caption


@pytest.mark.slow
def test_markdown_shows_the_chart_files(demo: DemoResult) -> None:
    text = (demo.out / "report.md").read_text()
    linked = re.findall(rf"\]\(({CHARTS_DIR}/[\w-]+\.svg)", text)
    assert f"{CHARTS_DIR}/pool-usage-1.svg" in linked
    assert f"{CHARTS_DIR}/errors-per-minute.svg" in linked
    for name in linked:
        assert (demo.out / name).read_text().lstrip().startswith("<?xml")
    first = text.splitlines()[0]
    assert first.startswith("# Connection leak")
    for line in ("- **What:**", "- **Where:**", "- **Impact:**", "- **Do now:**"):
        assert line in text
    for heading in ("### Impact", "### Detection", "### Timeline (UTC)", "### Root cause"):
        assert heading in text
    assert "- [ ] " in text and "owner:" in text
    assert "/tmp/pooldoctor-pg-" not in text.split("## Sources")[1].split("##")[0]


def test_demo_report_gives_one_value_per_setting(demo: DemoResult) -> None:
    markdown = (demo.out / "report.md").read_text(encoding="utf-8")
    values: dict[str, set[str]] = {}
    for line in markdown.splitlines():
        for name, value in setting_assignments(line).items():
            values.setdefault(name, set()).add(value)
    assert len(values.get("idle_in_transaction_session_timeout", set())) == 1, values
    assert all(len(found) == 1 for found in values.values()), values


def test_demo_evidence_tables_show_no_raw_json(demo: DemoResult) -> None:
    markdown = (demo.out / "report.md").read_text(encoding="utf-8")
    cells = [
        c.strip() for line in markdown.splitlines() if line.startswith("|") for c in line.split("|")
    ]
    assert not [c for c in cells if c.startswith(("[{", '{"'))]
    assert "| At (UTC) | Checked out | Capacity | Waiting |" in markdown
