"""Does the FixMatch head fix pseudo-label classes? Wrong-class boxes and recall, with and without it.

Takes a detector (e.g. a demo run's round 0), its candidate boxes on the demo pool, and the pool's
hidden true labels. Trains the head as a cycle round would (labeled crops from the labeled split,
unlabeled crops from the candidates), then scores the boxes kept at `--conf` three ways: the
detector alone, the head relabeling confident disagreements, the head dropping them.

    python benchmarks/fixmatch_pseudo_classes.py --weights runs/cycle/exp/round_0/train/weights/best.pt
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from yolossl.data import load_data_yaml, read_yolo_labels, scan_image_folders
from yolossl.fixmatch import FixMatchConfig, combine, extract_crops, fit_head, labeled_box_crops
from yolossl.label import Detector
from yolossl.quality import label_quality
from yolossl.runtime import set_up_process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("datasets/demo/data.yaml"))
    parser.add_argument("--pool", type=Path, default=Path("datasets/demo/unlabeled"))
    parser.add_argument("--truth", type=Path, default=Path("datasets/demo/unlabeled_truth"))
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--conf", type=float, default=0.25, help="kept threshold the boxes are scored at")
    parser.add_argument("--floor", type=float, default=0.1, help="candidates the head sees and learns from")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--tau", type=float, default=FixMatchConfig.tau, help="the head's pseudo-target threshold")
    parser.add_argument("--min-head-conf", type=float, default=0.8)
    parser.add_argument("--head-weight", type=float, default=0.5, help="how much the head's probability sets scores")
    args = parser.parse_args()
    set_up_process()

    spec = load_data_yaml(args.data)
    pool = scan_image_folders([args.pool]).images
    detector = Detector([args.weights], imgsz=args.imgsz, conf=args.floor)
    frames = [(f.item, f.image, f.detections) for f in detector.run(pool, batch=32, keep_images=True)]
    truth = {item.id: _truth(args.truth / f"{item.path.stem}.txt") for item, _, _ in frames}

    start = time.perf_counter()
    labeled, labels = labeled_box_crops(spec.train_items(), len(spec.names))
    unlabeled = np.concatenate([extract_crops(image, dets.xyxy) for _, image, dets in frames])
    head, result = fit_head(labeled, labels, unlabeled, spec.names, FixMatchConfig(steps=args.steps, tau=args.tau))
    probs = {item.id: head.predict_proba(image, dets.xyxy) for item, image, dets in frames}
    head_time = time.perf_counter() - start

    print(
        f"{len(pool)} pool images, {sum(len(t) for t in truth.values())} true boxes; {len(labeled)} labeled and "
        f"{len(unlabeled)} unlabeled crops; head trained in {head_time:.0f} s "
        f"(final mask ratio {result.history[-1].mask_ratio:.2f})\n"
    )
    print(f"| boxes kept at conf {args.conf:.2f} | kept | precision | recall | wrong class |")
    print("|---|---|---|---|---|")
    baseline = None
    for arm in ("detector alone", "head: relabel", "head: drop"):
        predictions = {}
        for item, image, dets in frames:
            classes, scores = dets.classes, dets.scores
            if arm != "detector alone":
                mode = "relabel" if arm.endswith("relabel") else "drop"
                classes, scores, _ = combine(
                    classes, scores, probs[item.id], mode, args.min_head_conf, args.head_weight
                )
            predictions[item.id] = (classes, scores, dets.xywhn(image.shape[:2]))
        q = label_quality(predictions, truth, args.conf)
        baseline = baseline or q
        relative = (q.wrong_class - baseline.wrong_class) / max(1, baseline.wrong_class)
        change = f" ({relative:+.0%})" if q is not baseline else ""
        print(f"| {arm} | {q.predicted} | {q.precision:.3f} | {q.recall:.3f} | {q.wrong_class}{change} |")


def _truth(path: Path) -> np.ndarray:
    return read_yolo_labels(path) if path.is_file() else np.zeros((0, 5))


if __name__ == "__main__":
    main()
