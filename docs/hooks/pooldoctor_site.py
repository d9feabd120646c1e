"""mkdocs hooks: serve runbooks/ as pages and fill generated reference pages from the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

from pooldoctor import sitegen
from pooldoctor.runbooks import load_runbooks

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNBOOK_DIR = REPO_ROOT / "runbooks"

# The offline plugin loads its file:// Web Worker shim from a CDN; without network the search
# box disappears from the very build meant for no network, so ship a vendored copy instead.
CDN_WORKER_SHIM = "https://unpkg.com/iframe-worker/shim"
VENDORED_WORKER_SHIM = Path(__file__).with_name("iframe-worker-shim.js")
WORKER_SHIM_URI = "assets/javascripts/iframe-worker-shim.js"


def on_config(config: MkDocsConfig, **_: Any) -> MkDocsConfig:
    """Build the navigation, with every runbook listed from runbooks/ (the single source)."""
    runbooks = load_runbooks(RUNBOOK_DIR)
    config.nav = sitegen.navigation(runbooks)
    polyfills = config.extra.get("polyfills", [])
    config.extra["polyfills"] = [
        WORKER_SHIM_URI if str(script) == CDN_WORKER_SHIM else script for script in polyfills
    ]
    return config


def on_files(files: Files, config: MkDocsConfig, **_: Any) -> Files:
    """Add each runbooks/<slug>.md as the page runbooks/<slug>.md, without copying it."""
    for path in sorted(RUNBOOK_DIR.glob("*.md")):
        files.append(File.generated(config, f"runbooks/{path.name}", abs_src_path=str(path)))
    if WORKER_SHIM_URI in config.extra["polyfills"]:
        shim = str(VENDORED_WORKER_SHIM)
        files.append(File.generated(config, WORKER_SHIM_URI, abs_src_path=shim))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, **_: Any) -> str:
    """Expand generation markers and put symptoms and alerts at the top of runbook pages."""
    if page.file.src_uri.startswith("runbooks/"):
        slug = Path(page.file.src_uri).stem
        page.meta["search"] = {
            **(page.meta.get("search") or {}),
            "boost": sitegen.RUNBOOK_SEARCH_BOOST,
        }
        return sitegen.runbook_page(load_runbooks(RUNBOOK_DIR)[slug], markdown)
    return sitegen.expand_markers(markdown, load_runbooks(RUNBOOK_DIR), REPO_ROOT)


# After the search plugin writes its index (priority 0) and before the offline plugin copies
# it into search_index.js (priority -100).
@event_priority(-50)
def on_post_build(config: MkDocsConfig, **_: Any) -> None:
    """Make each runbook's exact error strings its search tags, so pasted errors find it first."""
    index = Path(config.site_dir) / "search" / "search_index.json"
    if index.is_file():
        tagged = sitegen.index_symptoms_as_search_tags(
            index.read_text(encoding="utf-8"), load_runbooks(RUNBOOK_DIR)
        )
        index.write_text(tagged, encoding="utf-8")
