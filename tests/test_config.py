from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from yolossl.config import CycleConfig, load_config_file, parse_train_args, resolve_config, save_config
from yolossl.errors import YolosslError
from yolossl.train.targets import LossRules


def test_command_line_beats_file_beats_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "cycle.yaml"
    cfg.write_text(yaml.safe_dump({"rounds": 5, "conf": 0.6, "unlabeled": "cams/a", "train_args": {"mosaic": 0.5}}))
    config = resolve_config({"conf": 0.7, "rounds": None, "epochs": None, "train_args": {"lr0": 0.001}}, cfg)
    assert config.conf == 0.7  # command line
    assert config.rounds == 5  # file over default
    assert config.epochs == CycleConfig().epochs  # None means "not given"
    assert config.unlabeled == ["cams/a"]  # a single folder becomes a list
    assert config.train_args == {"mosaic": 0.5, "lr0": 0.001}  # file's extra arguments kept, CLI's added


def test_the_demo_settings_replace_only_options_left_at_their_defaults() -> None:
    from yolossl.demo import DEMO_CYCLE_DEFAULTS, with_demo_settings

    demo = with_demo_settings(CycleConfig())  # what run_cycle(CycleConfig()) trains the demo with
    assert {k: getattr(demo, k) for k in DEMO_CYCLE_DEFAULTS} == DEMO_CYCLE_DEFAULTS
    mine = with_demo_settings(CycleConfig(imgsz=96, train_args={"mosaic": 0.5}))
    assert mine.imgsz == 96 and mine.epochs == DEMO_CYCLE_DEFAULTS["epochs"]
    assert mine.train_args == {**DEMO_CYCLE_DEFAULTS["train_args"], "mosaic": 0.5}
    # Told what was given (the CLI knows), a value equal to the default is the user's too.
    told = with_demo_settings(CycleConfig(imgsz=640, epochs=100), given={"imgsz", "epochs"})
    assert (told.imgsz, told.epochs, told.batch) == (640, 100, DEMO_CYCLE_DEFAULTS["batch"])
    assert told.round_epochs == DEMO_CYCLE_DEFAULTS["round_epochs"]


def test_given_options_are_those_of_the_file_and_the_command_line(tmp_path) -> None:
    from yolossl.config import given_options

    cfg = tmp_path / "cycle.yaml"
    cfg.write_text(yaml.safe_dump({"round_epochs": 10}))
    assert given_options({"imgsz": 640, "epochs": None, "train_args": None}, cfg) == {"imgsz", "round_epochs"}
    assert given_options({"imgsz": None}) == frozenset()


def test_the_config_hands_out_label_and_train_settings() -> None:
    config = CycleConfig(conf=0.3, uncertain="keep", imgsz=96, batch=4, epochs=7, train_args={"mosaic": 0.5})
    label = config.label_settings("0,1")
    assert (label.conf, label.uncertain, label.imgsz, label.batch, label.device) == (0.3, "keep", 96, 4, "0")
    train = config.train_settings("0,1")
    assert (train.epochs, train.device, train.extra) == (7, "0,1", {"mosaic": 0.5})
    assert config.train_settings("cpu", epochs=2).epochs == 2


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"target_precision": 1.5}, r"--target-precision must be in \(0, 1\]"),
        ({"uncertain": "blur"}, "--uncertain must be one of"),
        ({"backend": "tflite"}, "--backend must be one of"),
        ({"engine": "spark"}, "--engine must be local or ray"),
    ],
)
def test_labeling_options_are_checked_where_labeling_defines_them(values, message) -> None:
    from yolossl.label import LabelSettings

    for make in (lambda: CycleConfig(**values), lambda: LabelSettings(**values)):
        with pytest.raises(YolosslError, match=message):
            make()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("rounds: three\n", "'rounds' must be an integer"),
        ("conf: high\n", "'conf' must be a number"),
        ("from_scratch: 1\n", "must be true or false"),
        ("epoch: 3\n", r"unknown option\(s\) \['epoch'\]"),
        ("- a\n- b\n", "expected a mapping"),
        ("rounds: [\n", "not valid YAML"),
    ],
)
def test_bad_config_file_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text(content)
    with pytest.raises(YolosslError, match=message) as info:
        load_config_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"conf": 1.5}, "conf must be between 0 and 1"),
        ({"rounds": -1}, "rounds must be >= 0"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"fixmatch_tau": 0.0}, r"fixmatch_tau must be in \(0, 1\]"),
        ({"train_args": {"imgsz": 320}}, r"train_args cannot set \['imgsz'\]"),
        ({"round_schedule": "cosine"}, "round_schedule must be one of continue, fresh"),
        ({"round_lr_scale": 0.0}, r"round_lr_scale must be in \(0, 10\]"),
        ({"saturate_epochs": -1}, "saturate_epochs must be >= 0"),
        ({"saturate_window": 0}, "saturate_window must be >= 1"),
        ({"ema": "swa"}, "ema must be one of fitted, ultralytics"),
        ({"ema": "ultralytics", "loss": "pseudo-aware"}, "ema ultralytics goes with loss ultralytics"),
        ({"ema": "ultralytics"}, r"ema ultralytics needs mode offline \(--mode offline\)"),  # online by default
        ({"from_scratch": True}, r"from_scratch needs mode offline \(--mode offline\)"),  # online by default
    ],
)
def test_invalid_values_are_rejected(values: dict, message: str) -> None:
    with pytest.raises(YolosslError, match=message):
        CycleConfig(**values)


def test_parse_train_args_reads_values_as_yaml() -> None:
    assert parse_train_args(["mosaic=0.5", "optimizer=SGD", "cos_lr=true", "freeze=[0, 1]"]) == {
        "mosaic": 0.5,
        "optimizer": "SGD",
        "cos_lr": True,
        "freeze": [0, 1],
    }
    with pytest.raises(YolosslError, match="key=value"):
        parse_train_args(["mosaic"])


def test_saved_config_round_trips(tmp_path: Path) -> None:
    config = CycleConfig(data="d.yaml", unlabeled=["a", "b"], rounds=2, device="0,1", train_args={"nbs": 16})
    save_config(config, tmp_path / "config.yaml")
    assert resolve_config({}, tmp_path / "config.yaml") == config


def test_an_explicit_conf_turns_the_default_target_precision_off(tmp_path: Path) -> None:
    assert resolve_config({}).target_precision == CycleConfig().target_precision == 0.8
    assert resolve_config({"conf": 0.5}).target_precision is None
    assert resolve_config({"conf": 0.5, "target_precision": 0.9}).target_precision == 0.9
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("conf: 0.4\n")
    assert resolve_config({}, cfg).target_precision is None


def test_the_python_api_follows_the_same_conf_rule_as_the_command_line() -> None:
    """`CycleConfig(conf=0.005)` thresholds at 0.005 (not at the 0.8 target precision it used to keep); with both
    set, the target precision picks per class; the saved config reads back to the same choice."""
    from yolossl.label.pseudo import choose_thresholds

    alone = CycleConfig(conf=0.005)
    assert alone.target_precision is None
    thresholds = choose_thresholds(None, [], alone.label_settings(), n_classes=2)  # type: ignore[arg-type]
    assert thresholds.kept == {0: 0.005, 1: 0.005} and thresholds.rule == "conf >= 0.005"
    assert CycleConfig(conf=0.25).target_precision is None  # the default's value, chosen: still one threshold
    assert CycleConfig(conf=0.1, target_precision=0.9).target_precision == 0.9
    assert CycleConfig().target_precision == 0.8
    for config in (alone, CycleConfig(), CycleConfig(conf=0.1, target_precision=0.9)):
        assert CycleConfig(**config.to_dict()) == config
        assert type(config.conf) is float  # a plain number in config.yaml


def test_the_pseudo_aware_loss_turns_uncertain_boxes_into_ignore_regions_unless_told(tmp_path: Path) -> None:
    # online (the default): the rounds' pool labeling is for review, in real pixels; offline it trains, grey-masked
    assert (resolve_config({}).loss, resolve_config({}).uncertain) == ("ultralytics", "keep")
    assert resolve_config({"mode": "offline"}).uncertain == "mask"
    assert resolve_config({"uncertain": "mask"}).uncertain == "mask"  # asked for
    assert resolve_config({"loss": "pseudo-aware"}).uncertain == "keep"
    assert resolve_config({"loss": "pseudo-aware", "uncertain": "mask"}).uncertain == "mask"  # grey, for comparison
    assert CycleConfig(data="d.yaml", loss="pseudo-aware").uncertain == "keep"  # the Python API as the CLI
    assert CycleConfig(data="d.yaml", mode="offline").uncertain == "mask"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("loss: pseudo-aware\nlambda_u: 0.5\npseudo_box_min_score: 0.9\n")
    config = resolve_config({}, cfg)
    assert (config.uncertain, config.train_settings("cpu").loss) == ("keep", "pseudo-aware")
    assert config.loss_rules((2,)) == LossRules(lambda_u=0.5, box_min_score=0.9, no_threshold_classes=(2,))
    assert resolve_config({}).loss_rules().box_min_score == 0.5  # measured better than never in mode online
    cfg.write_text("pseudo_box_min_score: null\n")  # never: box regression from human labels alone
    assert resolve_config({}, cfg).loss_rules().box_min_score is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"loss": "soft"}, r"^loss must be one of ultralytics, pseudo-aware, got 'soft'$"),
        ({"lambda_u": -1.0}, r"^lambda_u must be a number >= 0, got -1.0$"),
        ({"pseudo_box_min_score": 1.5}, r"^pseudo_box_min_score must be in \[0, 1\] .*got 1.5$"),
    ],
)
def test_loss_options_are_checked_where_the_loss_defines_them(values: dict, message: str) -> None:
    with pytest.raises(YolosslError, match=message):
        CycleConfig(**values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"unsure_targets": "blur"}, "unsure_targets must be one of soft, ignore, dense, got 'blur'"),
        ({"unsure_targets": "dense", "mode": "offline"}, "unsure_targets dense needs mode online"),
    ],
)
def test_unsure_targets_are_checked(values, message) -> None:
    with pytest.raises(YolosslError, match=message):
        CycleConfig(**values)
    assert CycleConfig(unsure_targets="soft", mode="offline").loss_rules().unsure == "soft"
