"""yolossl: semi-supervised training for Ultralytics YOLO detectors.

    >>> from yolossl import CycleConfig, run_cycle
    >>> result = run_cycle(CycleConfig(data="data.yaml", unlabeled=["imgs/"], rounds=3))
    >>> result.rounds[-1].metrics.map50_95

Running offline (no network, or behind a firewall)? Set `YOLO_OFFLINE=1` and
`YOLO_AUTOINSTALL=false` before importing Ultralytics, as the `yolossl` command does, and use a
`.yaml` model or a local `.pt`.
"""

from __future__ import annotations

from yolossl.config import CycleConfig
from yolossl.cycle import CycleResult, RoundResult, resume_cycle, run_cycle
from yolossl.errors import YolosslError
from yolossl.train import Metrics

__version__ = "0.1.0"

__all__ = [
    "CycleConfig",
    "CycleResult",
    "Metrics",
    "RoundResult",
    "YolosslError",
    "__version__",
    "resume_cycle",
    "run_cycle",
]
