from __future__ import annotations

import csv
from pathlib import Path

from tests.conftest import tiny_cycle_config
from yolossl import run_cycle


def test_the_head_reviews_every_candidate_and_the_record_keeps_both_opinions(tiny_dataset: Path, tmp_path: Path):
    config = tiny_cycle_config(
        tiny_dataset, tmp_path / "runs", fixmatch=True, fixmatch_steps=3, fixmatch_min_conf=0.0, name="fm"
    )
    result = run_cycle(config)
    round_dir = result.run_dir / "round_1"
    assert (round_dir / "fixmatch_head.pt").is_file()
    rows = list(csv.DictReader((round_dir / "pseudo" / "record.csv").open()))
    assert rows and all(r["head_decision"] for r in rows)
    for r in rows:
        agrees = r["head_class_id"] == r["det_class_id"]
        assert (r["head_decision"] == "agree") == agrees
        if not agrees:  # min_head_conf 0: every disagreement relabels the box to the head's class
            assert r["head_decision"] == f"relabeled {r['det_class_id']}->{r['head_class_id']}"
            assert r["class_id"] == r["head_class_id"]
    assert "FixMatch head:" in (result.run_dir / "cycle.log").read_text()


def test_the_head_reviews_each_online_rounds_labeling_of_the_pool(tiny_dataset: Path, tmp_path: Path):
    """`yolossl cycle --fixmatch --rounds 2` in the default mode: a head per round, reviewing that round's labeling."""
    config = tiny_cycle_config(
        tiny_dataset,
        tmp_path / "runs",
        mode="online",
        rounds=2,
        online_epochs=2,
        fixmatch=True,
        fixmatch_steps=3,
        fixmatch_min_conf=0.0,
        conf=0.002,
        uncertain_low=0.001,
        name="fm",
    )
    result = run_cycle(config)
    assert [r.index for r in result.rounds] == [0, 1, 2]
    for k in (1, 2):
        round_dir = result.run_dir / f"round_{k}"
        assert (round_dir / "fixmatch_head.pt").is_file()
        rows = list(csv.DictReader((round_dir / "pseudo" / "record.csv").open()))
        assert rows and all(r["head_decision"] for r in rows)
