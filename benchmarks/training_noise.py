"""How far one training run's val mAP50-95 moves with its random seed alone: the noise under every comparison.

Reruns finished Ultralytics training runs (their `args.yaml`: same weights, data, epochs and every
option) with other seeds, on the trainer yolossl uses for them today (`--trainer ultralytics` for a
run trained on Ultralytics' own EMA), and prints each run's last validation per seed with mean ±
std. Two arms of a bench that differ by less than this spread differ by chance: on the glyphs bench
the labels alone from one converged model ranged over 0.683-0.707 with the seed.

    python benchmarks/training_noise.py runs/bench/NAME/seed_0/supervised/run --seeds 1 2
    python benchmarks/training_noise.py RUN_A RUN_B --seeds 1 2 --out runs/noise/glyphs-seed0
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import warnings
from pathlib import Path
from typing import Any

TRAINERS = ("fitted", "online", "pseudo-aware", "ultralytics")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished Ultralytics training folders (with args.yaml)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2], help="the other seeds to train with")
    parser.add_argument("--out", type=Path, default=Path("runs/noise"), help="where the reruns go")
    parser.add_argument(
        "--trainer",
        choices=TRAINERS,
        help="the trainer to rerun with (default: from the data YAML, as yolossl chose it: online when it names "
        "online settings, pseudo-aware when it names pseudo targets, else the fitted-EMA trainer)",
    )
    args = parser.parse_args()
    from yolossl.runtime import set_up_process

    set_up_process()
    import logging

    import ultralytics  # noqa: F401  (its logger is set up on import; quiet it after)

    logging.getLogger("ultralytics").setLevel(logging.WARNING)
    record = args.out / "noise.json"
    done: dict[str, dict[str, float]] = json.loads(record.read_text()) if record.is_file() else {}
    for run in args.runs:
        values = done.setdefault(str(run), {})
        values.setdefault(str(_args(run)["seed"]), _final_map(run))
        for seed in args.seeds:
            if str(seed) not in values:  # a rerun that finished is not trained again
                values[str(seed)] = _rerun(run, seed, args.out, args.trainer)
                args.out.mkdir(parents=True, exist_ok=True)
                record.write_text(json.dumps(done, indent=1))
        print(_row(run, values), flush=True)


def _args(run: Path) -> dict[str, Any]:
    import yaml

    path = run / "args.yaml"
    if not path.is_file():
        raise SystemExit(f"{path}: not found; pass an Ultralytics training folder")
    return yaml.safe_load(path.read_text())


def _final_map(run: Path) -> float:
    """The run's last validation, from its results.csv: the same measure for the original and every rerun (with
    `val=False`, as the bench trains, the final model's; with per-epoch validation, the last epoch's)."""
    with (run / "results.csv").open() as f:
        rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(f)]
    return round(float(rows[-1]["metrics/mAP50-95(B)"]), 4)


def _rerun(run: Path, seed: int, out: Path, trainer: str | None) -> float:
    from ultralytics import YOLO

    args = _args(run)
    weights = args.pop("model")
    for derived in ("save_dir", "mode", "task", "cfg", "tracker", "resume"):
        args.pop(derived, None)
    name = f"{'_'.join(run.resolve().parts[-4:])}-seed{seed}"  # runs of a bench share their last folders' names
    args.update(seed=seed, project=str(out.resolve()), name=name, exist_ok=True)
    with warnings.catch_warnings():
        # With Ray installed, Ultralytics' Ray Tune callback warns every epoch outside a Tune session.
        warnings.filterwarnings("ignore", message=".*get_trial_id.*")
        YOLO(weights).train(**args, **_trainer(args["data"], trainer))
    return _final_map(out.resolve() / name)


def _trainer(data_yaml: str, choice: str | None) -> dict[str, Any]:
    import yaml

    from yolossl.train.online_settings import ONLINE_KEY
    from yolossl.train.targets import DATA_KEY

    if choice is None:
        data = yaml.safe_load(Path(data_yaml).read_text())
        choice = "online" if ONLINE_KEY in data else "pseudo-aware" if DATA_KEY in data else "fitted"
    if choice == "online":
        from yolossl.train.online import OnlineTeacherTrainer

        return {"trainer": OnlineTeacherTrainer}
    if choice == "pseudo-aware":
        from yolossl.train.trainer import PseudoAwareTrainer

        return {"trainer": PseudoAwareTrainer}
    if choice == "fitted":
        from yolossl.train.ema import FittedEmaTrainer

        return {"trainer": FittedEmaTrainer}
    return {}


def _row(run: Path, values: dict[str, float]) -> str:
    maps = list(values.values())
    spread = f"{statistics.mean(maps):.3f} ± {statistics.stdev(maps):.3f}" if len(maps) > 1 else f"{maps[0]:.3f}"
    per_seed = ", ".join(f"seed {s}: {v:.3f}" for s, v in values.items())
    return f"{run}: {per_seed}; mean ± std {spread} (range {max(maps) - min(maps):.3f})"


if __name__ == "__main__":
    main()
