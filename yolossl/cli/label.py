"""`yolossl label`: pseudo-label folders of images with one model or an ensemble."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from yolossl.cli._ui import (
    ADVANCED,
    DATA,
    PSEUDO,
    Backend,
    Batch,
    Conf,
    D,
    DataYaml,
    Device,
    Engine,
    ExistOk,
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


def label(
    folders: Annotated[list[Path], typer.Argument(help="Folders of images to label, searched recursively.")],
    model: Annotated[
        list[Path],
        typer.Option(
            "--model",
            "-m",
            help="Weights: a .pt path, or a released name (yolo11n.pt) downloaded when missing. "
            "Repeat for an ensemble fused by WBF.",
            rich_help_panel=DATA,
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="Output folder: labels/, images/, record.csv, thresholds.json.", rich_help_panel=DATA)
    ],
    exist_ok: ExistOk = False,
    data: DataYaml = None,
    conf: Conf = None,
    target_precision: TargetPrecision = None,
    uncertain: Uncertain = None,
    uncertain_low: UncertainLow = None,
    tta: Tta = None,
    backend: Backend = None,
    engine: Engine = None,
    ray_address: RayAddress = None,
    imgsz: Imgsz = None,
    batch: Batch = None,
    device: Device = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Image decoding threads. Default: CPU count, at most 8.", rich_help_panel=ADVANCED),
    ] = None,
    empty_label_files: Annotated[
        bool,
        typer.Option(
            "--empty-label-files/--no-empty-label-files",
            help="An empty label file for an image with no kept box ('looked, found nothing').",
            rich_help_panel=PSEUDO,
        ),
    ] = True,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Write YOLO pseudo-labels and a per-box record for every image in FOLDERS.

    Example: yolossl label /mnt/cams -m runs/cycle/exp/weights/best.pt --out pseudo/ --data data.yaml"""
    setup_logging(quiet, verbose)
    with errors_as_one_line(verbose):
        from yolossl.label import LabelSettings
        from yolossl.label.pool import label_folders
        from yolossl.runtime import resolve_device

        settings = LabelSettings(
            conf=D.conf if conf is None else conf,
            target_precision=target_precision,
            uncertain=uncertain or D.uncertain,
            uncertain_low=uncertain_low,
            imgsz=imgsz or D.imgsz,
            batch=batch or D.batch,
            device=resolve_device(device),
            backend=backend or D.backend,
            engine=engine or D.engine,
            ray_address=ray_address,
            tta=bool(tta),
            workers=workers,
            empty_label_files=empty_label_files,
        )
        progress = progress_bar(quiet)
        with progress or nullcontext():
            advance = None
            if progress is not None:
                task = progress.add_task("labeling", total=None, unit="img/s")

                def advance(n: int) -> None:
                    progress.update(task, advance=n)

            stats = label_folders(model, folders, out, settings, data=data, on_progress=advance, exist_ok=exist_ok)
        per_class = ", ".join(f"{c}: {n}" for c, n in stats.kept_per_class.items())
        stdout.print(
            f"Labeled {stats.images} images in {stats.wall_time_s:.1f} s ({stats.images_per_s:.1f} img/s): "
            f"{stats.kept} boxes kept on {stats.images_with_boxes} images (by class id {per_class}), "
            f"{stats.uncertain} uncertain ({stats.masked_images} images masked), {stats.dropped} dropped"
            + (f"; {len(stats.unreadable)} unreadable" if stats.unreadable else "")
        )
        stdout.print(f"Labels: {out / 'labels'}  Record: {out / 'record.csv'}")
