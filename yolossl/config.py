"""The options of a cycle: defaults, a YAML file, the command line, and checks with helpful errors.

Precedence, lowest first: the defaults below, the `--config` YAML file, the command line (and,
only when no `data` is given, the demo's settings for the options given in neither).
The effective config is saved in the run folder and is what `--resume` reads back.

    >>> config = resolve_config({"rounds": 2}, config_file="cycle.yaml")
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from yolossl._fs import write_text_atomic
from yolossl._yaml import load_yaml_file, load_yaml_text
from yolossl.errors import YolosslError
from yolossl.label.settings import LabelSettings
from yolossl.train import TrainSettings
from yolossl.train.saturation import SaturationRule
from yolossl.train.schedule import ROUND_SCHEDULES, round_train_args
from yolossl.train.targets import UNSURE_MODES, LossRules

LEAKAGE_MODES = ("hash", "phash", "off")
MODES = ("offline", "online")


class _Default(float):
    """A default left as it is: equal to its value, but `CycleConfig` can tell it from the same value chosen."""


_CONF, _TARGET_PRECISION = _Default(0.25), _Default(0.8)


@dataclass
class CycleConfig:
    """Everything a cycle needs; training options keep Ultralytics' names and meanings."""

    data: str | None = None
    """Labeled data YAML (Ultralytics format). None: the bundled demo dataset."""
    unlabeled: list[str] = field(default_factory=list)
    """Folders of unlabeled images, searched recursively."""
    rounds: int = 3
    """Pseudo-label rounds after the supervised round 0."""
    model: str = "yolo11n.yaml"
    """Start model: a .yaml builds from scratch (offline); a .pt is pretrained or a previous run."""
    conf: float = _CONF
    """Keep predicted boxes scoring at least this, for every class, when `target_precision` is None. Set without
    `target_precision`, it is that one threshold (`target_precision` None), as `--conf` is on the command line."""
    target_precision: float | None = _TARGET_PRECISION
    """Pick each class's threshold as the lowest reaching this precision on val; None: use `conf`.
    Chosen by measurement (benchmarks/RESULTS.md): one global threshold either floods a round with a
    weak class's mistakes or starves the strong classes."""
    uncertain: str | None = None
    """Boxes between `uncertain_low` and the kept threshold: mask (grey them out in the round's copy
    of the image), drop-image (leave such images out), or keep (out of the labels: background to Ultralytics'
    loss, ignore regions to the pseudo-aware loss). None: keep with mode online (its rounds' pool labeling is for review
    and export: the real pixels) and with the pseudo-aware loss, mask otherwise."""
    uncertain_low: float | None = None
    """Floor of the uncertain band (boxes below it are dropped). None: 0.1, or `conf` if lower."""
    tta: bool = False
    """Pseudo-label with test-time augmentation (flip + smaller scale, fused by WBF)."""
    backend: str = "torch"
    """Inference runtime for pseudo-labeling: torch, onnxruntime, openvino or tensorrt."""
    engine: str = "local"
    """Pseudo-labeling engine: local (this process) or ray (a Ray Data pipeline; pip install 'yolossl[ray]')."""
    ray_address: str | None = None
    """An existing Ray cluster to join with engine ray (default: start a local one)."""
    fixmatch: bool = False
    """Double-check every candidate box's class with a FixMatch crop classifier trained each round (with mode online:
    in each round's labeling of the pool, not in the teacher's targets during training)."""
    fixmatch_mode: str = "relabel"
    """When the head confidently names another class: relabel the box, or drop it."""
    fixmatch_steps: int = 1000
    fixmatch_tau: float = 0.95
    """Confidence a crop's weak view needs to become a pseudo-target (the paper's 0.95; 0.8 won on
    short runs in benchmarks/fixmatch_classification.py)."""
    fixmatch_min_conf: float = 0.8
    epochs: int = 100
    """Round 0 (labeled only) training epochs."""
    round_epochs: int = 10
    """Training epochs of each pseudo-label round."""
    imgsz: int = 640
    batch: int = 16
    device: str | None = None
    """'cpu', '0', '0,1' (multi-GPU) ...; None picks CUDA when available."""
    workers: int = 8
    project: str = "runs/cycle"
    name: str | None = None
    """Run folder name under `project`; None picks exp, exp2, ..."""
    seed: int = 0
    from_scratch: bool = False
    """Retrain each round from `model` instead of fine-tuning the previous round's weights."""
    patience: int = 1
    """Stop after this many rounds in a row rejected by the round guard. With deterministic training a round
    after a rejected one would start from the same weights and repeat it."""
    start_weights: str | None = None
    """Weights of a supervised model already trained on `data`: round 0 validates them instead of training."""
    keep_empty: bool = False
    """Also train on pool images with no kept box, as background (the docs' workflow). Default: leave them out."""
    leakage: str = "hash"
    """Leave out unlabeled images that copy a val image: hash (byte-identical), phash (near-identical), off."""
    labeled_repeat: int | None = None
    """Each labeled image appears this many times per round; None: enough to be a third of the round's
    images, so that the human labels are not drowned by pseudo-labels (benchmarks/RESULTS.md)."""
    train_args: dict[str, Any] = field(default_factory=dict)
    """Any other Ultralytics training argument, passed through (e.g. {'mosaic': 0.5})."""
    loss: str = "ultralytics"
    """ultralytics: pseudo-labels train as human labels do. pseudo-aware: the loss knows them (yolossl.train.loss):
    what the teacher saw but did not keep is ignored rather than taught as background, and so are the classes it
    could not label. Without an `uncertain` mode, uncertain boxes are then kept out of the labels (uncertain: keep)
    instead of greyed out; set `uncertain` to compare. One seed on the glyphs
    bench so far (benchmarks/RESULTS.md)."""
    lambda_u: float = 1.0
    """With mode online or loss pseudo-aware: weight of the pseudo-labeled images' loss."""
    pseudo_box_min_score: float | None = 0.5
    """With mode online or loss pseudo-aware: pseudo boxes teach box regression only when the teacher scored them at
    least this; None (`null` in a config file): never. 0.5 beat never in mode online on each of the glyphs bench's 3
    seeds (benchmarks/RESULTS.md); with the offline pseudo-aware loss, never, 0.9 and every box were level."""
    unsure_targets: str = "ignore"
    """With mode online or loss pseudo-aware: what the teacher's unsure boxes (above `uncertain_low`, below their
    class's threshold) teach. soft: their class, at the teacher's score (`s` at the box's best anchor; never box
    regression), and background there weighted by 1 - s; ignore: nothing (no class loss inside them); dense (mode
    online): no boxes, the teacher's class scores at every place of the image (0 below `uncertain_low`) are the
    student's class targets there; kept boxes still teach box regression."""
    round_schedule: str = "continue"
    """How rounds after round 0 train (yolossl.train.schedule): continue (no warm-up, a constant learning rate of
    round_lr_scale x Ultralytics' small-run AdamW rate) or fresh (Ultralytics' own warm-up and decay each round)."""
    round_lr_scale: float = 0.5
    """With round_schedule continue: the rounds' learning rate as a fraction of round 0's."""
    saturate_epochs: int = 0
    """Round 0 trains on, after its `epochs`, for up to this many more in one run at the rounds' rate, validated every
    `saturate_every`, until the labels saturate (yolossl.train.saturation): the best model the labels can give,
    which the rounds then have to beat. 0: round 0 is its `epochs`."""
    saturate_window: int = 50
    """Saturated: the best val mAP50-95 has not risen by `saturate_min_gain` within this many epochs (set it to at
    least the labels-alone comparison's length)."""
    saturate_min_gain: float = 0.005
    """The rise that counts within the window: above what a training seed moves a run on your data."""
    saturate_every: int = 5
    """Validate the saturation run every this many epochs."""
    mode: str = "online"
    """online: after round 0, one run of the offline rounds' optimizer steps (`online_epochs`) in which the model's EMA
    teacher labels each unlabeled batch on the fly (yolossl.train.online, with `lambda_u`, `pseudo_box_min_score`, the
    thresholds and `uncertain_low`), trained as `rounds` rounds (`online_rounds`): at each round's end the teacher
    labels the pool into round_k/pseudo/, merged into round_k/data.yaml. offline: `rounds` rounds of label → merge →
    retrain (with from_scratch, ema ultralytics). Online is the default because it alone beat the labels alone at the
    same steps on each of the glyphs bench's seeds (development runs); on its held-out test split it does too
    (+0.021), and loses to them at the same CPU time (-0.104; benchmarks/RESULTS.md, the bench headline)."""
    unlabeled_ratio: float = 1.0
    """With mode online: unlabeled images per labeled image in each training batch."""
    online_epochs: int | None = None
    """With mode online: the run's epochs over the labeled images (one labeled and one unlabeled batch per step).
    None: as many optimizer steps as the offline rounds would take, every pool image pseudo-labeled (`round_epochs x
    rounds` epochs over the pool and the labeled images as those rounds repeat them), as the bench measures it."""
    strong_scale: float = 0.5
    """With mode online: the student's view of an unlabeled image is zoomed by a factor in 1 ± this (the teacher's
    boxes follow), as Ultralytics' `scale` varies the labeled images' sizes. 0.5 and `strong_translate` 0.1 beat the
    flip-and-colour view on each of the glyphs bench's 3 seeds (benchmarks/RESULTS.md)."""
    strong_translate: float = 0.1
    """With mode online: ... and shifted by up to ± this share of its width and height (Ultralytics' `translate`)."""
    online_rounds: bool = True
    """With mode online: the online run is trained as `rounds` rounds of one schedule (each goes on from the last one's
    student, teacher and optimizer); at each round's end the teacher labels the pool into round_k/pseudo/ and
    round_k/data.yaml merges it with the labels, and the next round measures its thresholds again. False: one
    online round of the same steps (before 6 Dec)."""
    online_val: bool = False
    """With mode online: validate the online run every epoch (its `best.pt` then the best epoch on val, the thresholds
    measured again each time; about twice the time at demo size). False: once, at its end, as the bench measured it;
    `best.pt` is the final teacher. Round 0 validates as `train_args` say (Ultralytics: every epoch)."""
    ema: str = "fitted"
    """The weight average every training validates and saves: fitted (spans a tenth of each run's steps,
    yolossl.train.ema) or ultralytics (Ultralytics' ModelEMA, which barely averages runs of a few hundred steps;
    with loss ultralytics only). Chosen by measurement on the glyphs bench (benchmarks/RESULTS.md)."""
    control: bool = True
    """After the rounds, train round 0 on for their wall time on the labels alone (Ultralytics' own schedule, as a
    user who trains longer does) and report the final model against it: the run's answer to whether the unlabeled
    images beat more training on the labels (yolossl.cycle.control)."""
    burn_in_epochs: int = 0
    """With mode online: epochs on the labels alone (the EMA teacher averaging all the same) before the first
    unlabeled batch. As many as the run's epochs: the same trainer and teacher without unlabeled images, a control."""

    def __post_init__(self) -> None:
        if isinstance(self.target_precision, _Default) and not isinstance(self.conf, _Default):
            self.target_precision = None  # a conf chosen alone is one threshold: the option the user set wins
        self.conf, self.target_precision = _chosen(self.conf), _chosen(self.target_precision)
        if self.uncertain is None:  # ignore regions (pseudo-aware loss, online teacher) replace the grey
            self.uncertain = "keep" if self.loss == "pseudo-aware" or self.mode == "online" else "mask"
        _check(self.rounds >= 0, f"rounds must be >= 0, got {self.rounds}")
        _check(0.0 < self.conf < 1.0, f"conf must be between 0 and 1, got {self.conf}")
        _check(
            self.fixmatch_mode in ("relabel", "drop"),
            f"fixmatch_mode must be relabel or drop, got {self.fixmatch_mode!r}",
        )
        _check(self.fixmatch_steps >= 1, f"fixmatch_steps must be >= 1, got {self.fixmatch_steps}")
        _check(0.0 < self.fixmatch_tau <= 1.0, f"fixmatch_tau must be in (0, 1], got {self.fixmatch_tau}")
        _check(
            self.unsure_targets in UNSURE_MODES,
            f"unsure_targets must be one of {', '.join(UNSURE_MODES)}, got {self.unsure_targets!r}",
        )
        _check(
            self.unsure_targets != "dense" or self.mode == "online",
            "unsure_targets dense needs mode online: the teacher's dense scores exist only while it trains",
        )
        _check(self.leakage in LEAKAGE_MODES, f"leakage must be one of {LEAKAGE_MODES}, got {self.leakage!r}")
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.round_epochs >= 1, f"round_epochs must be >= 1, got {self.round_epochs}")
        _check(self.imgsz >= 32, f"imgsz must be >= 32, got {self.imgsz}")
        _check(
            self.batch >= 1,
            f"batch must be >= 1, got {self.batch}"
            + (
                ": Ultralytics' AutoBatch (-1) is not supported, labeling and the online teacher need a fixed batch"
                if self.batch < 0
                else ""
            ),
        )
        _check(self.workers >= 0, f"workers must be >= 0, got {self.workers}")
        _check(self.patience >= 1, f"patience must be >= 1, got {self.patience}")
        _check(
            self.round_schedule in ROUND_SCHEDULES,
            f"round_schedule must be one of {', '.join(ROUND_SCHEDULES)}, got {self.round_schedule!r}",
        )
        _check(0.0 < self.round_lr_scale <= 10.0, f"round_lr_scale must be in (0, 10], got {self.round_lr_scale}")
        _check(self.saturate_epochs >= 0, f"saturate_epochs must be >= 0, got {self.saturate_epochs}")
        _check(self.saturate_window >= 1, f"saturate_window must be >= 1, got {self.saturate_window}")
        _check(self.saturate_min_gain >= 0, f"saturate_min_gain must be >= 0, got {self.saturate_min_gain}")
        _check(self.saturate_every >= 1, f"saturate_every must be >= 1, got {self.saturate_every}")
        _check(
            not self.saturate_epochs or self.saturate_window <= self.saturate_epochs,
            f"saturate_window ({self.saturate_window}) must be <= saturate_epochs ({self.saturate_epochs}): a longer "
            "window can never be decided",
        )
        _check(
            not self.saturate_epochs or "," not in str(self.device or ""),
            "saturate_epochs runs on one device (its watch lives in this process): train round 0 on one GPU",
        )
        _check(self.labeled_repeat is None or self.labeled_repeat >= 1, "labeled_repeat must be >= 1 (or None: auto)")
        reserved = sorted(set(self.train_args) & _OWNED_TRAIN_ARGS)
        _check(not reserved, f"train_args cannot set {reserved}: yolossl sets them for every round")
        self.label_settings()  # the labeling options are checked where labeling defines them,
        self.train_settings("cpu")  # the training ones where training does,
        self.loss_rules()  # and the loss's where the loss does
        _check(self.mode in MODES, f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        _check(self.unlabeled_ratio > 0, f"unlabeled_ratio must be > 0, got {self.unlabeled_ratio}")
        _check(self.burn_in_epochs >= 0, f"burn_in_epochs must be >= 0, got {self.burn_in_epochs}")
        _check(
            self.online_epochs is None or self.online_epochs >= 1,
            f"online_epochs must be >= 1, got {self.online_epochs}",
        )
        _check(0.0 <= self.strong_scale < 1.0, f"strong_scale must be in [0, 1), got {self.strong_scale}")
        _check(
            0.0 <= self.strong_translate <= 0.5, f"strong_translate must be in [0, 0.5], got {self.strong_translate}"
        )
        _check(
            self.mode == "offline" or self.ema == "fitted",
            "ema ultralytics needs mode offline (--mode offline): the online teacher is the trainer's EMA, fitted to "
            "the run",
        )
        _check(
            self.mode == "offline" or not self.from_scratch,
            "from_scratch needs mode offline (--mode offline): mode online, the default, fine-tunes round 0's model "
            "with its own teacher",
        )

    def label_settings(self, device: str = "cpu") -> LabelSettings:
        """The options that concern labeling; it runs on the first of several training devices."""
        return LabelSettings(
            conf=self.conf,
            target_precision=self.target_precision,
            uncertain=self.uncertain,
            uncertain_low=self.uncertain_low,
            imgsz=self.imgsz,
            batch=self.batch,
            device=device.split(",")[0],
            backend=self.backend,
            tta=self.tta,
            engine=self.engine,
            ray_address=self.ray_address,
        )

    def loss_rules(self, no_threshold_classes: tuple[int, ...] = ()) -> LossRules:
        """How the pseudo-aware loss treats a round's pseudo-labeled images."""
        return LossRules(self.lambda_u, self.pseudo_box_min_score, no_threshold_classes, self.unsure_targets)

    def train_settings(self, device: str, epochs: int | None = None) -> TrainSettings:
        """Ultralytics' training arguments for a round (round 0's `epochs` unless given)."""
        return TrainSettings(
            epochs=self.epochs if epochs is None else epochs,
            imgsz=self.imgsz,
            batch=self.batch,
            device=device,
            workers=self.workers,
            seed=self.seed,
            extra=self.train_args,
            loss=self.loss,
            ema=self.ema,
        )

    def saturation_rule(self) -> SaturationRule:
        return SaturationRule(self.saturate_every, self.saturate_window, self.saturate_min_gain)

    def round_settings(self, device: str, nc: int) -> TrainSettings:
        """Training arguments of a round after round 0: `round_epochs` under the round schedule."""
        extra = round_train_args(self.round_schedule, nc, self.round_lr_scale, self.train_args)
        return dataclasses.replace(self.train_settings(device, self.round_epochs), extra=extra)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Ultralytics arguments that the cycle itself decides for each round.
_OWNED_TRAIN_ARGS = frozenset({"data", "model", "project", "name", "exist_ok", "resume", "epochs", "imgsz", "batch"})


def _chosen(value: Any) -> Any:
    """A default as the plain value it stands for (once `__post_init__` has read which options were chosen)."""
    return float(value) if isinstance(value, _Default) else value


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise YolosslError(message)


RETIRED_OPTIONS = frozenset({"round0_cycles", "round0_min_gain"})
"""Options a saved run may still name, no longer used: round 0's learning-rate cycles (replaced by saturation)."""


def load_config_file(path: str | Path, saved_run: bool = False) -> dict[str, Any]:
    """Read a cycle YAML into a dict of known options (unknown keys are an error naming the file; a `saved_run`'s
    retired options are dropped)."""
    path = Path(path)
    values = load_yaml_file(path, "config file") or {}
    if not isinstance(values, dict):
        raise YolosslError(f"{path}: expected a mapping of option: value")
    if saved_run:
        values = {key: value for key, value in values.items() if key not in RETIRED_OPTIONS}
    unknown = sorted(set(values) - _FIELD_NAMES)
    if unknown:
        raise YolosslError(f"{path}: unknown option(s) {unknown}; known: {sorted(_FIELD_NAMES)}")
    return {key: _coerce(key, value, path) for key, value in values.items()}


def resolve_config(
    cli_values: dict[str, Any],
    config_file: str | Path | None = None,
) -> CycleConfig:
    """Merge defaults, a config file and command-line values (None = not given).

    Without `data` the cycle runs the demo, whose CPU-sized settings fill in the options not given
    (`given_options`) when the run starts (`yolossl.cycle.run_cycle`).
    """
    file_values = load_config_file(config_file) if config_file else {}
    given = {key: value for key, value in cli_values.items() if value is not None}
    merged: dict[str, Any] = dict(file_values)
    for key, value in given.items():
        if key == "train_args":
            merged["train_args"] = {**merged.get("train_args", {}), **value}
        else:
            merged[key] = value
    chosen = conf_alone_means_one_threshold({**file_values, **given})
    for key in ("target_precision", "uncertain"):
        if key in chosen:
            merged[key] = chosen[key]
    return CycleConfig(**merged)


def given_options(cli_values: dict[str, Any], config_file: str | Path | None = None) -> frozenset[str]:
    """The options the user chose, in the config file or on the command line (None = not given): the demo fills in
    its settings for the others only (`yolossl.demo.with_demo_settings`)."""
    file_values = load_config_file(config_file) if config_file else {}
    return frozenset(file_values) | {key for key, value in cli_values.items() if value is not None}


def conf_alone_means_one_threshold(options: dict[str, Any]) -> dict[str, Any]:
    """A `conf` chosen without a `target_precision` asks for one global threshold: turn the default off."""
    if "conf" in options and "target_precision" not in options:
        return {**options, "target_precision": None}
    return options


def pseudo_aware_means_ignore_regions(options: dict[str, Any]) -> dict[str, Any]:
    """The pseudo-aware loss without an `uncertain` mode: uncertain boxes become ignore regions, not grey pixels."""
    if options.get("loss") == "pseudo-aware" and "uncertain" not in options:
        return {**options, "uncertain": "keep"}
    return options


def save_config(config: CycleConfig, path: Path) -> None:
    # atomic: a run killed while extending its rounds must not be left with half a config
    write_text_atomic(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def parse_train_args(pairs: list[str]) -> dict[str, Any]:
    """`['mosaic=0.5', 'optimizer=SGD']` -> `{'mosaic': 0.5, 'optimizer': 'SGD'}` (values read as YAML)."""
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise YolosslError(f"--train-arg expects key=value, got {pair!r}")
        parsed[key.strip()] = load_yaml_text(value, f"--train-arg {key.strip()}") if value.strip() else None
    return parsed


_FIELDS = {f.name: f for f in dataclasses.fields(CycleConfig)}
CONFIG_FIELDS = frozenset(_FIELDS)
_FIELD_NAMES = CONFIG_FIELDS
_TYPE_HINTS = typing.get_type_hints(CycleConfig)


def _coerce(key: str, value: Any, path: Path) -> Any:
    """Check a config-file value against the field's type, converting only where lossless."""
    hint = _TYPE_HINTS[key]
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in allowed:
            return None
        raise YolosslError(f"{path}: '{key}' needs a value")
    base = typing.get_origin(allowed[0]) or allowed[0]
    if base is list:
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list):
            raise YolosslError(f"{path}: '{key}' must be a list, got {value!r}")
        return [str(v) for v in value]
    if base is dict:
        if not isinstance(value, dict):
            raise YolosslError(f"{path}: '{key}' must be a mapping, got {value!r}")
        return value
    if base is bool:
        if not isinstance(value, bool):
            raise YolosslError(f"{path}: '{key}' must be true or false, got {value!r}")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise YolosslError(f"{path}: '{key}' must be an integer, got {value!r}")
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise YolosslError(f"{path}: '{key}' must be a number, got {value!r}")
        return float(value)
    return str(value)
