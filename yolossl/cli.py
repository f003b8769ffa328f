"""The `yolossl` command: a thin typer layer over the API that owns the terminal.

Library code only logs; here the logs, progress bars, the final table and the errors are shown.
A `YolosslError` is printed as one line on stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from yolossl.config import CycleConfig
from yolossl.errors import YolosslError

app = typer.Typer(
    help="Semi-supervised training for Ultralytics YOLO: pseudo-label unlabeled images and retrain, round after round.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_D = CycleConfig()  # the defaults shown in --help
console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
stdout = Console(width=None if sys.stdout.isatty() else 160)


@app.callback()
def main() -> None:
    """yolossl: turn unlabeled images into detector accuracy."""


@app.command()
def cycle(
    folders: Annotated[
        list[Path] | None, typer.Argument(help="More unlabeled folders (same as --unlabeled).", show_default=False)
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Labeled data YAML (Ultralytics format). Default: the bundled demo, with CPU-sized settings."
        ),
    ] = None,
    unlabeled: Annotated[
        list[Path] | None,
        typer.Option("--unlabeled", "-u", help="Folder of unlabeled images, searched recursively (repeatable)."),
    ] = None,
    rounds: Annotated[
        int | None, typer.Option(help=f"Pseudo-label rounds after the supervised round 0. Default: {_D.rounds}.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help=f"Start model: .yaml trains from scratch, .pt is pretrained. Default: {_D.model}."),
    ] = None,
    conf: Annotated[
        float | None, typer.Option(help=f"Keep pseudo boxes scoring at least this. Default: {_D.conf}.")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help=f"Training epochs of round 0 (labeled only). Default: {_D.epochs}.")
    ] = None,
    round_epochs: Annotated[
        int | None, typer.Option(help=f"Training epochs of each later round. Default: {_D.round_epochs}.")
    ] = None,
    imgsz: Annotated[int | None, typer.Option(help=f"Train and predict image size. Default: {_D.imgsz}.")] = None,
    batch: Annotated[
        int | None, typer.Option(help=f"Batch size for training and predicting. Default: {_D.batch}.")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu, 0, or 0,1,... for multi-GPU. Default: CUDA if available, else CPU.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help=f"Dataloader workers (Ultralytics uses 0 on CPU). Default: {_D.workers}.")
    ] = None,
    project: Annotated[str | None, typer.Option(help=f"Parent folder of runs. Default: {_D.project}.")] = None,
    name: Annotated[str | None, typer.Option(help="Run folder name. Default: exp, exp2, ...")] = None,
    seed: Annotated[int | None, typer.Option(help=f"Random seed for training. Default: {_D.seed}.")] = None,
    from_scratch: Annotated[
        bool | None,
        typer.Option(
            "--from-scratch/--fine-tune",
            help="Retrain each round from --model, or fine-tune the last round's weights. Default: fine-tune.",
        ),
    ] = None,
    train_arg: Annotated[
        list[str] | None,
        typer.Option("--train-arg", help="Any other Ultralytics training argument, key=value (repeatable)."),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of these options; the command line wins.")] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue an interrupted run folder (options come from its config.yaml).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings, errors and the final table.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs, and tracebacks on errors.")] = False,
) -> None:
    """Train on the labels, pseudo-label the unlabeled folders, retrain; repeat for --rounds."""
    _setup_logging(quiet, verbose)
    with _errors_as_one_line(verbose):
        from yolossl.config import parse_train_args, resolve_config
        from yolossl.cycle import resume_cycle, run_cycle
        from yolossl.demo import DEMO_CYCLE_DEFAULTS

        with _progress(quiet) as on_progress:
            if resume is not None:
                result = resume_cycle(resume, rounds=rounds, on_progress=on_progress)
            else:
                values: dict[str, Any] = {
                    "data": str(data) if data else None,
                    "unlabeled": [str(p) for p in [*(unlabeled or []), *(folders or [])]] or None,
                    "rounds": rounds,
                    "model": model,
                    "conf": conf,
                    "epochs": epochs,
                    "round_epochs": round_epochs,
                    "imgsz": imgsz,
                    "batch": batch,
                    "device": device,
                    "workers": workers,
                    "project": project,
                    "name": name,
                    "seed": seed,
                    "from_scratch": from_scratch,
                    "train_args": parse_train_args(train_arg) if train_arg else None,
                }
                cycle_config = resolve_config(values, config_file=config, demo_defaults=DEMO_CYCLE_DEFAULTS)
                result = run_cycle(cycle_config, on_progress=on_progress)
        _print_summary(result)


def _setup_logging(quiet: bool, verbose: bool) -> None:
    from yolossl.train import use_offline_defaults

    use_offline_defaults()
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = RichHandler(console=console, show_path=verbose, show_time=False, markup=False)
    package_logger = logging.getLogger("yolossl")
    package_logger.handlers[:] = [handler]
    package_logger.setLevel(level)
    package_logger.propagate = False
    if not verbose:
        # Ultralytics' banners and progress bars go (it sets its logger up when imported, so import it
        # first); the cycle logs one line per epoch instead.
        import ultralytics  # noqa: F401

        logging.getLogger("ultralytics").setLevel(logging.WARNING)


@contextmanager
def _errors_as_one_line(verbose: bool) -> Iterator[None]:
    try:
        yield
    except YolosslError as e:
        console.print(f"[red]error:[/red] {e}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print("interrupted: continue later with 'yolossl cycle --resume RUN_FOLDER'", soft_wrap=True)
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as e:
        if verbose:
            raise
        console.print(
            f"[red]error:[/red] {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''} "
            "(run with --verbose for the traceback)",
            markup=True,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


_STEP_TITLES = {"label": "pseudo-labeling", "train": "training epochs"}


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[Any], None] | None]:
    """A rich progress bar per labeling step; other steps are logged."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        tasks: dict[tuple[int, str], TaskID] = {}

        def on_progress(event: Any) -> None:
            if event.step not in _STEP_TITLES:
                return
            key = (event.round, event.step)
            if key not in tasks:
                title = f"round {event.round}: {_STEP_TITLES[event.step]}"
                tasks[key] = progress.add_task(title, total=event.total)
            progress.update(tasks[key], completed=event.done)

        yield on_progress


def _print_summary(result: Any) -> None:
    from yolossl.cycle import summary_rows

    names = result.class_names
    rows = summary_rows(result.rounds, names)
    table = Table(title=f"yolossl cycle: {result.run_dir}")
    for column in (
        "round",
        "images",
        "pseudo imgs",
        "pseudo boxes",
        "per class",
        "mAP50",
        "mAP50-95",
        "P",
        "R",
        "time",
    ):
        table.add_column(column, justify="left" if column == "per class" else "right")
    for row in rows:
        per_class = " ".join(f"{n}:{row[f'boxes_{n}']}" for n in names) if row["round"] > 0 else "-"
        table.add_row(
            str(row["round"]),
            str(row["images_used"]),
            str(row["pseudo_images"]),
            str(row["pseudo_boxes"]),
            per_class,
            f"{row['map50']:.3f}",
            f"{row['map50_95']:.3f}",
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['wall_time_s']:.0f}s",
        )
    stdout.print(table)
    stdout.print(f"Summary: {result.summary_csv}")
