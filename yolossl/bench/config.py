"""What a bench compares: its arms and options, checked before the first seed trains."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from yolossl.config import CycleConfig, conf_alone_means_one_threshold, pseudo_aware_means_ignore_regions
from yolossl.cycle.inputs import check_run_settings
from yolossl.errors import YolosslError

ARMS = ("saturated", "supervised", "supervised-wall", "docs", "yolossl", "online", "oracle")
DEFAULT_ARMS = ("saturated", "supervised", "supervised-wall", "docs", "online", "oracle")
"""The offline rounds (`yolossl`) are no longer the default cycle: an arm on request."""
LABELED_ONLY = ("saturated", "supervised", "supervised-wall")
BASELINES = {
    "supervised": "labeled-only, continued from round 0 in one run of the online arm's optimizer steps (the yolossl "
    "arm's images seen when it runs): step-matched",
    "supervised-wall": "labeled-only, trained on from round 0 for the online arm's measured wall time (its rounds' "
    "training and pool labeling), at the supervised arm's measured speed, with Ultralytics' own warm-up and decay "
    "(as a user trains longer): wall-matched",
    "saturated": "labeled-only round 0 itself, trained on in one run at the rounds' rate until its best val score "
    "rose by less than saturate_min_gain within saturate_window epochs (or marked not saturated at its cap); "
    "oracle - saturated: how label-bound it is",
}
DOCS_WORKFLOW = {"conf": 0.85, "target_precision": None, "uncertain": "keep", "keep_empty": True, "labeled_repeat": 1}
TEST_SHARE = 0.5
"""Without `test:` in the data YAML, this share of val (at least one image) is held out as the test split..."""
TEST_SEED = 0
"""... drawn with this seed, the same for every split seed: the test images never change within a bench."""


@dataclass
class BenchConfig:
    """What to compare and how long to train; `cycle` holds the SSL arms' options (CycleConfig names)."""

    data: str
    label_fraction: float | None = 0.1
    unlabeled: list[str] = field(default_factory=list)
    unlabeled_truth: str | None = None
    rounds: int = 3
    seeds: int = 3
    first_seed: int = 0
    """Split seeds run are first_seed, first_seed + 1, ...: one more seed of an earlier bench in a run of its own."""
    train_seeds: int = 1
    """Replicates: every arm after round 0 trained this many times per split seed, each with its own training seed
    (the split seed, then + 1000, + 2000, ...); round 0, the shared start, once per split seed."""
    arms: tuple[str, ...] = DEFAULT_ARMS
    training: dict[str, Any] = field(default_factory=dict)
    """Shared by every arm: model, epochs, round_epochs, imgsz, batch, device, workers, train_args."""
    cycle: dict[str, Any] = field(default_factory=dict)
    project: str = "runs/bench"
    name: str | None = None
    round0_from: str | None = None
    """An earlier bench run with the same data, fraction and seeds: reuse its round-0 models (ablations)."""
    budget_from: str | None = None
    """An earlier bench run whose yolossl arm sets the steps of the matched and online arms (default: round0_from)."""
    jobs: int = 1
    """Split seeds trained side by side in worker processes (each training uses all cores but one)."""
    online_steps: float = 1.0
    """The online arm's optimizer steps as a share of the yolossl arm's (below 1: to match its wall time)."""

    def __post_init__(self) -> None:
        self.arms = tuple(self.arms)
        unknown = sorted(set(self.arms) - set(ARMS))
        if unknown:
            raise YolosslError(f"unknown arm(s) {unknown}; choose from {list(ARMS)}")
        if "supervised-wall" in self.arms and not {"supervised", "online"} <= set(self.arms):
            raise YolosslError(
                "the supervised-wall arm needs the supervised and online arms: their times set its length"
            )
        if self.unlabeled and not self.unlabeled_truth:
            raise YolosslError("--unlabeled needs --unlabeled-truth LABELS_DIR to score the arms against")
        if not self.unlabeled and not (self.label_fraction and 0.0 < self.label_fraction < 1.0):
            raise YolosslError(f"--label-fraction must be in (0, 1), got {self.label_fraction}")
        if self.seeds < 1 or self.rounds < 1 or self.train_seeds < 1:
            raise YolosslError("--seeds, --train-seeds and --rounds must be >= 1")
        if self.jobs < 1:
            raise YolosslError(f"--jobs must be >= 1, got {self.jobs}")
        if not self.online_steps > 0:
            raise YolosslError(f"--online-steps must be > 0, got {self.online_steps}")
        if "mode" in self.cycle:
            raise YolosslError("the bench runs the yolossl arm offline and the online arm online: drop 'mode'")
        # The arms' options are checked now, not after the first seed's split and round 0 (nor, for the device, the
        # model and the training arguments, after the bench folder exists).
        check_run_settings(CycleConfig(**{**self.training, **self.offline_options(), "mode": "offline"}))
        if "online" in self.arms:
            try:  # the online arm's cycle, as `arms.online_config` makes it
                CycleConfig(**{**self.training, **self.cycle_options(), "mode": "online", "ema": "fitted"})
            except YolosslError as e:
                raise YolosslError(f"the online arm cannot take these options ({e}); leave online out of --arms") from e

    def cycle_options(self) -> dict[str, Any]:
        """The SSL arms' options as the CLI means them (`conf` alone: one threshold; pseudo-aware: ignore regions)."""
        return pseudo_aware_means_ignore_regions(conf_alone_means_one_threshold(self.cycle))

    def offline_options(self) -> dict[str, Any]:
        """The options of the offline cycles (round 0, the yolossl arm): those only the online teacher has left out
        (`online_only_options`)."""
        online_only = self.online_only_options()
        return {k: v for k, v in self.cycle_options().items() if k not in online_only}

    def online_only_options(self) -> dict[str, Any]:
        """Options that exist only in mode online (dense targets), applied to the online arm alone."""
        return {"unsure_targets": "dense"} if self.cycle_options().get("unsure_targets") == "dense" else {}

    @property
    def training_seeds(self) -> range:
        return range(self.train_seeds)
