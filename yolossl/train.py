"""The one place that trains and validates with Ultralytics: offline set-up, device choice, metrics.

Training reuses Ultralytics' own trainer and validator unchanged; this module only decides the
arguments, keeps every round in its own folder (multi-GPU training deletes its save dir before
re-launching), and turns the results into plain dataclasses.

    >>> result = train_detector("yolo11n.yaml", Path("round_0/data.yaml"), Path("round_0/train"),
    ...                         TrainSettings(epochs=50, imgsz=128, batch=16, device="cpu"))
    >>> result.metrics.map50_95
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from yolossl.errors import YolosslError, first_line

logger = logging.getLogger(__name__)

OFFLINE_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}


@dataclass(frozen=True)
class Metrics:
    """Validation metrics on the human-labeled val split."""

    map50: float
    map50_95: float
    precision: float
    recall: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class TrainSettings:
    """Ultralytics training arguments, under Ultralytics' names."""

    epochs: int
    imgsz: int
    batch: int
    device: str
    workers: int = 8
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    """What one training produced: the weights to use next and their val metrics."""

    weights: Path
    metrics: Metrics
    save_dir: Path
    wall_time_s: float


def use_offline_defaults() -> None:
    """Keep Ultralytics from probing the network or pip-installing at run time, and from taking cores.

    Call before the first `import ultralytics` (the CLI and the benchmarks do). Values the user
    has already set win. Named weights still download where the network allows it.

    Torch is imported here, first: `import ultralytics` sets OMP_NUM_THREADS=1 when it is unset
    (meant for its training dataloaders), and a torch imported after that runs labeling and the
    FixMatch head on one core. Ultralytics' trainer still picks its own thread count. Freed memory
    is kept for reuse (`reuse_freed_memory`).
    """
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    reuse_freed_memory()
    import torch  # noqa: F401  (its thread pool is sized from the environment as the user left it)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt() parameters
_KEEP_BELOW = 1 << 30
_ALLOCATOR_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD")


def reuse_freed_memory() -> bool:
    """Keep the large buffers torch and OpenCV free for the next batch instead of returning them to the OS.

    glibc maps each buffer over 32 MiB (and, as it adapts, smaller ones) afresh and unmaps it on
    free, so every batch page-faults its tensors in again: 700-1000 faults per image when labeling
    at imgsz 256 on CPU, 8% of `yolossl label`'s images/s in benchmarks/label_speed.py. The cost:
    up to 1 GiB of freed memory stays with the process until it exits. glibc only; an allocator
    the user chose (LD_PRELOAD, MALLOC_* or GLIBC_TUNABLES) is left alone. Returns whether it took
    effect.
    """
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc" or any(os.environ.get(k) for k in _ALLOCATOR_ENV):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # Older glibc refuses an mmap threshold above 32 MiB: take that rather than nothing.
    mapped = libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BELOW) == 1 or libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1
    return mapped and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BELOW) == 1


def ensure_fonts() -> None:
    """Put a font where Ultralytics looks first, so dataset checks never try to download Arial.

    Ultralytics calls `check_font('Arial.ttf')` on every dataset check, and downloads the font
    into its config dir when missing: offline that is a failed request each time. We copy
    matplotlib's bundled DejaVuSans there instead, which is all it is used for (plot labels).
    """
    from matplotlib import get_data_path
    from ultralytics.utils import USER_CONFIG_DIR

    source = Path(get_data_path()) / "fonts/ttf/DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = Path(USER_CONFIG_DIR) / name
        if not target.exists() and source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)


def resolve_device(device: str | None) -> str:
    """The device string to give Ultralytics: as asked, else the first CUDA GPU, else the CPU."""
    import torch

    if device not in (None, ""):
        return str(device)
    return "0" if torch.cuda.is_available() else "cpu"


def describe_device(device: str) -> str:
    """'CPU' or 'CUDA:0 (NVIDIA H100 ...)': the line the cycle logs once at its start."""
    import torch

    if device == "cpu" or not torch.cuda.is_available():
        cpu = f"CPU ({torch.get_num_threads()} torch threads)"
        return cpu + ("" if device == "cpu" else f", asked for '{device}' but CUDA is not available")
    ids = [d.strip() for d in device.split(",") if d.strip()]
    names = [f"CUDA:{i} ({torch.cuda.get_device_name(int(i))})" for i in ids if i.isdigit()]
    return ", ".join(names) or device


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


EpochCallback = Callable[[int, int, dict[str, float]], None]


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Undo Ultralytics' thread choice on the way out.

    Its `select_device` sets torch to (cores - 1) threads, leaving one to dataloader workers: right
    while it trains, half the machine on 2 cores for whatever runs next in the process (labeling,
    the FixMatch head).
    """
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_detector(
    model_source: str | Path,
    data_yaml: Path,
    save_dir: Path,
    settings: TrainSettings,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train with Ultralytics' trainer into `save_dir` and return the best weights and their metrics.

    `on_epoch(epoch, epochs, losses_and_metrics)` is called after each epoch (1-based), from
    Ultralytics' own `on_fit_epoch_end` callback.
    """
    ensure_fonts()
    model = load_model(model_source)
    if on_epoch is not None:
        model.add_callback("on_fit_epoch_end", _epoch_callback(on_epoch))
    save_dir = save_dir.resolve()
    if save_dir.exists():  # a partial run of this step: start it again, deterministically
        shutil.rmtree(save_dir)
    args: dict[str, Any] = {
        "plots": False,
        "verbose": False,
        "deterministic": True,
        **settings.extra,
        "data": str(data_yaml),
        "epochs": settings.epochs,
        "imgsz": settings.imgsz,
        "batch": settings.batch,
        "device": settings.device,
        "workers": settings.workers,
        "seed": settings.seed,
        "project": str(save_dir.parent),
        "name": save_dir.name,
        "exist_ok": True,
    }
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # With Ray installed, Ultralytics' Ray Tune callback warns every epoch outside a Tune session.
            warnings.filterwarnings("ignore", message=".*get_trial_id.*")
            with torch_threads_kept():
                results = model.train(**args)
    except (FileNotFoundError, SyntaxError, TypeError) as e:
        raise YolosslError(f"{data_yaml}: Ultralytics could not train on this dataset ({first_line(e)})") from e
    wall = time.perf_counter() - start
    weights = save_dir / "weights" / "best.pt"
    if not weights.is_file():
        raise YolosslError(f"{save_dir}: training finished without writing weights/best.pt")
    # Under multi-GPU training the metrics live in the re-launched process: validate here instead.
    metrics = _metrics_from(results) if results is not None else None
    if metrics is None:
        metrics = validate_detector(weights, data_yaml, settings)
    return TrainResult(weights=weights, metrics=metrics, save_dir=save_dir, wall_time_s=wall)


def validate_detector(weights: Path, data_yaml: Path, settings: TrainSettings) -> Metrics:
    """Ultralytics' validator on the data YAML's val split."""
    ensure_fonts()
    model = load_model(weights)
    device = settings.device.split(",")[0]  # validation runs on one device
    with torch_threads_kept():
        results = model.val(
            data=str(data_yaml),
            imgsz=settings.imgsz,
            batch=settings.batch,
            device=device,
            plots=False,
            verbose=False,
            project=str(weights.parent.parent),
            name="val",
            exist_ok=True,
        )
    metrics = _metrics_from(results)
    if metrics is None:
        raise YolosslError(f"{weights}: validation returned no box metrics")
    return metrics


def _epoch_callback(on_epoch: EpochCallback) -> Callable[[Any], None]:
    """Adapt Ultralytics' trainer callback; its final validation fires it once more, past the last epoch."""

    def callback(trainer: Any) -> None:
        epoch = trainer.epoch + 1
        if epoch > trainer.epochs:
            return
        values = {
            k.split("/")[-1]: float(v) for k, v in trainer.label_loss_items(trainer.tloss, prefix="train").items()
        }
        for key, value in (trainer.metrics or {}).items():
            if key.startswith("metrics/"):
                values[key.split("/")[-1].replace("(B)", "")] = float(value)
        on_epoch(epoch, trainer.epochs, values)

    return callback


def _metrics_from(results: Any) -> Metrics | None:
    box = getattr(results, "box", None)
    if box is None:
        return None
    return Metrics(map50=float(box.map50), map50_95=float(box.map), precision=float(box.mp), recall=float(box.mr))
