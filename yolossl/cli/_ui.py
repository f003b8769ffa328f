"""What every command shares: logging to the terminal, one-line errors, progress bars, option types."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from yolossl.config import CycleConfig
from yolossl.errors import YolosslError, first_line
from yolossl.label.settings import BACKENDS, UNCERTAIN_MODES

console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
stdout = Console(width=None if sys.stdout.isatty() else 160)
D = CycleConfig()  # the defaults shown in --help

# The panels `--help` groups options in (and the options page of the docs, generated from them).
DATA, PSEUDO, TRAINING, ONLINE, OFFLINE, RUN, ADVANCED = (
    "Data",
    "Pseudo-labels",
    "Training",
    "Online teacher (--mode online, the default)",
    "Offline rounds (--mode offline)",
    "Run and output",
    "Advanced",
)
DOCS_EPILOG = "Every option of every command, in detail: python -m yolossl.cli.reference (the docs' options page)."

# Options that several commands take, declared once.
Imgsz = Annotated[
    int | None, typer.Option(help=f"Train and predict image size. Default: {D.imgsz}.", rich_help_panel=TRAINING)
]
Batch = Annotated[
    int | None,
    typer.Option(help=f"Batch size for training and predicting. Default: {D.batch}.", rich_help_panel=TRAINING),
]
Device = Annotated[
    str | None,
    typer.Option(
        help="cpu, 0, or 0,1,... for multi-GPU. Default: CUDA if available, else CPU.", rich_help_panel=TRAINING
    ),
]
Conf = Annotated[
    float | None,
    typer.Option(
        help=f"One threshold for every class (turns --target-precision off). Default: {D.conf}.", rich_help_panel=PSEUDO
    ),
]
TargetPrecision = Annotated[
    float | None,
    typer.Option(
        help=f"Per class, the lowest threshold reaching this precision on val. Cycle default: {D.target_precision}.",
        rich_help_panel=PSEUDO,
    ),
]
Uncertain = Annotated[
    str | None,
    typer.Option(
        help=f"Boxes between --uncertain-low and the threshold: {' | '.join(UNCERTAIN_MODES)}. Default: {D.uncertain}.",
        rich_help_panel=PSEUDO,
    ),
]
UncertainLow = Annotated[
    float | None,
    typer.Option(help="Floor of the uncertain band; boxes below it are dropped. Default: 0.1.", rich_help_panel=PSEUDO),
]
Tta = Annotated[
    bool | None,
    typer.Option(
        "--tta/--no-tta", help="Test-time augmentation (flip, smaller scale) fused by WBF.", rich_help_panel=PSEUDO
    ),
]
Backend = Annotated[
    str | None,
    typer.Option(help=f"Inference runtime: {' | '.join(BACKENDS)}. Default: {D.backend}.", rich_help_panel=ADVANCED),
]
Engine = Annotated[
    str | None,
    typer.Option(
        help="Labeling engine: local, or ray (pip install 'yolossl\\[ray]'). Default: local.", rich_help_panel=ADVANCED
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(help="With --engine ray: an existing cluster (default: local Ray).", rich_help_panel=ADVANCED),
]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="Only warnings, errors and the final summary.", rich_help_panel=RUN)
]
Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="Debug logs, and tracebacks on errors.", rich_help_panel=RUN)
]
ExistOk = Annotated[
    bool,
    typer.Option(
        "--exist-ok",
        help="Replace an earlier yolossl output in --out (otherwise --out must be new or empty).",
        rich_help_panel=DATA,
    ),
]
DataYaml = Annotated[Path | None, typer.Option(help="Labeled data YAML (Ultralytics format).", rich_help_panel=DATA)]


def setup_logging(quiet: bool, verbose: bool) -> None:
    """Offline Ultralytics, our logs through rich, and Ultralytics' own output quieted unless debugging."""
    from yolossl.runtime import set_up_process

    set_up_process()
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler: logging.Handler
    if sys.stderr.isatty():
        handler = RichHandler(console=console, show_path=verbose, show_time=False, markup=False)
    else:  # logs and CI: one plain line per message, never wrapped, easy to grep
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.setLevel(level)  # the terminal's level; the run's log file keeps INFO and up regardless
    package_logger = logging.getLogger("yolossl")
    package_logger.handlers[:] = [handler]
    package_logger.setLevel(min(level, logging.INFO))
    package_logger.propagate = False
    # Imported with or without --verbose: importing Ultralytics also replaces PIL's Image.open (with
    # a version that hunts for a HEIF plugin), and a command must not behave differently under -v.
    # It sets its logger up when imported, so the level is set after; we log one line per epoch instead.
    import ultralytics  # noqa: F401

    # --verbose: all of Ultralytics' output (DEBUG: a run leaves a level other than Ultralytics' own INFO alone)
    logging.getLogger("ultralytics").setLevel(logging.DEBUG if verbose else logging.WARNING)


@contextmanager
def errors_as_one_line(verbose: bool, resume_hint: Callable[[], str] = str) -> Iterator[None]:
    """User mistakes: one line, exit 2. Anything else: one line, exit 1 (--verbose shows the traceback).

    `resume_hint()`, asked once something stopped the command, says how to continue ("": nothing to continue).
    """
    try:
        yield
    except YolosslError as e:
        print_error(str(e))
        raise typer.Exit(2) from None
    except OSError as e:  # disk full, read-only or vanished folders: the user can fix these
        where = f"{e.filename}: " if e.filename else ""
        hint = resume_hint()
        print_error(f"{where}{e.strerror or e}{'; ' + hint if hint else ''}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        hint = resume_hint()
        console.print(f"interrupted{': ' + hint if hint else ''}", soft_wrap=True, markup=False)
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as e:
        if verbose:
            raise
        first = first_line(e) if str(e).strip() else ""
        print_error(f"{type(e).__name__}: {first}", suffix=" (run with --verbose for the traceback)")
        raise typer.Exit(1) from None


MAX_ERROR_CHARS = 1000  # room for two long absolute paths; an error quoting a whole file (300 KB) is cut


def print_error(message: str, suffix: str = "") -> None:
    """`error: <message>` on one line of stderr: shortened past MAX_ERROR_CHARS, control characters shown
    escaped (a file name may carry newlines or terminal escapes), and never read as rich markup."""
    text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in message)
    if len(text) > MAX_ERROR_CHARS:
        text = f"{text[:MAX_ERROR_CHARS]}… ({len(text) - MAX_ERROR_CHARS} more characters)"
    console.print(Text.assemble(("error:", "red"), f" {text}{suffix}"), highlight=False, soft_wrap=True)


class SpeedColumn(ProgressColumn):
    """The speed in the task's `unit` (img/s), as rich measures it over the last updates; none for a task without one
    (training counts epochs, not images)."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit")
        return Text(f"{task.speed:.0f} {unit}" if task.speed and unit else "", style="progress.data.speed")


def progress_bar(quiet: bool) -> Progress | None:
    """A rich progress display on an interactive terminal; None in logs, CI or with --quiet."""
    if quiet or not sys.stderr.isatty():
        return None
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        SpeedColumn(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=console, transient=False)
