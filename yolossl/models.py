"""Loading an Ultralytics model the way every yolossl step does: from a .yaml, a local .pt, or a released name.

Training and labeling both load models; keeping it here (not in `train`) lets labeling load one
without importing the trainer.
"""

from __future__ import annotations

from pathlib import Path

from yolossl.errors import YolosslError, first_line

MODEL_SUFFIXES = (".pt", ".yaml", ".yml")


def check_model_source(source: str | Path, option: str = "") -> None:
    """Refuse a model Ultralytics could not load, before anything is written or looked up on the network.

    A .pt must be a file, or a released name (yolo11n.pt) that Ultralytics downloads when it is not in its weights
    folder; a .yaml a file or one of Ultralytics' model configs. A path that is not there is never a download: asked
    for `./missing.pt`, Ultralytics would search GitHub's releases for it (twice, even offline). `option` (--model)
    begins the error.
    """
    text = str(source)
    path = Path(text)
    named = f"{option} {text}" if option else text
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        stem = path.stem if suffix in (".onnx", ".engine", ".torchscript") else path.name
        raise YolosslError(
            f"{named}: a model is a .pt weights file or a .yaml model config, e.g. {stem}.pt (pretrained) or "
            f"{stem}.yaml (from scratch)"
        )
    if path.is_file():
        return
    if path.name != text:  # a path, not a name
        raise YolosslError(f"{named}: model file not found")
    if suffix == ".pt":
        from ultralytics.utils import SETTINGS
        from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

        if text not in GITHUB_ASSETS_NAMES and not (Path(SETTINGS["weights_dir"]) / text).is_file():
            raise YolosslError(f"{named}: model file not found, and not the name of a released Ultralytics model")
        return
    from ultralytics.nn.tasks import yaml_model_load

    try:
        yaml_model_load(text)
    except Exception as e:  # Ultralytics' lookup raises FileNotFoundError or its own errors
        raise YolosslError(f"{named}: model config not found, here or among Ultralytics' ({first_line(e)})") from e


def load_model(source: str | Path):
    """A YOLO model from a .yaml (built from scratch) or .pt (loaded, downloaded if named and missing).

    A named weight that cannot be downloaded becomes one clear error instead of a traceback.
    """
    from ultralytics import YOLO

    source = str(source)
    suffix = Path(source).suffix.lower()
    check_model_source(source)
    try:
        return YOLO(source)
    except FileNotFoundError as e:
        raise YolosslError(f"{source}: model not found ({first_line(e)})") from e
    except Exception as e:
        if suffix == ".pt" and not Path(source).exists():
            raise YolosslError(
                f"{source}: weights not found locally and the download failed ({first_line(e)}). "
                f"Offline? Train from scratch with a model config such as '{Path(source).stem}.yaml', "
                "or pass the path of a local .pt file."
            ) from e
        raise YolosslError(f"{source}: could not load the model ({first_line(e)})") from e
