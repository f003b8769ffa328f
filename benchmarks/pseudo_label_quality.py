"""Precision and recall of pseudo-labels at several confidence thresholds, against known truth.

Predicts once at a very low threshold, then scores the boxes kept at each threshold against the
true labels (IoU >= 0.5, same class), overall and per class. This is the measurement behind the
default `--conf`.

    python benchmarks/pseudo_label_quality.py --weights runs/cycle/exp/round_0/train/weights/best.pt \
        --pool datasets/demo/unlabeled --truth datasets/demo/unlabeled_truth --imgsz 128
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from yolossl.data import load_data_yaml, read_yolo_labels, scan_image_folders
from yolossl.label.engine import Detector
from yolossl.quality import label_quality
from yolossl.runtime import set_up_process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--pool", type=Path, required=True, help="folder of unlabeled images")
    parser.add_argument("--truth", type=Path, required=True, help="folder of their true YOLO labels, by file stem")
    parser.add_argument("--data", type=Path, default=Path("datasets/demo/data.yaml"), help="for the class names")
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85])
    args = parser.parse_args()
    set_up_process()

    names = load_data_yaml(args.data).names
    pool = scan_image_folders([args.pool])
    detector = Detector([args.weights], imgsz=args.imgsz, conf=min(args.thresholds))
    predictions, truth = {}, {}
    for frame in detector.run(pool.images, batch=32):
        if frame.detections is None:
            continue  # unreadable: not an image the cycle would label either
        d = frame.detections
        predictions[frame.item.id] = (d.classes, d.scores, d.xywhn(frame.shape))
        label = args.truth / f"{frame.item.path.stem}.txt"
        truth[frame.item.id] = read_yolo_labels(label) if label.is_file() else np.zeros((0, 5))

    print(f"{len(pool)} images, {sum(len(t) for t in truth.values())} true boxes; weights {args.weights}")
    header = f"{'conf':>5} {'boxes':>6} {'precision':>9} {'recall':>6} {'wrong cls':>9}  per-class recall"
    print(header + "\n" + "-" * len(header))
    for threshold in args.thresholds:
        q = label_quality(predictions, truth, threshold)
        per_class = []
        for cls, name in names.items():
            sub_pred = {k: _only(v, cls) for k, v in predictions.items()}
            sub_truth = {k: t[t[:, 0] == cls] for k, t in truth.items()}
            per_class.append(f"{name} {label_quality(sub_pred, sub_truth, threshold).recall:.2f}")
        print(
            f"{threshold:>5.2f} {q.predicted:>6} {q.precision:>9.3f} {q.recall:>6.3f} {q.wrong_class:>9}  "
            + ", ".join(per_class)
        )


def _only(prediction: tuple[np.ndarray, np.ndarray, np.ndarray], cls: int) -> tuple[np.ndarray, ...]:
    keep = prediction[0] == cls
    return tuple(a[keep] for a in prediction)


if __name__ == "__main__":
    main()
