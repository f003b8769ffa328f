"""The control every SSL claim needs: the same extra training, on the labeled images alone.

Reads a finished `yolossl cycle` run and, starting from its round-0 weights, fine-tunes on the
labeled data only, round by round (an online run's rounds, one schedule, as one run), with as many optimizer steps
as the cycle's round took
(epochs scaled by the round's images per epoch, repeated labeled images
counted each time, over the labeled images; an online run's epochs, one labeled batch per step), on the
cycle's round schedule and EMA. Prints both side
by side: the part of the cycle's gain that the control also gets came from training longer, not from the pseudo-labels.

    python benchmarks/labeled_only_control.py runs/cycle/exp
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from dataclasses import replace
from pathlib import Path

from yolossl.config import CycleConfig
from yolossl.cycle import RoundResult
from yolossl.cycle.state import read_run_config
from yolossl.runtime import resolve_device, set_up_process
from yolossl.train import train_detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished yolossl cycle run folder")
    args = parser.parse_args()
    set_up_process()

    import logging

    import ultralytics  # noqa: F401  (its logger is set up on import; quiet it after)
    import yaml

    logging.getLogger("ultralytics").setLevel(logging.WARNING)

    config = read_run_config(args.run)  # as the run resumes: its mode, EMA, length and validation as it started
    if "round_schedule" not in yaml.safe_load((args.run / "config.yaml").read_text()):
        config = replace(config, round_schedule="fresh")  # runs from before round schedules trained each afresh
    rows = list(csv.DictReader((args.run / "summary.csv").open()))
    labeled_yaml = args.run / "round_0" / "data.yaml"
    names = yaml.safe_load(labeled_yaml.read_text())["names"]
    # The cycle's round schedule, with Ultralytics' own loss: every label here is human.
    settings = replace(config.round_settings(resolve_device(config.device), len(names)), loss="ultralytics")
    if config.mode == "online":  # validated as the online run was: every epoch, or once at its end
        settings = replace(settings, extra={**settings.extra, "val": config.online_val})
    weights = args.run / "round_0" / "train" / "weights" / "best.pt"
    control = [float(rows[0]["map50_95"])]
    trained = [
        RoundResult.from_dict(json.loads((args.run / f"round_{row['round']}" / "metrics.json").read_text()))
        for row in rows[1:]
    ]
    if config.mode == "online" and trained:  # one schedule, however many rounds it was cut in: one run of its steps
        trained = [replace(trained[-1], epochs=sum(r.epochs for r in trained))]
        rows = [rows[0], rows[-1]]
    for row, done in zip(rows[1:], trained, strict=True):
        index = int(row["round"])
        epochs = _control_epochs(config, done)
        out = args.run / "control" / f"round_{index}"
        result = train_detector(str(weights), labeled_yaml, out, replace(settings, epochs=epochs))
        weights = result.weights
        control.append(result.metrics.map50_95)
        print(f"control round {index}: {epochs} epochs -> mAP50-95 {result.metrics.map50_95:.4f}", flush=True)

    print(f"\n{'round':>5} {'cycle mAP50-95':>15} {'labeled-only mAP50-95':>22}")
    for row, value in zip(rows, control, strict=True):
        print(f"{row['round']:>5} {float(row['map50_95']):>15.4f} {value:>22.4f}")
    gain, control_gain = float(rows[-1]["map50_95"]) - control[0], control[-1] - control[0]
    print(f"\ncycle gain over round 0: {gain:+.4f}; labeled-only gain with the same steps: {control_gain:+.4f}")


def _control_epochs(config: CycleConfig, trained: RoundResult) -> int:
    """Epochs on the labeled images alone with the round's optimizer steps: an offline round's images seen over
    the labeled images; an online run's epochs, each step one labeled batch (and an unlabeled one)."""
    if config.mode == "online":  # its epochs are over the labeled split, each image `labeled_repeat` times
        return trained.epochs * (config.labeled_repeat or 1)
    return math.ceil(config.round_epochs * trained.train_images / trained.labeled_images)


if __name__ == "__main__":
    main()
