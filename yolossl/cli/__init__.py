"""The `yolossl` command: a thin typer layer over the API that owns the terminal.

Library code only logs; here the logs, progress bars, tables and errors are shown. A
`YolosslError` is printed as one line on stderr with exit code 2, never as a traceback.
One module per command; `_ui` holds what they share.
"""

from __future__ import annotations

from typing import Annotated

import typer

from yolossl.cli._args import KeyValueCommand
from yolossl.cli._ui import DOCS_EPILOG
from yolossl.cli.bench import bench
from yolossl.cli.cycle import cycle
from yolossl.cli.export import export, import_
from yolossl.cli.fixmatch import fixmatch
from yolossl.cli.label import label
from yolossl.cli.report import report

app = typer.Typer(
    help="Semi-supervised training for Ultralytics YOLO: learn from unlabeled images through your model's own labels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from yolossl import __version__

        typer.echo(f"yolossl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """yolossl: turn unlabeled images into detector accuracy."""


# Every command also takes its options as name=value, as Ultralytics' `yolo` does (`_args`).
app.command(cls=KeyValueCommand, epilog=DOCS_EPILOG)(cycle)
app.command(cls=KeyValueCommand, epilog=DOCS_EPILOG)(label)
app.command(cls=KeyValueCommand, epilog=DOCS_EPILOG)(bench)
app.command(cls=KeyValueCommand)(report)
app.command(cls=KeyValueCommand, epilog=DOCS_EPILOG)(export)
app.command(cls=KeyValueCommand, name="import", epilog=DOCS_EPILOG)(import_)
app.command(cls=KeyValueCommand)(fixmatch)
