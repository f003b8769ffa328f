from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY
from yolossl.bench import ARMS, ArmResult, BenchConfig, BenchResult, format_table, online_config, run_bench
from yolossl.config import CycleConfig
from yolossl.demo import write_demo_dataset
from yolossl.errors import YolosslError


def _arm(arm: str, seed: int, value: float) -> ArmResult:
    return ArmResult(arm, seed, map50=value + 0.2, map50_95=value, best_round=1, rounds_map50_95=[0.1, value])


def test_gap_recovered_against_supervised_and_oracle() -> None:
    arms = [_arm("supervised", 0, 0.30), _arm("supervised", 1, 0.32), _arm("oracle", 0, 0.50), _arm("oracle", 1, 0.52)]
    arms += [_arm("yolossl", 0, 0.40), _arm("yolossl", 1, 0.43), _arm("docs", 0, 0.29), _arm("docs", 1, 0.33)]
    summary = BenchResult(Path("."), arms, {}).summary()
    assert summary["yolossl"]["map50_95_mean"] == pytest.approx(0.415)
    assert summary["yolossl"]["map50_95_std"] == pytest.approx(0.015)
    assert summary["yolossl"]["gap_recovered"] == pytest.approx((0.415 - 0.31) / (0.51 - 0.31))
    assert summary["yolossl"]["gap_recovered_per_seed"] == pytest.approx([0.5, 0.55])
    assert summary["docs"]["gap_recovered_per_seed"] == pytest.approx([-0.05, 0.05])
    assert summary["supervised"]["gap_recovered"] == 0.0 and summary["oracle"]["gap_recovered"] == 1.0
    difference = summary["yolossl"]["differences"]["supervised"]
    assert difference["mean"] == pytest.approx(0.105) and difference["per_run"] == pytest.approx([0.10, 0.11])
    assert difference["low"] is None and difference["high"] is None  # two split seeds: no interval
    table = format_table(summary)
    assert "| yolossl | 2 | 0.615 ± 0.015 | 0.415 ± 0.015 | +0.105 | 53% / - |" in table


def test_replicates_pair_run_by_run_and_the_saturated_arm_pairs_with_each() -> None:
    """Two split seeds x two training seeds; round 0 (saturated) once per split seed, paired with both replicates;
    the gap against the better labeled-only arm of each run, step-matched and wall-matched."""
    values = {
        "saturated": {(0, 0): 0.30, (1, 0): 0.40},
        "supervised": {(0, 0): 0.32, (0, 1): 0.28, (1, 0): 0.38, (1, 1): 0.39},
        "supervised-wall": {(0, 0): 0.33, (0, 1): 0.34, (1, 0): 0.41, (1, 1): 0.42},
        "online": {(0, 0): 0.40, (0, 1): 0.38, (1, 0): 0.45, (1, 1): 0.47},
        "oracle": {(0, 0): 0.60, (0, 1): 0.60, (1, 0): 0.70, (1, 1): 0.70},
    }
    arms = [
        ArmResult(arm, seed, v + 0.1, v, 1, [v], train_seed=t)
        for arm, runs in values.items()
        for (seed, t), v in runs.items()
    ]
    summary = BenchResult(Path("."), arms, {}).summary()
    online = summary["online"]
    assert online["runs"] == 4 and online["map50_95_mean"] == pytest.approx(0.425)
    assert online["differences"]["supervised"]["per_run"] == pytest.approx([0.08, 0.10, 0.07, 0.08])
    assert online["differences"]["saturated"]["per_run"] == pytest.approx([0.10, 0.08, 0.05, 0.07])
    # the saturated arm counts once per split seed however many replicates pair with it
    assert online["differences"]["saturated"]["per_seed"] == pytest.approx({0: 0.09, 1: 0.06})
    assert online["differences"]["supervised-wall"]["pairs"] == 4
    assert (
        online["differences"]["supervised"]["split_seeds"] == 2 and online["differences"]["supervised"]["low"] is None
    )
    # better of saturated and supervised per run: 0.32, 0.30, 0.40, 0.40
    assert online["gap_recovered_per_run"] == pytest.approx([0.08 / 0.28, 0.08 / 0.30, 0.05 / 0.30, 0.07 / 0.30])
    assert online["gap_recovered"] == pytest.approx((0.425 - 0.355) / (0.65 - 0.355))
    assert online["gap_recovered_per_seed"] == pytest.approx([(0.39 - 0.31) / (0.60 - 0.31), (0.46 - 0.40) / 0.30])
    # wall-matched: better of saturated and supervised-wall: 0.33, 0.34, 0.41, 0.42
    assert online["gap_recovered_vs_wall_per_run"] == pytest.approx(
        [0.07 / 0.27, 0.04 / 0.26, 0.04 / 0.29, 0.05 / 0.28]
    )
    from yolossl.bench.report import per_seed_table

    table = per_seed_table(summary)
    assert "| split seed | saturated | supervised | supervised-wall | online | oracle |" in table
    assert "| 0 | 0.300 | 0.320, 0.280 | 0.330, 0.340 | 0.400, 0.380 | 0.600, 0.600 | 28% / " in table


def test_the_interval_is_over_split_seeds_on_a_known_sample() -> None:
    """Per split seed 0.01, 0.03, 0.02 (n = 3): mean 0.02, sd 0.01, t(0.95, 2) = 2.920: 0.02 ± 0.01686."""
    from yolossl.bench.statistics import paired_difference, seed_interval

    low, high = seed_interval([0.01, 0.03, 0.02])
    assert low == pytest.approx(0.02 - 0.016859, abs=1e-5) and high == pytest.approx(0.02 + 0.016859, abs=1e-5)
    assert seed_interval([0.02, 0.02, 0.02]) == (0.02, 0.02)
    assert seed_interval([0.01, 0.03]) is None  # two split seeds: no interval, however many replicates
    # Replicates are averaged within their split seed first: six runs are three samples, not six.
    arm = {(3, 0): 0.41, (3, 1): 0.41, (4, 0): 0.43, (4, 1): 0.43, (5, 0): 0.42, (5, 1): 0.42}
    base = {(3, 0): 0.40, (3, 1): 0.40, (4, 0): 0.40, (4, 1): 0.40, (5, 0): 0.40, (5, 1): 0.40}
    difference = paired_difference(arm, base)
    assert difference.pairs == 6 and difference.per_seed == pytest.approx({3: 0.01, 4: 0.03, 5: 0.02})
    assert (difference.low, difference.high) == pytest.approx((low, high))
    uneven = paired_difference({**arm, (3, 2): 0.41, (3, 3): 0.41}, {**base, (3, 2): 0.40, (3, 3): 0.40})
    assert uneven.mean == pytest.approx(0.02)  # four replicates of seed 3 weigh as much as two of seed 4


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"arms": ("supervised", "magic")}, "unknown arm"),
        ({"label_fraction": 1.5}, "--label-fraction must be in"),
        ({"unlabeled": ["x"]}, "needs --unlabeled-truth"),
        ({"seeds": 0}, "must be >= 1"),
        ({"train_seeds": 0}, "must be >= 1"),
        ({"arms": ("supervised-wall", "online")}, "needs the supervised and online arms"),
        ({"training": {"ema": "median"}}, "ema must be one of fitted, ultralytics"),
        ({"cycle": {"loss": "pseudo-aware"}, "training": {"ema": "ultralytics"}}, "ema ultralytics goes with loss"),
    ],
)
def test_bad_bench_requests(changes: dict, message: str) -> None:
    with pytest.raises(YolosslError, match=message):
        BenchConfig(**{"data": "d.yaml", **changes})


def test_the_online_arm_runs_the_yolossl_arms_steps_or_a_share_of_them(tiny_dataset: Path) -> None:
    yolossl = CycleConfig(data=str(tiny_dataset / "data.yaml"), rounds=3, round_epochs=2)
    # 3 rounds of 300 images seen, 100 labeled images: 9 epochs over the labels
    assert online_config(yolossl, [300, 300, 300], 100).online_epochs == 9
    online = online_config(yolossl, [300, 300, 300], 100, share=0.35)  # the offline rounds' wall time
    assert online.online_epochs == 4 and online.mode == "online" and online.rounds == 3
    assert not online.online_val  # validated once per round, as every bench arm validates once per training
    assert online_config(yolossl, None, 100).online_epochs is None  # no yolossl arm: the online cycle's own length
    with pytest.raises(YolosslError, match="--online-steps must be > 0"):
        BenchConfig(data="d.yaml", online_steps=0)
    with pytest.raises(YolosslError, match="the bench runs the yolossl arm offline and the online arm online"):
        BenchConfig(data="d.yaml", cycle={"mode": "online"})
    BenchConfig(data="d.yaml", training={"ema": "ultralytics"})  # the offline arms may use it; online fits its own
    with pytest.raises(YolosslError, match=r"the online arm cannot take these options \(from_scratch .*out of --arms$"):
        BenchConfig(data="d.yaml", cycle={"from_scratch": True})  # said before the first seed trains, not after
    assert BenchConfig(data="d.yaml", cycle={"from_scratch": True}, arms=("yolossl",)).cycle == {"from_scratch": True}
    assert BenchConfig(data="d.yaml", cycle={"fixmatch": True}).cycle == {"fixmatch": True}  # online takes it now
    dense = BenchConfig(data="d.yaml", cycle={"unsure_targets": "dense", "lambda_u": 2})  # the online arm's alone
    assert dense.offline_options() == {"lambda_u": 2} and dense.online_only_options() == {"unsure_targets": "dense"}
    assert online_config(yolossl, None, 100, online_only=dense.online_only_options()).unsure_targets == "dense"
    soft = BenchConfig(data="d.yaml", cycle={"unsure_targets": "soft"})  # the offline pseudo-aware loss has it too
    assert soft.offline_options() == {"unsure_targets": "soft"} and not soft.online_only_options()


def _tiny_training() -> dict:
    return {"epochs": 1, "round_epochs": 1, "imgsz": 64, "batch": 8, "device": "cpu", "workers": 0}


def _validations(run: Path) -> dict[str, bool]:
    """Every training's `val` argument under a bench run: False everywhere means each validated once, at its end."""
    return {str(p.parent.relative_to(run)): yaml.safe_load(p.read_text())["val"] for p in run.rglob("args.yaml")}


def test_a_tiny_bench_end_to_end(tiny_dataset: Path, tmp_path: Path) -> None:
    config = BenchConfig(
        data=str(tiny_dataset / "data.yaml"),
        label_fraction=0.5,
        rounds=1,
        seeds=1,
        arms=ARMS,
        training=_tiny_training(),
        cycle={"conf": 0.002, "uncertain_low": 0.001},
        project=str(tmp_path / "bench"),
        name="tiny",
    )
    result = run_bench(config)
    run = tmp_path / "bench" / "tiny"
    payload = json.loads((run / "bench.json").read_text())
    assert set(payload["arms"]) == set(ARMS)
    for values in payload["arms"].values():
        assert len(values["per_seed_map50_95"]) == 1
        assert "gap_recovered" in values and "gap_recovered_vs_wall" in values
    # bench.json says which baseline each gap uses, and how label-bound the bench is
    assert set(payload["baselines"]) == {"saturated", "supervised", "supervised-wall"}
    arms = payload["arms"]
    assert payload["label_bound_gap"] == pytest.approx(
        arms["oracle"]["map50_95_mean"] - arms["saturated"]["map50_95_mean"]
    )
    # no test: in the data YAML: half of val is held out as the test split, and every figure is its
    assert payload["test_split"] == {"source": "held out of val", "images": 3, "val_images": 3, "share": 0.5, "seed": 0}
    split = run / "seed_0" / "split"
    labeled_yaml = yaml.safe_load((split / "labeled.yaml").read_text())
    val_images, test_images = (set(Path(labeled_yaml[k]).read_text().split()) for k in ("val", "test"))
    assert len(val_images) == len(test_images) == 3 and not val_images & test_images
    round0 = json.loads((run / "seed_0" / "round0" / "round_0" / "metrics.json").read_text())
    assert arms["saturated"]["per_seed_map50_95"] == [round0["test"]["map50_95"]]
    assert result.arms[0].val_map50_95 == round0["metrics"]["map50_95"]
    assert arms["saturated"]["saturated_per_seed"] == [None]  # round 0 was not trained to saturation here
    bench_md = (run / "bench.md").read_text()
    assert bench_md.startswith("| arm | runs | test mAP50 |")
    assert "Δ vs saturated (NOT saturated on seed 0)" in bench_md and "did not saturate on split seed(s) 0" in bench_md
    assert "Test split: 3 images (held out of val)" in (run / "bench.md").read_text()
    oracle = next(r for r in result.arms if r.arm == "oracle")  # the yolossl arm's report shows its ceiling
    assert json.loads((run / "seed_0" / "yolossl" / "oracle.json").read_text())["map50_95"] == oracle.map50_95
    assert "Oracle (all labels)" in (run / "seed_0" / "yolossl" / "report.html").read_text()
    # every arm validates once, at the end of each training: no arm picks a best epoch
    validations = _validations(run)
    assert len(validations) >= 7 and not any(validations.values())

    # the split: half the labels kept, the rest hidden behind a flat folder of links
    assert len((split / "labeled.txt").read_text().splitlines()) == 4
    pool = sorted((split / "pool").iterdir())
    assert len(pool) == 4 and all(p.is_symlink() for p in pool)
    assert not (split / "labels").exists() and len(list((split / "truth").glob("*.txt"))) == 4

    # every arm starts from the same round 0, and the matched arms get the yolossl arm's steps (when it runs)
    yolossl = next(r for r in result.arms if r.arm == "yolossl")
    supervised = next(r for r in result.arms if r.arm == "supervised")
    assert yolossl.rounds_map50_95[0] == supervised.rounds_map50_95[0]
    state = json.loads((run / "seed_0" / "yolossl" / "state.json").read_text())
    round_1 = state["rounds"]["1"]["result"]
    images_seen = (round_1["labeled_images"] * round_1["labeled_repeat"] + round_1["pseudo_images"]) * 1
    args = yaml.safe_load((run / "seed_0" / "supervised" / "run" / "args.yaml").read_text())
    assert args["epochs"] == max(1, math.ceil(images_seen / 4))  # one run for all the yolossl arm's rounds
    oracle_args = yaml.safe_load((run / "seed_0" / "oracle" / "run" / "args.yaml").read_text())
    assert oracle_args["epochs"] == max(1, math.ceil(images_seen / 8))
    # ... on the yolossl arm's round schedule: no warm-up, one constant learning rate
    yolossl_args = yaml.safe_load((run / "seed_0" / "yolossl" / "round_1" / "train" / "args.yaml").read_text())
    for given in (args, oracle_args, yolossl_args):
        assert (given["warmup_epochs"], given["lrf"], given["optimizer"]) == (0.0, 1.0, "AdamW")
        assert given["lr0"] == yolossl_args["lr0"]
    # pseudo-label quality is scored against the hidden labels
    assert len(yolossl.pseudo_precision) == 1 and 0.0 <= yolossl.pseudo_precision[0] <= 1.0


def test_replicates_and_the_arms_matched_to_the_online_arm(tmp_path: Path) -> None:
    """Two training seeds: round 0 once, every other arm twice; the labels alone at the online arm's steps and at
    its wall time; the data YAML's own test split scores them."""
    root = tmp_path / "tiny"
    write_demo_dataset(root, replace(TINY, n_test=4))
    config = BenchConfig(
        data=str(root / "data.yaml"),
        label_fraction=0.5,
        rounds=1,
        seeds=1,
        train_seeds=2,
        arms=("saturated", "supervised", "supervised-wall", "online", "oracle"),
        training=_tiny_training(),
        cycle={"conf": 0.002, "uncertain_low": 0.001},
        project=str(tmp_path / "bench"),
        name="replicates",
    )
    result = run_bench(config)
    run = result.run_dir
    assert sorted((r.arm, r.train_seed) for r in result.arms) == sorted(
        [("saturated", 0)] + [(arm, t) for arm in ("supervised", "supervised-wall", "online", "oracle") for t in (0, 1)]
    )
    assert yaml.safe_load((run / "seed_0" / "train_seed_1" / "online" / "config.yaml").read_text())["seed"] == 1000
    assert not (run / "seed_0" / "train_seed_1" / "round0").exists()  # round 0: once per split seed
    payload = json.loads((run / "bench.json").read_text())
    assert payload["test_split"] == {"source": "data YAML", "images": 4, "val_images": 6}
    online = payload["arms"]["online"]
    assert online["runs"] == 2 and set(online["differences"]) == {"saturated", "supervised", "supervised-wall"}
    assert online["differences"]["supervised"]["pairs"] == 2 and online["differences"]["saturated"]["pairs"] == 2
    # step-matched: the online run's labeled images seen, as epochs over the labeled images
    state = json.loads((run / "seed_0" / "online" / "state.json").read_text())
    round_1 = state["rounds"]["1"]["result"]
    seen = round_1["labeled_images"] * round_1["labeled_repeat"] * round_1["epochs"]
    args = yaml.safe_load((run / "seed_0" / "supervised" / "run" / "args.yaml").read_text())
    assert args["epochs"] == math.ceil(seen / 4)
    wall = next(r for r in result.arms if r.arm == "supervised-wall" and r.train_seed == 0)
    assert (
        wall.epochs >= 1
        and wall.epochs
        == yaml.safe_load((run / "seed_0" / "supervised-wall" / "run" / "args.yaml").read_text())["epochs"]
    )
    assert not any(_validations(run).values())
    assert (run / "bench.png").stat().st_size > 10_000  # every run and the paired differences, drawn
    assert round_1["test"] is not None  # the cycle scored its rounds on the data YAML's test split


def test_ablations_reuse_round0(tiny_dataset: Path, tmp_path: Path) -> None:
    base = {
        "data": str(tiny_dataset / "data.yaml"),
        "label_fraction": 0.5,
        "rounds": 1,
        "seeds": 1,
        "training": {"epochs": 1, "round_epochs": 1, "imgsz": 64, "batch": 8, "device": "cpu", "workers": 0},
        "project": str(tmp_path / "bench"),
    }
    first = run_bench(BenchConfig(**base, arms=("yolossl",), name="first"))
    again = run_bench(
        BenchConfig(
            **base, arms=("yolossl",), name="ablation", cycle={"uncertain": "keep"}, round0_from=str(first.run_dir)
        )
    )
    assert again.arms[0].rounds_map50_95[0] == first.arms[0].rounds_map50_95[0]
    reused = tmp_path / "bench" / "ablation" / "seed_0" / "round0" / "round_0" / "train"
    assert not (reused / "results.csv").exists()  # validated, not trained again
    assert (reused / "weights" / "best.pt").read_bytes() == first.run_dir.joinpath(
        "seed_0", "round0", "weights", "best.pt"
    ).read_bytes()
    # with saturation in the training settings, the arms still start from round 0's weights, untrained
    saturating = {**base, "training": {**base["training"], "saturate_epochs": 2, "saturate_window": 2}}
    run_bench(BenchConfig(**saturating, arms=("yolossl",), name="saturating", round0_from=str(first.run_dir)))
    arm_round0 = tmp_path / "bench" / "saturating" / "seed_0" / "yolossl" / "round_0"
    assert (arm_round0 / "train" / "weights" / "best.pt").is_file() and not (arm_round0 / "saturate").exists()
    with pytest.raises(YolosslError, match="no round-0 model of seed 0"):
        run_bench(BenchConfig(**base, arms=("yolossl",), name="x", round0_from=str(tmp_path)))

    # an extra arm on an earlier run: the online teacher at that run's yolossl steps, without rerunning yolossl
    online = run_bench(BenchConfig(**base, arms=("online",), name="online", round0_from=str(first.run_dir)))
    seed_dir = tmp_path / "bench" / "online" / "seed_0"
    assert not (seed_dir / "yolossl").exists() and [r.arm for r in online.arms] == ["online"]
    state = json.loads((first.run_dir / "seed_0" / "yolossl" / "state.json").read_text())
    round_1 = state["rounds"]["1"]["result"]
    images_seen = (round_1["labeled_images"] * round_1["labeled_repeat"] + round_1["pseudo_images"]) * 1
    config = yaml.safe_load((seed_dir / "online" / "config.yaml").read_text())
    assert config["mode"] == "online" and config["online_epochs"] == max(1, math.ceil(images_seen / 4))
    assert (seed_dir / "online" / "round_1" / "pseudo" / "record.csv").is_file()  # the teacher labeled the pool
    # round 0 from one run (here the online run's adopted copy), the steps from another's yolossl arm
    run_bench(
        BenchConfig(
            **base, arms=("online",), name="mixed", round0_from=str(online.run_dir), budget_from=str(first.run_dir)
        )
    )
    mixed = tmp_path / "bench" / "mixed" / "seed_0"
    assert not (mixed / "yolossl").exists()
    assert yaml.safe_load((mixed / "online" / "config.yaml").read_text())["online_epochs"] == config["online_epochs"]


def test_the_hidden_truth_is_the_cleaned_labels(tiny_dataset: Path, tmp_path: Path) -> None:
    """The truth the arms are scored against is read strictly at the end: a bad user line must not reach it."""
    from yolossl.bench import hold_out_test, make_split
    from yolossl.data import load_data_yaml, read_yolo_labels

    for label in (tiny_dataset / "labeled" / "labels").glob("*.txt"):
        label.write_text(label.read_text() + "1 0.5 0.5 0.2\n")  # four columns
    spec = load_data_yaml(tiny_dataset / "data.yaml")
    test = hold_out_test(spec, tmp_path / "test")
    split = make_split(BenchConfig(data="d.yaml", label_fraction=0.5), spec, 0, tmp_path / "split", test)
    truth = sorted(split.truth.glob("*.txt"))
    assert len(truth) == 4
    for path in truth:
        rows = read_yolo_labels(path)
        assert len(rows) and (rows[:, 0] >= 0).all()


def test_the_cli_default_arms_are_the_bench_defaults() -> None:
    import inspect

    from yolossl.bench import DEFAULT_ARMS
    from yolossl.cli.bench import bench

    assert tuple(inspect.signature(bench).parameters["arms"].default.split(",")) == DEFAULT_ARMS


def test_split_seeds_side_by_side_give_the_same_figures(tiny_dataset: Path, tmp_path: Path) -> None:
    """--jobs 2: each split seed in its own worker process, the same runs as one after the other."""
    base = {
        "data": str(tiny_dataset / "data.yaml"),
        "label_fraction": 0.5,
        "seeds": 2,
        "arms": ("saturated",),
        "training": _tiny_training(),
        "project": str(tmp_path / "bench"),
    }
    serial = run_bench(BenchConfig(**base, name="serial"))
    parallel = run_bench(BenchConfig(**base, name="parallel", jobs=2))
    assert [(r.seed, r.map50_95, r.val_map50_95) for r in parallel.arms] == [
        (r.seed, r.map50_95, r.val_map50_95) for r in serial.arms
    ]
    payload = json.loads((parallel.run_dir / "bench.json").read_text())
    assert [run["seed"] for run in payload["arms"]["saturated"]["per_run"]] == [0, 1]
    with pytest.raises(YolosslError, match="--jobs must be >= 1"):
        BenchConfig(**base, jobs=0)
