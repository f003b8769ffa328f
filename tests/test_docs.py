"""The documentation site: its options page is the CLI's own, it builds with `--strict`, and a browser renders it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from yolossl.cli.reference import options_markdown

ROOT = Path(__file__).parents[1]


def test_the_options_page_is_the_clis_own() -> None:
    """docs/options.md is generated from the commands; when an option changes, regenerate it (the message says how)."""
    page = (ROOT / "docs" / "options.md").read_text()
    assert page == options_markdown(), "stale: python -m yolossl.cli.reference > docs/options.md"
    for panel in ("Data", "Pseudo-labels", "Training", "Online teacher", "Offline rounds", "Run and output"):
        assert f"### {panel}" in page
    assert "`--target-precision`" in page and "`--train-seeds`" in page


def test_every_cycle_option_has_a_panel_and_a_one_line_help() -> None:
    import typer.main

    from yolossl.cli import app

    command = typer.main.get_command(app).commands["cycle"]  # type: ignore[attr-defined]
    options = [p for p in command.params if p.name != "help" and not type(p).__name__.endswith("Argument")]
    assert len(options) > 40
    assert all(getattr(p, "rich_help_panel", None) for p in options), [p.name for p in options if not p.rich_help_panel]
    assert all(len(p.help) <= 110 for p in options), [p.name for p in options if len(p.help) > 110]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs", reason="pip install -e '.[docs]' (the test extra has it)")
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return out


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("getting-started/index.html", ["Quick start", "yolossl cycle --rounds 3", "Use it on your data"]),
        ("options/index.html", ["yolossl cycle", "Online teacher", "--target-precision", "yolossl bench"]),
    ],
)
def test_the_built_site_renders_in_a_real_browser(site: Path, tmp_path: Path, page: str, expected: list[str]) -> None:
    """Headless Chromium opens the built page: its text is there once the theme's scripts have run."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    rendered = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            (site / page).as_uri(),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    text = re.sub(r"<[^>]+>", " ", rendered)
    for words in expected:
        assert words in text, words
    assert 'class="md-nav' in rendered  # the theme's navigation was laid out, not a bare page
