"""The options reference (`docs/options.md`), generated from the commands themselves so that it cannot drift.

python -m yolossl.cli.reference > docs/options.md     # tests/test_docs.py fails when the page is stale
"""

from __future__ import annotations

from typing import Any

COMMANDS = ("cycle", "label", "bench", "export", "import", "report", "fixmatch")
HEADER = """# Options

Every option of every command, grouped as `--help` groups them. This page is generated from the commands
themselves (`python -m yolossl.cli.reference > docs/options.md`; a test fails when it is stale), so it says
exactly what the installed `yolossl` takes. What the options do together: [How it works](how-it-works.md).
"""


def options_markdown() -> str:
    """One section per command, one table per help panel: option, default, help."""
    import typer.main

    from yolossl.cli import app

    group = typer.main.get_command(app)  # a click group (typer may ship its own copy of click)
    parts = [HEADER]
    for name in COMMANDS:
        command = group.commands[name]  # type: ignore[attr-defined]
        parts.append(f"## `yolossl {name}`\n\n{_first_paragraph(command.help or '')}\n")
        for panel, params in _panels(command).items():
            rows = "\n".join(f"| {_names(p)} | {_default(p)} | {_cell(p)} |" for p in params)
            parts.append(f"### {panel}\n\n| option | default | what it does |\n|---|---|---|\n{rows}\n")
    return "\n".join(parts)


def _panels(command: Any) -> dict[str, list[Any]]:
    panels: dict[str, list[Any]] = {}
    for param in command.params:
        if param.name == "help":
            continue
        panel = "Arguments" if _is_argument(param) else getattr(param, "rich_help_panel", None)
        panels.setdefault(panel or "Options", []).append(param)
    return panels


def _names(param: Any) -> str:
    if _is_argument(param):
        return f"`{(param.name or '').upper()}`"
    names = [*param.opts, *getattr(param, "secondary_opts", [])]
    return " ".join(f"`{n}`" for n in names)


def _default(param: Any) -> str:
    default = param.default
    if default is None or default == [] or _is_argument(param):
        return ""
    return f"`{default}`"


def _cell(param: Any) -> str:
    """The help text on one table line (pipes escaped)."""
    text = " ".join((getattr(param, "help", None) or "").split())
    return text.replace("|", "\\|")


def _is_argument(param: Any) -> bool:
    return type(param).__name__.endswith("Argument")


def _first_paragraph(text: str) -> str:
    return " ".join(text.strip().split("\n\n")[0].split())


if __name__ == "__main__":
    print(options_markdown(), end="")
