"""`yolossl report RUN`: the run's plots and tables in one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from yolossl.cli._ui import Quiet, Verbose, errors_as_one_line, setup_logging, stdout


def report(
    run: Annotated[Path, typer.Argument(help="A yolossl cycle run folder.")],
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Write RUN/report.html (plots embedded) and its PNGs; a cycle writes it by itself at the end.

    Example: yolossl report runs/cycle/exp"""
    setup_logging(quiet, verbose)
    with errors_as_one_line(verbose):
        from yolossl.report import write_report

        stdout.print(f"Report: {write_report(run)}")
