"""`yolossl cycle`: round 0 on the labels, then the online teacher's run (or N offline rounds); then a table."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from yolossl.cli._ui import (
    ADVANCED,
    DATA,
    OFFLINE,
    ONLINE,
    PSEUDO,
    RUN,
    TRAINING,
    Backend,
    Batch,
    Conf,
    D,
    Device,
    Engine,
    Imgsz,
    Quiet,
    RayAddress,
    TargetPrecision,
    Tta,
    Uncertain,
    UncertainLow,
    Verbose,
    errors_as_one_line,
    progress_bar,
    setup_logging,
    stdout,
)

_STEP_TITLES = {
    "label": "pseudo-labeling",
    "merge": "building the dataset",
    "train": "training epochs",
    "control": "labels alone for the same time (epochs)",
}


def cycle(
    folders: Annotated[
        list[Path] | None, typer.Argument(help="More unlabeled folders (same as --unlabeled).", show_default=False)
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Labeled data YAML (Ultralytics; test: is scored only). Default: the demo.", rich_help_panel=DATA
        ),
    ] = None,
    unlabeled: Annotated[
        list[Path] | None,
        typer.Option(
            "--unlabeled",
            "-u",
            help="Folder of unlabeled images, searched recursively (repeatable).",
            rich_help_panel=DATA,
        ),
    ] = None,
    leakage: Annotated[
        str | None,
        typer.Option(
            help="Leave out pool copies of val/test images: hash, phash, off. Default: hash.", rich_help_panel=DATA
        ),
    ] = None,
    labeled_repeat: Annotated[
        int | None,
        typer.Option(
            help="Repeat each labeled image this often per round. Default: enough to be a third.", rich_help_panel=DATA
        ),
    ] = None,
    keep_empty: Annotated[
        bool | None,
        typer.Option(
            "--keep-empty/--no-keep-empty",
            help="Train on pool images with no kept box as background.",
            rich_help_panel=DATA,
        ),
    ] = None,
    conf: Conf = None,
    target_precision: TargetPrecision = None,
    uncertain: Uncertain = None,
    uncertain_low: UncertainLow = None,
    tta: Tta = None,
    fixmatch: Annotated[
        bool | None,
        typer.Option(
            "--fixmatch/--no-fixmatch",
            help="A FixMatch head double-checks each pool labeling's classes.",
            rich_help_panel=PSEUDO,
        ),
    ] = None,
    fixmatch_mode: Annotated[
        str | None,
        typer.Option(
            help="With --fixmatch, when the head confidently disagrees: relabel or drop. Default: relabel.",
            rich_help_panel=PSEUDO,
        ),
    ] = None,
    rounds: Annotated[
        int | None,
        typer.Option(help=f"Rounds after the supervised round 0. Default: {D.rounds}.", rich_help_panel=TRAINING),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help=f"Start model: .yaml from scratch, .pt pretrained. Default: {D.model}.", rich_help_panel=TRAINING
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(help=f"Epochs of round 0 (labels only). Default: {D.epochs}.", rich_help_panel=TRAINING),
    ] = None,
    round_epochs: Annotated[
        int | None,
        typer.Option(
            help=f"Epochs of each offline round; online: the run's steps are those rounds'. Default: {D.round_epochs}.",
            rich_help_panel=TRAINING,
        ),
    ] = None,
    imgsz: Imgsz = None,
    batch: Batch = None,
    device: Device = None,
    seed: Annotated[
        int | None, typer.Option(help=f"Random seed for training. Default: {D.seed}.", rich_help_panel=TRAINING)
    ] = None,
    start_weights: Annotated[
        Path | None,
        typer.Option(
            help="A supervised model you already trained on --data: round 0 uses it as is.", rich_help_panel=TRAINING
        ),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            help=f"online (an EMA teacher labels each batch) or offline (label, merge, retrain). Default: {D.mode}.",
            rich_help_panel=TRAINING,
        ),
    ] = None,
    lambda_u: Annotated[
        float | None,
        typer.Option(help=f"Weight of the pseudo-labeled images' loss. Default: {D.lambda_u}.", rich_help_panel=ONLINE),
    ] = None,
    pseudo_box_min_score: Annotated[
        float | None,
        typer.Option(
            help=f"Pseudo boxes teach box regression from this teacher score. Default: {D.pseudo_box_min_score}.",
            rich_help_panel=ONLINE,
        ),
    ] = None,
    unsure_targets: Annotated[
        str | None,
        typer.Option(
            help=f"Unsure teacher boxes: soft (class at its score), ignore, or dense. Default: {D.unsure_targets}.",
            rich_help_panel=ONLINE,
        ),
    ] = None,
    unlabeled_ratio: Annotated[
        float | None,
        typer.Option(
            help=f"Unlabeled images per labeled image in a batch. Default: {D.unlabeled_ratio}.", rich_help_panel=ONLINE
        ),
    ] = None,
    online_epochs: Annotated[
        int | None,
        typer.Option(
            help="The run's epochs over the labeled images. Default: the offline rounds' steps.", rich_help_panel=ONLINE
        ),
    ] = None,
    online_rounds: Annotated[
        bool | None,
        typer.Option(
            "--online-rounds/--one-online-round",
            help="Train as --rounds rounds, thresholds measured again at each. Default: on.",
            rich_help_panel=ONLINE,
        ),
    ] = None,
    online_val: Annotated[
        bool | None,
        typer.Option(
            "--online-val/--no-online-val",
            help="Validate every epoch (about twice the time). Default: at each round's end.",
            rich_help_panel=ONLINE,
        ),
    ] = None,
    burn_in_epochs: Annotated[
        int | None,
        typer.Option(
            help=f"Epochs on the labels alone before the first unlabeled batch. Default: {D.burn_in_epochs}.",
            rich_help_panel=ONLINE,
        ),
    ] = None,
    strong_scale: Annotated[
        float | None,
        typer.Option(
            help=f"The student's view of an unlabeled image is zoomed by 1 ± this. Default: {D.strong_scale}.",
            rich_help_panel=ONLINE,
        ),
    ] = None,
    strong_translate: Annotated[
        float | None,
        typer.Option(
            help=f"... and shifted by up to ± this share of its size. Default: {D.strong_translate}.",
            rich_help_panel=ONLINE,
        ),
    ] = None,
    loss: Annotated[
        str | None,
        typer.Option(
            help=f"ultralytics, or pseudo-aware (no background loss where the teacher was unsure). Default: {D.loss}.",
            rich_help_panel=OFFLINE,
        ),
    ] = None,
    from_scratch: Annotated[
        bool | None,
        typer.Option(
            "--from-scratch/--fine-tune",
            help="Retrain each round from --model, or fine-tune the best round so far. Default: fine-tune.",
            rich_help_panel=OFFLINE,
        ),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(
            help="Stop after this many rounds in a row rejected by the round guard. Default: 1.",
            rich_help_panel=OFFLINE,
        ),
    ] = None,
    round_schedule: Annotated[
        str | None,
        typer.Option(
            help=f"Later rounds: continue (constant rate) or fresh (warm-up, decay). Default: {D.round_schedule}.",
            rich_help_panel=ADVANCED,
        ),
    ] = None,
    round_lr_scale: Annotated[
        float | None,
        typer.Option(
            help=f"With --round-schedule continue: rounds' rate / round 0's. Default: {D.round_lr_scale}.",
            rich_help_panel=ADVANCED,
        ),
    ] = None,
    saturate_epochs: Annotated[
        int | None,
        typer.Option(
            help=f"Round 0: up to this many more epochs, until the labels saturate. Default: {D.saturate_epochs}.",
            rich_help_panel=TRAINING,
        ),
    ] = None,
    saturate_window: Annotated[
        int | None,
        typer.Option(
            help=f"Saturated: no rise of --saturate-min-gain within this many epochs. Default: {D.saturate_window}.",
            rich_help_panel=ADVANCED,
        ),
    ] = None,
    saturate_min_gain: Annotated[
        float | None,
        typer.Option(
            help=f"The val mAP50-95 rise that counts within the window. Default: {D.saturate_min_gain}.",
            rich_help_panel=ADVANCED,
        ),
    ] = None,
    saturate_every: Annotated[
        int | None,
        typer.Option(
            help=f"Validate the saturation run every this many epochs. Default: {D.saturate_every}.",
            rich_help_panel=ADVANCED,
        ),
    ] = None,
    control: Annotated[
        bool | None,
        typer.Option(
            "--control/--no-control",
            help="After the rounds, train the labels alone for their time and compare. Default: on.",
            rich_help_panel=TRAINING,
        ),
    ] = None,
    ema: Annotated[
        str | None,
        typer.Option(
            help=f"Weight average each training saves: fitted or ultralytics (offline only). Default: {D.ema}.",
            rich_help_panel=ADVANCED,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help=f"Dataloader workers (Ultralytics uses 0 on CPU). Default: {D.workers}.", rich_help_panel=ADVANCED
        ),
    ] = None,
    train_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--train-arg",
            help="Any other Ultralytics training argument, key=value (repeatable).",
            rich_help_panel=ADVANCED,
        ),
    ] = None,
    backend: Backend = None,
    engine: Engine = None,
    ray_address: RayAddress = None,
    project: Annotated[
        str | None, typer.Option(help=f"Parent folder of runs. Default: {D.project}.", rich_help_panel=RUN)
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Run folder name. Default: exp, exp2, ...", rich_help_panel=RUN)
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML file of these options; the command line wins.", rich_help_panel=RUN)
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue an interrupted run folder (options from its config.yaml).", rich_help_panel=RUN),
    ] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Train on the labels, then on the unlabeled folders too, pseudo-labeled on the fly by the model's EMA teacher
    (--mode offline: pseudo-label, merge, retrain for --rounds).

    Example: yolossl cycle --data data.yaml -u /mnt/cams --model yolo11n.pt (or data=data.yaml unlabeled=/mnt/cams)"""
    given = dict(locals())  # the options, under CycleConfig's names (None: not given)
    setup_logging(quiet, verbose)
    run_dir = [resume] if resume is not None else []  # the run folder, once known: a stopped run names it
    with errors_as_one_line(verbose, resume_hint=lambda: _resume_hint(run_dir)):
        from yolossl.config import given_options, resolve_config
        from yolossl.cycle import resume_cycle, run_cycle

        progress = progress_bar(quiet)
        with progress or nullcontext():
            on_progress = _progress_callback(progress) if progress else None
            if resume is not None:
                _refuse_fixed_options(given)
                result = resume_cycle(resume, rounds=rounds, device=device, workers=workers, on_progress=on_progress)
            else:
                values = _config_values(given, folders=folders, train_arg=train_arg)
                cycle_config = _named(resolve_config(values, config_file=config))
                run_dir.append(Path(cycle_config.project) / str(cycle_config.name))
                chosen = given_options(values, config_file=config)  # the demo fills in only the others
                result = run_cycle(cycle_config, on_progress=on_progress, given=chosen)
        print_summary(result)


def _named(config: Any) -> Any:
    """The config with its run folder's name chosen now (exp, exp2, ...), so that a stopped run can be named."""
    from dataclasses import replace

    from yolossl.cycle.state import new_run_dir

    return replace(config, name=config.name or new_run_dir(Path(config.project), None).name)


def _resume_hint(run_dir: list[Path]) -> str:
    """How to continue a run that stopped: only once its folder holds a run ("": it stopped before one was made)."""
    from yolossl.cycle.state import CONFIG_FILE

    if run_dir and (run_dir[0] / CONFIG_FILE).is_file():
        return f"continue later with 'yolossl cycle --resume {run_dir[0]}'"
    return ""


def _refuse_fixed_options(given: dict[str, Any]) -> None:
    """With --resume, the options a run cannot change (`RESUME_OPTIONS` says which can): one line naming them."""
    from yolossl.cycle import RESUME_OPTIONS
    from yolossl.errors import YolosslError

    allowed = {*RESUME_OPTIONS, "resume", "quiet", "verbose"}
    fixed = [key for key, value in given.items() if key not in allowed and value not in (None, [])]
    if fixed:
        options = ", ".join("FOLDERS" if key == "folders" else f"--{key.replace('_', '-')}" for key in fixed)
        can = ", ".join(f"--{key}" for key in RESUME_OPTIONS)
        raise YolosslError(
            f"--resume continues {given['resume']} with the options it started with: {options} cannot change "
            f"(only {can} can); start a new run for other settings"
        )


def _config_values(given: dict[str, Any], folders: list[Path] | None, train_arg: list[str] | None) -> dict[str, Any]:
    """The command's options as CycleConfig values: same names, paths as text, the extra folders joined."""
    from yolossl.config import CONFIG_FIELDS, parse_train_args

    values = {key: str(v) if isinstance(v, Path) else v for key, v in given.items() if key in CONFIG_FIELDS}
    values["unlabeled"] = [str(p) for p in [*(given["unlabeled"] or []), *(folders or [])]] or None
    values["train_args"] = parse_train_args(train_arg) if train_arg else None
    return values


def _progress_callback(progress: Any) -> Any:
    tasks: dict[tuple[int, str], Any] = {}

    def on_progress(event: Any) -> None:
        if event.step not in _STEP_TITLES:
            return
        key = (event.round, event.step)
        if key not in tasks:
            unit = None if event.step == "train" else "img/s"
            tasks[key] = progress.add_task(
                f"round {event.round}: {_STEP_TITLES[event.step]}", total=event.total, unit=unit
            )
        progress.update(tasks[key], completed=event.done)

    return on_progress


# The final table, a column per entry: (header, its cell from a row of `summary_rows` with its "verdict"). It fits 80
# columns; the per-class and teacher detail is in summary.csv and the report.
TEST_HEADER = "test mAP50-95"  # shown with a test split: val chose (guard, thresholds, best.pt), test scores
SUMMARY_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("round", lambda row: str(row["round"])),
    ("images", lambda row: str(row["images_used"])),
    ("pseudo boxes", lambda row: str(row["pseudo_boxes"])),
    ("val mAP50-95", lambda row: f"{row['map50_95']:.3f}"),
    (TEST_HEADER, lambda row: "-" if row["test_map50_95"] == "" else f"{row['test_map50_95']:.3f}"),
    ("time", lambda row: f"{row['wall_time_s']:.0f}s"),
    ("verdict", lambda row: row["verdict"]),
]


def print_summary(result: Any) -> None:
    """The per-round table, then the final model and where the summary and report are."""
    from yolossl.cycle import summary_rows
    from yolossl.cycle.control import verdict

    best = result.best.index
    rows = [
        {**row, "verdict": "best" if row["round"] == best else "accepted" if row["accepted"] else "rejected"}
        for row in summary_rows(result.rounds, result.class_names)
    ]
    tested = any(r.test for r in result.rounds)
    if result.control is not None:  # the labels alone for the rounds' time: the row every gain is read against
        control = result.control
        test = control.test.map50_95 if control.test else ""
        rows.append(
            {
                "round": "labels alone",
                "images_used": "",
                "pseudo_boxes": "",
                "map50_95": control.metrics.map50_95,
                "test_map50_95": test,
                "wall_time_s": control.wall_time_s,
                "verdict": "same time",
            }
        )
    columns = [(header, cell) for header, cell in SUMMARY_COLUMNS if tested or header != TEST_HEADER]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for header, _ in columns:
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*(cell(row) for _, cell in columns))
    stdout.print(f"yolossl cycle: {result.run_dir}", soft_wrap=True)
    stdout.print(table)
    stdout.print(f"Final model (round {best}): {result.weights}", soft_wrap=True)
    if result.best.test is not None:
        test = result.best.test
        stdout.print(f"On the test split (never chosen on): mAP50 {test.map50:.3f}, mAP50-95 {test.map50_95:.3f}")
    stdout.print(f"Summary, per class: {result.summary_csv}", soft_wrap=True)
    if result.control is not None:
        stdout.print(verdict(result.best.metrics, result.best.test, result.control), soft_wrap=True)
    if (result.run_dir / "report.html").is_file():
        stdout.print(f"Report: {result.run_dir / 'report.html'}", soft_wrap=True)
