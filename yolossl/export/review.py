"""Which pseudo-labeled images a human should look at first.

An image ranks high when many of its boxes sit in the uncertain band (the model thinks something
is there but is not sure enough to label it) and, among equals, when one of its boxes has a score
closest to its class's threshold (the decision that could most easily have gone the other way).

    >>> review = most_worth_review(annotations, thresholds, count=50)
"""

from __future__ import annotations

from dataclasses import replace

from yolossl.errors import YolosslError
from yolossl.export.annotations import AnnotatedImage, Annotations


def review_priority(image: AnnotatedImage, thresholds: dict[int, float | None]) -> tuple[int, float]:
    """(-uncertain boxes, smallest distance of a score to its class threshold): smaller is more urgent."""
    uncertain = sum(1 for s in image.status or [] if s == "uncertain")
    margins = [
        abs(float(score) - limit)
        for cls, score in zip(image.classes, image.scores if image.scores is not None else [], strict=False)
        if (limit := thresholds.get(int(cls))) is not None
    ]
    return -uncertain, min(margins, default=1.0)


def most_worth_review(annotations: Annotations, thresholds: dict[int, float | None], count: int) -> Annotations:
    """The `count` images most worth a human look, most urgent first."""
    if not annotations.is_prediction:
        raise YolosslError("--review ranks pseudo-labels by their scores: export a run's round, not a data YAML")
    order = sorted(annotations.images, key=lambda im: (review_priority(im, thresholds), im.name))
    chosen = order[: max(0, count)]
    return replace(annotations, images=chosen)
