"""What labeling is asked to do: inference options, which boxes to keep, where uncertain ones go.

The one place these options are checked: the cycle's config hands its options over as a
`LabelSettings` (`CycleConfig.label_settings`), and `yolossl label` builds one from its flags.
"""

from __future__ import annotations

from dataclasses import dataclass

from yolossl.errors import YolosslError

UNCERTAIN_MODES = ("mask", "drop-image", "keep")
# Ultralytics export format for each runtime we accept as --backend (None: the PyTorch model itself).
BACKENDS = {"torch": None, "onnxruntime": "onnx", "openvino": "openvino", "tensorrt": "engine"}
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class PredictSettings:
    """How the detector runs: input size, batching, device and runtime, TTA, and the score floor of a candidate."""

    imgsz: int = 640
    batch: int = 16
    device: str = "cpu"
    backend: str = "torch"
    tta: bool = False
    workers: int | None = None
    min_conf: float = 0.05


@dataclass(frozen=True)
class FilterSettings:
    """Which candidates become labels: the kept threshold(s), the uncertain band and what it does, empty files."""

    conf: float = 0.25
    target_precision: float | None = None
    uncertain: str = "mask"
    uncertain_low: float = 0.1
    empty_label_files: bool = True


@dataclass(frozen=True)
class LabelSettings:
    """A labeling pass's options as given (command line, config): checked here once, then handed out in the
    halves each room uses, `predict` (the detector) and `filter` (the box decisions), plus the engine's."""

    conf: float = 0.25
    """Kept threshold for every class, unless `target_precision` picks one per class."""
    target_precision: float | None = None
    """Pick each class's threshold as the lowest reaching this precision on val."""
    uncertain: str = "mask"
    """mask: grey out uncertain boxes in a copy; drop-image: leave such images out; keep: ignore them."""
    uncertain_low: float | None = None
    """Floor of the uncertain band; boxes below it are dropped. None: 0.1, or `conf` if lower (resolved
    when the settings are made, so it is always a number afterwards)."""
    min_conf: float | None = None
    """Boxes below this are not even candidates (not recorded). None: 0.05, or `uncertain_low` if lower
    (resolved likewise)."""
    empty_label_files: bool = True
    """An image with no kept box gets an empty label file ("looked, found nothing"); False: no file."""
    imgsz: int = 640
    batch: int = 16
    device: str = "cpu"
    backend: str = "torch"
    tta: bool = False
    workers: int | None = None
    engine: str = "local"
    """local: this process; ray: a Ray Data pipeline of shards over an actor pool (see ray_engine)."""
    ray_address: str | None = None
    shard_size: int = 1000

    def __post_init__(self) -> None:
        if self.uncertain_low is None:
            object.__setattr__(self, "uncertain_low", min(0.1, self.conf))
        if self.min_conf is None:
            object.__setattr__(self, "min_conf", min(0.05, self.uncertain_low))
        if self.uncertain not in UNCERTAIN_MODES:
            raise YolosslError(f"--uncertain must be one of {', '.join(UNCERTAIN_MODES)}, got {self.uncertain!r}")
        if not 0.0 < self.min_conf <= self.uncertain_low <= self.conf < 1.0:
            raise YolosslError(
                f"need 0 < min_conf ({self.min_conf}) <= uncertain_low ({self.uncertain_low}) <= conf ({self.conf}) < 1"
            )
        if self.engine not in ENGINES:
            raise YolosslError(f"--engine must be local or ray, got {self.engine!r}")
        if self.backend not in BACKENDS:
            raise YolosslError(f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.target_precision is not None and not 0.0 < self.target_precision <= 1.0:
            raise YolosslError(f"--target-precision must be in (0, 1], got {self.target_precision}")

    @property
    def predict(self) -> PredictSettings:
        return PredictSettings(self.imgsz, self.batch, self.device, self.backend, self.tta, self.workers, self.min_conf)

    @property
    def filter(self) -> FilterSettings:
        return FilterSettings(
            self.conf, self.target_precision, self.uncertain, self.uncertain_low, self.empty_label_files
        )
