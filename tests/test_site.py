"""The runbook site: strict mkdocs build, every runbook page complete, links and anchors resolve."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from pooldoctor.alerts import alert_rules, render_rules
from pooldoctor.runbooks import REQUIRED_SECTIONS, RUNBOOK_SLUGS, load_runbooks

REPO = Path(__file__).resolve().parents[1]
EXTERNAL_ASSET_MARKERS = ("fonts.googleapis", "fonts.gstatic", "cdn.jsdelivr", "unpkg.com")


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.assets: list[str] = []
        self.h2: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))
        if tag in ("script", "img") and values.get("src"):
            self.assets.append(str(values["src"]))
        if tag == "link" and values.get("href") and values.get("rel") not in ("canonical",):
            self.assets.append(str(values["href"]))
        if tag == "h2":
            self._in_h2 = True
            self.h2.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self.h2[-1] += data


def _parse(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _resolve(page: Path, href: str, site_root: Path) -> tuple[Path, str]:
    parts = urlsplit(href)
    target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
    if target.is_dir():
        target = target / "index.html"
    assert str(target).startswith(str(site_root.resolve())), f"{href} leaves the site"
    return target, parts.fragment


@pytest.mark.parametrize("slug", RUNBOOK_SLUGS)
def test_runbook_page_has_sections_symptoms_and_working_links(site: Path, slug: str) -> None:
    runbook = load_runbooks()[slug]
    page = site / "runbooks" / slug / "index.html"
    assert page.is_file(), f"no page for {slug}"
    parsed = _parse(page)
    headings = [heading.strip().rstrip("¶").strip() for heading in parsed.h2]
    positions = [headings.index(section) for section in REQUIRED_SECTIONS]
    assert positions == sorted(positions), headings
    html = page.read_text(encoding="utf-8")
    for symptom in runbook.symptoms:
        assert _html_text(symptom) in html, f"{slug}: symptom {symptom!r} not shown"
    for alert in runbook.alerts:
        assert alert in html
    for href in parsed.links:
        if urlsplit(href).scheme or href.startswith("mailto:"):
            continue
        target, fragment = _resolve(page, href, site)
        assert target.is_file(), f"{slug}: broken link {href}"
        if fragment and target.suffix == ".html":
            assert fragment in _parse(target).ids, f"{slug}: broken anchor {href}"


def _html_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_site_uses_no_external_assets_and_has_a_search_index(site: Path) -> None:
    for page in site.rglob("*.html"):
        parsed = _parse(page)
        for asset in parsed.assets:
            assert not urlsplit(asset).scheme, f"{page}: external asset {asset}"
        text = page.read_text(encoding="utf-8")
        assert not any(marker in text for marker in EXTERNAL_ASSET_MARKERS), page
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    locations = {doc["location"] for doc in index["docs"]}
    assert "runbooks/connection-leak/" in locations
    assert any("too many clients" in doc["text"] for doc in index["docs"])


def test_generated_references_are_filled(site: Path) -> None:
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "pooldoctor diagnose" in cli and "--pool-status" in cli and "pooldoctor:" not in cli
    checks = (site / "reference" / "checks" / "index.html").read_text(encoding="utf-8")
    assert "connection-leak" in checks
    alerts = (site / "reference" / "alerts" / "index.html").read_text(encoding="utf-8")
    assert all(rule.name in alerts for rule in alert_rules())
    report = (site / "reference" / "report-format" / "index.html").read_text(encoding="utf-8")
    assert "pooldoctor.report/1" in report


def test_shipped_rules_file_is_current_and_valid(tmp_path: Path) -> None:
    site_url = yaml.safe_load(
        "\n".join(
            line
            for line in (REPO / "mkdocs.yml").read_text().splitlines()
            if line.startswith("site_url")
        )
    )["site_url"]
    shipped = (REPO / "deploy" / "prometheus" / "pooldoctor-alerts.yml").read_text()
    assert shipped == render_rules(site_url), "regenerate with `pooldoctor alerts --out ...`"
    document = yaml.safe_load(shipped)
    runbook_alerts = {alert for rb in load_runbooks().values() for alert in rb.alerts}
    for rule in document["groups"][0]["rules"]:
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}
        assert rule["labels"]["severity"] in ("warning", "critical")
        slug = rule["annotations"]["runbook_url"].rstrip("/").rsplit("/", 1)[-1]
        assert slug in RUNBOOK_SLUGS
        assert rule["alert"] in runbook_alerts, f"{rule['alert']} is listed by no runbook"
    promtool = shutil.which("promtool")
    if promtool:
        rules_file = tmp_path / "rules.yml"
        rules_file.write_text(shipped)
        result = subprocess.run(
            [promtool, "check", "rules", str(rules_file)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_runbook_pages_lead_with_symptoms_then_stop_the_bleeding(site: Path) -> None:
    for slug in RUNBOOK_SLUGS:
        html = (site / "runbooks" / slug / "index.html").read_text(encoding="utf-8")
        symptoms, box = html.find("Symptoms: exact error strings"), html.find("Stop the bleeding")
        assert 0 < symptoms < box < html.find('id="meaning"'), slug
    leak = (site / "runbooks" / "connection-leak" / "index.html").read_text(encoding="utf-8")
    box = leak[leak.find("Stop the bleeding") : leak.find('id="meaning"')]
    assert "Shed load on the affected endpoint" in box and 'href="#mitigation"' in box


def test_symptom_strings_are_boosted_in_search_and_listed_in_the_on_call_guide(
    site: Path,
) -> None:
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    runbook_docs = [
        d
        for d in index["docs"]
        if d["location"].startswith("runbooks/") and "/" in d["location"][9:]
    ]
    assert runbook_docs and all(d.get("boost", 1) > 1 for d in runbook_docs)
    others = [d for d in index["docs"] if not d["location"].startswith("runbooks/")]
    assert all(d.get("boost", 1) == 1 for d in others)
    pages = {d["location"]: d for d in index["docs"]}
    for slug, runbook in load_runbooks(REPO / "runbooks").items():
        assert set(runbook.symptoms) <= set(pages[f"runbooks/{slug}/"].get("tags", [])), slug
    assert not any(set(d.get("tags", [])) & {"QueuePool limit of size"} for d in others)
    guide = (site / "on-call" / "index.html").read_text(encoding="utf-8")
    row = guide[guide.find("<code>QueuePool limit of size</code>") :]
    assert row and 'href="../runbooks/connection-leak/"' in row[: row.find("</tr>")]
