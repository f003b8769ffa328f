"""What a cycle produced: one `RoundResult` per round, the `CycleResult`, and `summary.csv`."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from yolossl.config import CycleConfig
from yolossl.cycle.control import ControlResult, gain_over_control
from yolossl.train import Metrics

SUMMARY_FILE = "summary.csv"
FINAL_WEIGHTS = "weights/best.pt"


@dataclass(frozen=True)
class TeacherRound:
    """What the online teacher did while a round trained (its `teacher.csv`), apart from the pool's labeling after."""

    epochs: int
    kept: dict[str, int]
    """Per class, the teacher's boxes (above the floor) that became targets, over the round's epochs."""
    seen: dict[str, int]
    """Per class, the teacher's boxes above the floor."""
    epochs_without_threshold: dict[str, int]
    """Per class, the epochs in which it had no threshold (out of reach at the target precision): no targets."""

    @property
    def kept_share(self) -> float:
        seen = sum(self.seen.values())
        return sum(self.kept.values()) / seen if seen else 0.0

    def classes_without_targets(self) -> list[str]:
        """Classes that got no target in the whole round."""
        return [name for name, n in self.kept.items() if n == 0]


@dataclass(frozen=True)
class RoundResult:
    """One round's outcome: what it trained on, how well the result does on val (every decision) and on test (none)."""

    index: int
    labeled_images: int
    pseudo_images: int
    pseudo_boxes: int
    pseudo_boxes_per_class: dict[str, int]
    uncertain_boxes: int
    masked_images: int
    metrics: Metrics
    weights: Path
    data_yaml: Path
    wall_time_s: float
    accepted: bool = True
    """False when the round guard rejected it: its val mAP50-95 fell below the best round before it."""
    trained_from: str = ""
    labeled_repeat: int = 1
    epochs: int = 0
    skipped_images: int = 0
    """Pool images that could not be read this round (named in the log and in pseudo/stats.json)."""
    teacher: TeacherRound | None = None
    """An online round: what its teacher did while it trained (None: an offline round)."""
    test: Metrics | None = None
    """The round's model on the data YAML's `test:` split (None: no test split), scored after every choice was made."""

    @property
    def train_images(self) -> int:
        """Images per training epoch, oversampled labeled images counted as often as they appear."""
        return self.labeled_images * self.labeled_repeat + self.pseudo_images

    @property
    def images_used(self) -> int:
        return self.labeled_images + self.pseudo_images

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values.update(weights=str(self.weights), data_yaml=str(self.data_yaml))
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RoundResult:
        return cls(
            **{
                **values,
                "metrics": Metrics(**values["metrics"]),
                "weights": Path(values["weights"]),
                "data_yaml": Path(values["data_yaml"]),
                "teacher": TeacherRound(**values["teacher"]) if values.get("teacher") else None,
                "test": Metrics(**values["test"]) if values.get("test") else None,
            }
        )


@dataclass
class CycleResult:
    """A finished (or resumed and finished) cycle."""

    run_dir: Path
    config: CycleConfig
    class_names: list[str]
    rounds: list[RoundResult] = field(default_factory=list)
    control: ControlResult | None = None
    """The labels alone trained from round 0 for the rounds' wall time (None: switched off, or no round)."""

    @property
    def summary_csv(self) -> Path:
        return self.run_dir / SUMMARY_FILE

    @property
    def best(self) -> RoundResult:
        """The round whose weights are the cycle's result: the best val mAP50-95 among accepted rounds."""
        return best_round(self.rounds)

    @property
    def weights(self) -> Path:
        """The final model: a copy of the best round's weights."""
        return self.run_dir / FINAL_WEIGHTS


def best_round(rounds: list[RoundResult]) -> RoundResult:
    accepted = [r for r in rounds if r.accepted]
    return max(accepted, key=lambda r: (r.metrics.map50_95, -r.index))


def rounds_without_gain(rounds: list[RoundResult]) -> int:
    """Rejected rounds since the last accepted one."""
    count = 0
    for r in reversed(rounds):
        if r.accepted:
            break
        count += 1
    return count


def summary_rows(
    rounds: list[RoundResult], class_names: list[str], control: ControlResult | None = None
) -> list[dict[str, Any]]:
    """One row per round: the columns of summary.csv and of the printed table (test columns with a test split;
    the labels-alone control's columns when it ran)."""
    tested = any(r.test for r in rounds)
    return [
        {
            "round": r.index,
            "images_used": r.images_used,
            "labeled_images": r.labeled_images,
            "pseudo_images": r.pseudo_images,
            "pseudo_boxes": r.pseudo_boxes,
            **{f"boxes_{name}": r.pseudo_boxes_per_class.get(name, 0) for name in class_names},
            "uncertain_boxes": r.uncertain_boxes,
            "masked_images": r.masked_images,
            "map50": round(r.metrics.map50, 4),
            "map50_95": round(r.metrics.map50_95, 4),
            "precision": round(r.metrics.precision, 4),
            "recall": round(r.metrics.recall, 4),
            **(test_columns(r.test) if tested else {}),
            "skipped_images": r.skipped_images,
            **teacher_columns(r.teacher, class_names),
            "wall_time_s": r.wall_time_s,
            "accepted": r.accepted,
            **(control_columns(r, control) if control else {}),
        }
        for r in rounds
    ]


def control_columns(r: RoundResult, control: ControlResult) -> dict[str, Any]:
    """The labels alone for the rounds' wall time, beside every round: and this round's model minus it (on test when
    both have test figures, else on val; `vs_labels_alone_on` says which)."""
    split, gain = gain_over_control(r.metrics, r.test, control)
    return {
        "labels_alone_map50_95": round(control.metrics.map50_95, 4),
        "labels_alone_test_map50_95": round(control.test.map50_95, 4) if control.test else "",
        "labels_alone_epochs": control.epochs,
        "labels_alone_time_s": round(control.wall_time_s, 2),
        "vs_labels_alone": round(gain, 4),
        "vs_labels_alone_on": split,
    }


def test_columns(test: Metrics | None) -> dict[str, Any]:
    """The round on the test split: what the run reports, beside val's figures that chose."""
    if test is None:
        return {"test_map50": "", "test_map50_95": ""}
    return {"test_map50": round(test.map50, 4), "test_map50_95": round(test.map50_95, 4)}


def teacher_columns(teacher: TeacherRound | None, class_names: list[str]) -> dict[str, Any]:
    """The online teacher's round: its kept share, per class its targets and its epochs without a threshold."""
    if teacher is None:
        return {"teacher_kept_share": "", **{f"teacher_kept_{n}": "" for n in class_names}, "teacher_no_thr": ""}
    no_threshold = " ".join(f"{n}:{e}" for n, e in teacher.epochs_without_threshold.items() if e)
    return {
        "teacher_kept_share": round(teacher.kept_share, 4),
        **{f"teacher_kept_{n}": teacher.kept.get(n, 0) for n in class_names},
        "teacher_no_thr": no_threshold,
    }


def summary_csv(rounds: list[RoundResult], class_names: list[str], control: ControlResult | None = None) -> str:
    rows = summary_rows(rounds, class_names, control)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["round"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
