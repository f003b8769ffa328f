"""Loading an Ultralytics model the way every yolossl step does: from a .yaml, a local .pt, or a released name.

Training and labeling both load models; keeping it here (not in `train`) lets labeling load one
without importing the trainer.
"""

from __future__ import annotations

from pathlib import Path

from yolossl.errors import YolosslError, first_line


def load_model(source: str | Path):
    """A YOLO model from a .yaml (built from scratch) or .pt (loaded, downloaded if named and missing).

    A named weight that cannot be downloaded becomes one clear error instead of a traceback.
    """
    from ultralytics import YOLO

    source = str(source)
    suffix = Path(source).suffix.lower()
    if suffix not in (".pt", ".yaml", ".yml"):
        raise YolosslError(f"{source}: model must be a .pt weights file or a .yaml model config")
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
