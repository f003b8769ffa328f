"""`yolossl fixmatch`: FixMatch on ImageNet-style class folders, against labeled-only training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from yolossl.cli._ui import Quiet, Verbose, errors_as_one_line, setup_logging, stdout


def fixmatch(
    train: Annotated[Path, typer.Option(help="Labeled images: one sub-folder per class.")],
    unlabeled: Annotated[Path, typer.Option(help="Unlabeled images (any layout).")],
    val: Annotated[Path, typer.Option(help="Validation images: the same class sub-folders.")],
    steps: Annotated[int, typer.Option(help="Training steps of each arm.")] = 1000,
    batch: Annotated[int, typer.Option(help="Labeled images per step.")] = 16,
    mu: Annotated[int, typer.Option(help="Unlabeled images per labeled image in a step.")] = 4,
    tau: Annotated[float, typer.Option(help="Confidence a weak view needs to become a pseudo-label.")] = 0.95,
    lambda_u: Annotated[float, typer.Option(help="Weight of the unlabeled loss.")] = 1.0,
    size: Annotated[int, typer.Option(help="Images are resized to this square.")] = 32,
    device: Annotated[str | None, typer.Option(help="cpu or a CUDA index. Default: CUDA if available.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Train a classifier with FixMatch and the same one on the labeled folders alone; compare on val.

    Example: yolossl fixmatch --train crops/train --unlabeled crops/pool --val crops/val"""
    setup_logging(quiet, verbose)
    with errors_as_one_line(verbose):
        from yolossl.fixmatch import FixMatchConfig, compare_on_folders
        from yolossl.runtime import resolve_device

        config = FixMatchConfig(
            steps=steps,
            batch=batch,
            mu=mu,
            tau=tau,
            lambda_u=lambda_u,
            seed=seed,
            device=resolve_device(device).split(",")[0],
            log_every=max(1, steps // 10),
        )
        result = compare_on_folders(train, unlabeled, val, config, size)
        table = Table(title=f"{len(result.names)} classes, {steps} steps each")
        for column in ("arm", "val accuracy", "time"):
            table.add_column(column, justify="right")
        table.add_row("labeled only", f"{result.labeled_only_accuracy:.3f}", f"{result.labeled_only_seconds:.0f} s")
        table.add_row("FixMatch", f"{result.fixmatch_accuracy:.3f}", f"{result.fixmatch_seconds:.0f} s")
        stdout.print(table)
        if result.history:
            last = result.history[-1]
            stdout.print(
                f"FixMatch at the end: mask ratio {last.mask_ratio:.2f}, unlabeled loss {last.unsupervised:.3f}"
            )
