"""`yolossl bench`: the default cycle against the labels alone (step- and wall-matched), the docs' workflow and the
oracle, on the same splits, seeds and budget, scored on a test split nothing was chosen on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from yolossl.cli._ui import (
    DATA,
    RUN,
    TRAINING,
    Batch,
    Device,
    Imgsz,
    Quiet,
    Verbose,
    errors_as_one_line,
    setup_logging,
    stdout,
)

ARMS = "Arms and seeds"


def bench(
    data: Annotated[
        Path | None,
        typer.Option(
            help="Data YAML, every training image labeled (give it a test: split). Default: glyphs.",
            rich_help_panel=DATA,
        ),
    ] = None,
    dataset: Annotated[
        str,
        typer.Option(
            help="Bundled bench without --data: glyphs (label-bound digits) or shapes (the first).",
            rich_help_panel=DATA,
        ),
    ] = "glyphs",
    final: Annotated[
        bool,
        typer.Option(
            "--final",
            help="Score on the bundled dataset's final test split: headline runs only, never to choose anything.",
            rich_help_panel=DATA,
        ),
    ] = False,
    label_fraction: Annotated[
        float | None,
        typer.Option(
            help="Share of training images that keep labels. Default: 0.1 (100 images on glyphs).",
            rich_help_panel=DATA,
        ),
    ] = None,
    unlabeled: Annotated[
        list[Path] | None,
        typer.Option("--unlabeled", "-u", help="Explicit split: unlabeled folder (repeatable).", rich_help_panel=DATA),
    ] = None,
    unlabeled_truth: Annotated[
        Path | None,
        typer.Option(help="Explicit split: the unlabeled images' true labels, by file stem.", rich_help_panel=DATA),
    ] = None,
    rounds: Annotated[
        int, typer.Option(help="Pseudo-label rounds of the docs and yolossl arms.", rich_help_panel=ARMS)
    ] = 3,
    seeds: Annotated[
        int, typer.Option(help="Split seeds: which labels are kept, one round 0 each.", rich_help_panel=ARMS)
    ] = 3,
    first_seed: Annotated[
        int, typer.Option(help="The first split seed (seeds run: first, first + 1, ...).", rich_help_panel=ARMS)
    ] = 0,
    train_seeds: Annotated[
        int,
        typer.Option(
            help="Replicates: each arm after round 0 trained this many times per split seed.",
            rich_help_panel=ARMS,
        ),
    ] = 1,
    arms: Annotated[
        str,
        typer.Option(
            help="Comma-separated arms (docs/benchmarks.md); yolossl (offline rounds) on request.",
            rich_help_panel=ARMS,
        ),
    ] = "saturated,supervised,supervised-wall,docs,online,oracle",  # bench.DEFAULT_ARMS (a test pins it)
    model: Annotated[
        str | None, typer.Option(help="Start model of every arm. Default: yolo11n.yaml.", rich_help_panel=TRAINING)
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Round 0 epochs (labeled only), shared by every arm.", rich_help_panel=TRAINING)
    ] = None,
    saturate_epochs: Annotated[
        int | None,
        typer.Option(
            help="Round 0: up to this many more epochs at the rounds' rate, until the labels saturate (0: off).",
            rich_help_panel=TRAINING,
        ),
    ] = None,
    saturate_window: Annotated[
        int | None,
        typer.Option(
            help="Saturated: no rise of --saturate-min-gain within this many epochs.", rich_help_panel=TRAINING
        ),
    ] = None,
    saturate_min_gain: Annotated[
        float | None,
        typer.Option(help="The rise that counts within the window (above your seed spread).", rich_help_panel=TRAINING),
    ] = None,
    saturate_every: Annotated[
        int | None, typer.Option(help="Validate the saturation run every this many epochs.", rich_help_panel=TRAINING)
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            help="Split seeds trained side by side (worker processes; one per 1-2 cores).", rich_help_panel=RUN
        ),
    ] = 1,
    online_steps: Annotated[
        float,
        typer.Option(
            help="With the yolossl arm: the online arm's steps as a share of its steps.",
            rich_help_panel=ARMS,
        ),
    ] = 1.0,
    round_epochs: Annotated[
        int | None, typer.Option(help="Epochs of each pseudo-label round.", rich_help_panel=TRAINING)
    ] = None,
    ema: Annotated[
        str | None,
        typer.Option(
            help="Every arm's saved weight average: fitted or ultralytics (not online). Default: fitted.",
            rich_help_panel=TRAINING,
        ),
    ] = None,
    imgsz: Imgsz = None,
    batch: Batch = None,
    device: Device = None,
    train_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--train-arg", help="Ultralytics training argument for every arm, key=value.", rich_help_panel=TRAINING
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="An option of the SSL arms' cycle, key=value (e.g. lambda_u=2).",
            rich_help_panel=ARMS,
        ),
    ] = None,
    round0_from: Annotated[
        Path | None,
        typer.Option(help="Reuse an earlier bench run's round-0 models (same data and seeds).", rich_help_panel=ARMS),
    ] = None,
    project: Annotated[str, typer.Option(help="Parent folder of bench runs.", rich_help_panel=RUN)] = "runs/bench",
    name: Annotated[
        str | None, typer.Option(help="Bench run folder name. Default: bench, bench2, ...", rich_help_panel=RUN)
    ] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Will SSL help on my data? Hide labels, run every arm on the same splits and budget, compare on test.

    The data YAML's `test:` split scores every arm and chooses nothing; without one, a fixed half of val is held
    out as the test split (said in the output).

    Example: yolossl bench --data data.yaml --label-fraction 0.1 --seeds 3"""
    setup_logging(quiet, verbose)
    with errors_as_one_line(verbose):
        from yolossl.bench import BenchConfig, format_table, run_bench
        from yolossl.config import parse_train_args
        from yolossl.demo import BENCH_DATASETS, final_yaml
        from yolossl.errors import YolosslError

        if dataset not in BENCH_DATASETS:
            raise YolosslError(f"--dataset must be one of {', '.join(BENCH_DATASETS)}, got {dataset!r}")
        bundled = BENCH_DATASETS[dataset]
        if final and data:
            raise YolosslError(
                "--final is the bundled dataset's held-back test split; with --data, your data YAML's test: is scored"
            )
        source = final_yaml(bundled.ensure()) if final else None
        training: dict[str, Any] = {} if data else dict(bundled.training)
        given = {
            "model": model,
            "epochs": epochs,
            "saturate_epochs": saturate_epochs,
            "saturate_window": saturate_window,
            "saturate_min_gain": saturate_min_gain,
            "saturate_every": saturate_every,
            "round_epochs": round_epochs,
            "ema": ema,
            "imgsz": imgsz,
            "batch": batch,
            "device": device,
        }
        training.update({k: v for k, v in given.items() if v is not None})
        if train_arg:
            training["train_args"] = {**training.get("train_args", {}), **parse_train_args(train_arg)}
        config = BenchConfig(
            data=str(data or source or bundled.ensure()),
            label_fraction=None if unlabeled else label_fraction or (0.1 if data else bundled.label_fraction),
            unlabeled=[str(p) for p in unlabeled or []],
            unlabeled_truth=str(unlabeled_truth) if unlabeled_truth else None,
            rounds=rounds,
            seeds=seeds,
            first_seed=first_seed,
            train_seeds=train_seeds,
            arms=tuple(a.strip() for a in arms.split(",") if a.strip()),
            training=training,
            cycle=parse_train_args(set_) if set_ else {},
            project=project,
            name=name,
            round0_from=str(round0_from) if round0_from else None,
            online_steps=online_steps,
            jobs=jobs,
        )
        result = run_bench(config, on_arm=lambda arm, seed: stdout.print(f"seed {seed}: {arm}"))
        stdout.print(format_table(result.summary(), result.test_split))
        stdout.print(f"Bench: {result.run_dir / 'bench.json'}")
