"""`yolossl export` and `yolossl import`: pseudo-labels out to annotation tools, corrections back in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from yolossl.cli._ui import DATA, ExistOk, Quiet, Verbose, errors_as_one_line, setup_logging, stdout

WHAT, IMAGES = "What to export", "Images"
Format = Annotated[
    str, typer.Option("--format", "-f", help="coco | cvat | labelstudio | voc | yolo.", rich_help_panel=DATA)
]


def export(
    source: Annotated[Path, typer.Argument(help="A run's round (e.g. runs/cycle/exp/round_2) or a data YAML.")],
    fmt: Format,
    out: Annotated[
        Path, typer.Option(help="A new folder for the export (images are linked into it).", rich_help_panel=DATA)
    ],
    exist_ok: ExistOk = False,
    min_score: Annotated[
        float, typer.Option(help="Leave out pseudo boxes scoring below this.", rich_help_panel=WHAT)
    ] = 0.0,
    split: Annotated[
        str, typer.Option(help="With a data YAML: the split to export, train or val.", rich_help_panel=WHAT)
    ] = "train",
    review: Annotated[
        int | None,
        typer.Option(
            help="Only the N images most worth a human look (uncertain boxes, close calls).", rich_help_panel=WHAT
        ),
    ] = None,
    unlabeled: Annotated[
        list[Path] | None,
        typer.Option(
            help="The folder(s) the pseudo-labeled images came from; names are relative to them. "
            "Default: the run's own --unlabeled folders.",
            rich_help_panel=IMAGES,
        ),
    ] = None,
    image_url_prefix: Annotated[
        str | None,
        typer.Option(
            help="Label Studio: each task's image is PREFIX + name (s3://bucket/cams/, https://..., "
            "/data/local-files/?d=cams/) instead of a link in --out.",
            rich_help_panel=IMAGES,
        ),
    ] = None,
    copy_images: Annotated[
        bool,
        typer.Option(
            help="Link the images into --out; --no-copy-images writes the annotations only.", rich_help_panel=IMAGES
        ),
    ] = True,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Write pseudo-labels (or a dataset) for review in CVAT, Label Studio, or as COCO / VOC / YOLO.

    Images keep the names they have under their folder (cams/a/0001.jpg), so a task made from your own images matches.

    Example: yolossl export runs/cycle/exp/round_3 -f labelstudio --out review/ --review 200
    """
    setup_logging(quiet, verbose)
    with errors_as_one_line(verbose):
        from yolossl.export import export_source

        written = export_source(
            source, fmt, out, min_score, split, review, unlabeled or (), image_url_prefix, copy_images, exist_ok
        )
        stdout.print(f"Exported to {written}")


def import_(
    path: Annotated[
        Path,
        typer.Argument(help="The tool's export: a JSON/XML file, a zip, a VOC folder, a YOLO folder or data YAML."),
    ],
    fmt: Format,
    out: Annotated[Path, typer.Option(help="A new folder for the YOLO dataset.", rich_help_panel=DATA)],
    exist_ok: ExistOk = False,
    images: Annotated[
        list[Path] | None,
        typer.Option(
            help="Where the images are that the file names refer to (repeatable). Default: beside it.",
            rich_help_panel=IMAGES,
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Your data YAML: match classes by its names, train on its images too, validate on its val.",
            rich_help_panel=DATA,
        ),
    ] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Read reviewed labels back into a YOLO dataset, ready for `yolossl cycle --data OUT/data.yaml`.

    Example: yolossl import review/export.json -f labelstudio --out reviewed/ --data data.yaml"""
    setup_logging(quiet, verbose)
    with errors_as_one_line(verbose):
        from yolossl.export import import_annotations

        stdout.print(f"Dataset written: {import_annotations(path, fmt, out, images, data, exist_ok)}")
