"""Benchmarks are too long for the suite, but they must not rot: each one imports and answers --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).parents[1] / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_answers_help(script: Path) -> None:
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout


ROOT = Path(__file__).parents[1]


def test_the_gpu_smoke_script_runs_its_cpu_mode_twice_in_a_row(tmp_path: Path) -> None:
    """`gpu_smoke.sh --cpu`: every step that needs no GPU, at tiny sizes, so that the script cannot rot where CI has
    none; run twice into the same --out, each run starts in a fresh folder of its own."""
    import importlib.util
    import os

    boxes = "boxes-onnxruntime" if importlib.util.find_spec("onnxruntime") else "SKIP boxes-onnxruntime"
    env = {**os.environ, "PYTHON": sys.executable}
    for _ in range(2):
        result = subprocess.run(
            ["bash", str(ROOT / "benchmarks" / "gpu_smoke.sh"), "--cpu", "--out", str(tmp_path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        for shown in ("PASS dataset", "PASS cycle-amp", "SKIP cycle-ddp", boxes, "PASS step-cost-b4"):
            assert shown in result.stdout, result.stdout
        assert "all steps passed" in result.stdout
    runs = sorted(tmp_path.glob("run-*"))
    assert len(runs) == 2 and all((run / "runs" / "amp" / "summary.csv").is_file() for run in runs)
    assert all("FixMatch head: " in (run / "runs" / "amp" / "cycle.log").read_text() for run in runs)


def _checks():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_smoke_checks", ROOT / "benchmarks" / "gpu_smoke_checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(tmp_path: Path, maps=("0.10", "0.20"), u_loss=("0.5", "0.4"), kept="3", teacher=True) -> Path:
    """A finished online run's files as the checks read them: summary.csv, config.yaml, round 1's teacher.csv."""
    run = tmp_path / "run"
    (run / "round_1" / "train").mkdir(parents=True)
    (run / "config.yaml").write_text("mode: online\n")
    rows = [f"{i},{m},{'' if i == 0 else 0.5}" for i, m in enumerate(maps)]
    (run / "summary.csv").write_text("\n".join(["round,map50_95,teacher_kept_share", *rows]) + "\n")
    if teacher:
        lines = [f"{e + 1},{loss},{kept},0" for e, loss in enumerate(u_loss)]
        (run / "round_1" / "train" / "teacher.csv").write_text("\n".join(["epoch,u_loss,kept_a,kept_b", *lines]))
    return run


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ({}, None),
        ({"maps": ("0.10", "nan")}, "round 1 has NaN or inf in map50_95"),
        ({"maps": ("0.10", "0.0")}, "round 1 mAP50-95 is 0.0"),
        ({"u_loss": ("0.5", "0.0")}, "not all above 0"),
        ({"kept": "0"}, "the teacher kept no target in 2 epochs"),
        ({"teacher": False}, "missing or empty: the round did not train online"),
    ],
    ids=["sound", "nan", "zero-map", "zero-u-loss", "nothing-kept", "no-teacher"],
)
def test_the_smoke_checks_fail_a_run_that_only_exited_0(
    tmp_path: Path, broken: dict, message: str | None, capsys
) -> None:
    """A DDP child that trained plain supervised, NaN losses or zero mAP exit 0 as well: the checks must say so."""
    import argparse

    checks = _checks()
    args = argparse.Namespace(run_dir=_run(tmp_path, **broken), allow_zero_map=False)
    if message is None:
        checks.check_run(args)
        assert "mAP50-95 by round 0.100 0.200; round 1: u_loss 0.4000-0.5000, 6 targets kept" in capsys.readouterr().out
        return
    with pytest.raises(checks.CheckFailed, match=message):
        checks.check_run(args)
