"""The one place that trains and validates with Ultralytics: arguments, save folders, metrics.

Training runs Ultralytics' own trainer through subclasses of it: by default with its EMA fitted to the
run's length (`ema.FittedEmaTrainer`), with `loss="pseudo-aware"` also the pseudo-aware loss
(`trainer.PseudoAwareTrainer`, loss in `loss`, per-image targets in `targets`); `ema="ultralytics"` with
Ultralytics' loss is Ultralytics' trainer as it ships. Validation is Ultralytics' own. This module decides
the arguments, keeps every round in its own folder (multi-GPU training deletes its save dir before
re-launching), and turns the results into plain dataclasses.

    >>> result = train_detector("yolo11n.yaml", Path("round_0/data.yaml"), Path("round_0/train"),
    ...                         TrainSettings(epochs=50, imgsz=128, batch=16, device="cpu"))
    >>> result.metrics.map50_95
"""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from yolossl.errors import YolosslError, first_line
from yolossl.models import load_model
from yolossl.runtime import ensure_fonts, torch_threads_kept
from yolossl.train.epochs import EpochCallback, EpochReports, following
from yolossl.train.saturation import SaturationWatch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Metrics:
    """Validation metrics on the human-labeled val split."""

    map50: float
    map50_95: float
    precision: float
    recall: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


LOSSES = ("ultralytics", "pseudo-aware")
EMAS = ("fitted", "ultralytics")


@dataclass(frozen=True)
class TrainSettings:
    """Ultralytics training arguments, under Ultralytics' names; `loss` picks the trainer (ours or theirs)."""

    epochs: int
    imgsz: int
    batch: int
    device: str
    workers: int = 8
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    loss: str = "ultralytics"
    """ultralytics: its own trainer; pseudo-aware: `PseudoAwareTrainer`, for data YAMLs naming their pseudo targets."""
    online: bool = False
    """Train with the online teacher (`online.OnlineTeacherTrainer`, pseudo-aware loss), for data YAMLs naming their
    online settings; `loss` is then not used."""
    ema: str = "fitted"
    """fitted: the validated and saved weight average spans a tenth of the run (`ema.ema_schedule`); ultralytics:
    Ultralytics' ModelEMA as it ships, which barely averages runs of a few hundred steps. The pseudo-aware loss and
    the online teacher always fit theirs."""

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise YolosslError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.ema not in EMAS:
            raise YolosslError(f"ema must be one of {', '.join(EMAS)}, got {self.ema!r}")
        if self.ema == "ultralytics" and (self.loss != "ultralytics" or self.online):
            raise YolosslError(
                "ema ultralytics goes with loss ultralytics: the pseudo-aware loss fits its EMA to the run"
            )


@dataclass(frozen=True)
class TrainResult:
    """What one training produced: the weights to use next and their val metrics."""

    weights: Path
    metrics: Metrics
    save_dir: Path
    wall_time_s: float


def check_train_args(extra: dict[str, Any]) -> None:
    """Refuse an argument Ultralytics' trainer would reject (its name, closest match, or type), before any training.

    Ultralytics' own refusal comes from inside the first training, as an error blaming the dataset.
    """
    import difflib

    from ultralytics.cfg import DEFAULT_CFG_DICT, check_cfg

    for key in extra:
        if key not in DEFAULT_CFG_DICT:
            close = difflib.get_close_matches(key, DEFAULT_CFG_DICT, n=1)
            hint = f"; did you mean {close[0]}?" if close else " (see Ultralytics' cfg/default.yaml)"
            raise YolosslError(f"--train-arg {key}={extra[key]}: not an Ultralytics training argument{hint}")
    try:
        check_cfg(dict(extra))
    except (TypeError, ValueError) as e:
        raise YolosslError(f"--train-arg: {first_line(e)}") from e


def train_detector(
    model_source: str | Path,
    data_yaml: Path,
    save_dir: Path,
    settings: TrainSettings,
    on_epoch: EpochCallback | None = None,
    watch: SaturationWatch | None = None,
) -> TrainResult:
    """Train with Ultralytics' trainer into `save_dir` and return the best weights and their metrics.

    `on_epoch(epoch, epochs, losses_and_metrics)` is called after each epoch (1-based), from
    Ultralytics' own `on_fit_epoch_end` callback; on several GPUs, through a file (`epochs`).
    `watch` validates every few epochs and stops the run once the labels saturate (`saturation`; one device).
    """
    check_train_args(settings.extra)
    ensure_fonts()
    model = load_model(model_source)
    save_dir = save_dir.resolve()
    if watch is not None:
        for event, callback in watch.callbacks().items():
            model.add_callback(event, callback)
    reported = attach_epoch_reports(model, on_epoch, settings.device, save_dir)
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
            with torch_threads_kept(), reported:
                results = model.train(**args, **_trainer_for(settings, model, model_source))
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


def attach_epoch_reports(
    model: Any, on_epoch: EpochCallback | None, device: str, save_dir: Path
) -> AbstractContextManager[None]:
    """Give `model`'s trainer callbacks that report each epoch to `on_epoch`; on several GPUs through a file, which
    the returned context follows while it trains (`epochs`)."""
    if on_epoch is None:
        return nullcontext()
    # Beside the save dir: the multi-GPU launch deletes the save dir before its workers start.
    reports_file = save_dir.parent / f".{save_dir.name}.epochs.jsonl" if _gpus(device) > 1 else None
    for event, callback in EpochReports(on_epoch, reports_file).callbacks().items():
        model.add_callback(event, callback)
    return following(reports_file, on_epoch) if reports_file else nullcontext()


def _gpus(device: str) -> int:
    """How many devices a device string names ('0,1': two, a multi-GPU launch)."""
    return len([d for d in str(device).split(",") if d.strip()])


def _trainer_for(settings: TrainSettings, model: Any, source: str | Path) -> dict[str, Any]:
    """`model.train`'s `trainer=` argument for `settings` (none: Ultralytics picks its own)."""
    if settings.loss == "ultralytics" and not settings.online:
        if settings.ema == "ultralytics":
            return {}
        if getattr(model, "task", "detect") != "detect":
            logger.info("%s: a %s model trains with Ultralytics' own trainer and EMA", source, model.task)
            return {}
        from yolossl.train.ema import FittedEmaTrainer

        return {"trainer": FittedEmaTrainer}
    from yolossl.train.trainer import PseudoAwareTrainer, check_loss_supported

    check_loss_supported(model.model, source)
    if settings.online:
        from yolossl.train.online import OnlineTeacherTrainer

        return {"trainer": OnlineTeacherTrainer}
    return {"trainer": PseudoAwareTrainer}


def validate_detector(weights: Path, data_yaml: Path, settings: TrainSettings) -> Metrics:
    """Ultralytics' validator on the data YAML's val split."""
    metrics = _metrics_from(_validated(weights, data_yaml, settings))
    if metrics is None:
        raise YolosslError(f"{weights}: validation returned no box metrics")
    return metrics


def validate_per_class(weights: Path, data_yaml: Path, settings: TrainSettings) -> dict[str, float]:
    """mAP50-95 per class name on the data YAML's val split (a class without val boxes: the mean, as Ultralytics)."""
    results = _validated(weights, data_yaml, settings)
    box = getattr(results, "box", None)
    if box is None:
        raise YolosslError(f"{weights}: validation returned no box metrics")
    return {str(name): float(box.maps[index]) for index, name in results.names.items()}


def _validated(weights: Path, data_yaml: Path, settings: TrainSettings) -> Any:
    ensure_fonts()
    model = load_model(weights)
    device = settings.device.split(",")[0]  # validation runs on one device
    with torch_threads_kept():
        return model.val(
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


def _metrics_from(results: Any) -> Metrics | None:
    box = getattr(results, "box", None)
    if box is None:
        return None
    return Metrics(map50=float(box.map50), map50_95=float(box.map), precision=float(box.mp), recall=float(box.mr))
