from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from yolossl.demo import BENCH_DATASETS, GLYPHS_SPEC, DemoSpec, write_demo_dataset
from yolossl.glyphs import GLYPH_CLASSES, draw_glyph_scene


def test_a_glyph_scene_is_the_same_for_the_same_seed_and_its_boxes_hold_the_glyphs() -> None:
    first, labels = draw_glyph_scene(np.random.default_rng(3), 96)
    again, labels_again = draw_glyph_scene(np.random.default_rng(3), 96)
    assert np.array_equal(first, again) and labels == labels_again
    assert 1 <= len(labels) <= 5 and first.shape == (96, 96, 3)  # 2-5 tried, one may find no room
    for cls, xc, yc, w, h in labels:
        assert 0 <= cls < len(GLYPH_CLASSES)
        assert xc - w / 2 >= 0 and xc + w / 2 <= 1 and yc - h / 2 >= 0 and yc + h / 2 <= 1
        assert 12 * 0.7 / 96 <= h <= 1  # several sizes, none a speck


def test_glyph_boxes_are_tight_around_ink() -> None:
    """Each box's edge rows and columns differ from the textured background just outside them."""
    rng = np.random.default_rng(5)
    contrast = []
    for _ in range(20):
        image, labels = draw_glyph_scene(rng, 96)
        grey = image.astype(np.float32).mean(2)
        for _, xc, yc, w, h in labels:
            x0, x1 = round((xc - w / 2) * 96), round((xc + w / 2) * 96)
            y0, y1 = round((yc - h / 2) * 96), round((yc + h / 2) * 96)
            inside = grey[y0:y1, x0:x1]
            contrast.append(inside.std())
    assert np.median(contrast) > 20  # ink against its background, not an empty patch


def test_the_glyphs_bench_dataset_has_ten_classes_and_small_images(tmp_path: Path) -> None:
    spec = DemoSpec(n_labeled=6, n_unlabeled=0, n_val=3, size=96, seed=1, classes=GLYPH_CLASSES, scene="glyphs")
    write_demo_dataset(tmp_path, spec)
    meta = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert list(meta["names"].values()) == list("0123456789")
    assert len(list((tmp_path / "labeled/images").glob("*.jpg"))) == 6
    assert GLYPHS_SPEC.size == 96 and BENCH_DATASETS["glyphs"].training["imgsz"] == 96
    assert round(BENCH_DATASETS["glyphs"].label_fraction * GLYPHS_SPEC.n_labeled) == 100
