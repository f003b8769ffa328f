from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import pytest
import torch

from yolossl.errors import YolosslError
from yolossl.models import load_model
from yolossl.runtime import describe_device, resolve_device
from yolossl.train import TrainSettings, validate_detector, validate_per_class


def test_device_is_cuda_when_present_else_cpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == "cpu"
    assert describe_device("cpu") == f"CPU ({torch.get_num_threads()} torch threads)"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None) == "0"
    assert resolve_device("") == "0"


def test_the_cli_keeps_every_core_torch_would_use() -> None:
    """`import ultralytics` sets OMP_NUM_THREADS=1 when unset; the CLI must not inherit that for labeling."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    default = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env, capture_output=True, text=True
    )
    ours = subprocess.run(
        [
            sys.executable,
            "-c",
            "from yolossl.cli._ui import setup_logging; setup_logging(True, False);"
            "import ultralytics, torch; from yolossl.runtime import describe_device; print(describe_device('cpu'))",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert ours.returncode == 0, ours.stderr
    # the last line: a first Ultralytics import in a fresh config dir prints "Creating new Ultralytics Settings" first
    assert ours.stdout.strip().splitlines()[-1] == f"CPU ({int(default.stdout)} torch threads)"


def test_device_passes_through_as_given(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("0,1") == "0,1"  # Ultralytics launches multi-GPU training from this
    assert resolve_device("cuda") == "cuda"
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(YolosslError, match=r"--device 0,2: this machine has 2 CUDA device\(s\), 0..1"):
        resolve_device("0,2")


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda", "--device cuda: CUDA is not available on this machine; use --device cpu"),
        ("0", "--device 0: CUDA is not available"),
        ("foo", "--device foo: not a device (cpu, mps, cuda, 0, 0,1, cuda:0)"),
    ],
)
def test_a_device_this_machine_lacks_is_refused_as_typed(device: str, message: str, monkeypatch) -> None:
    """Not Ultralytics' "Invalid CUDA 'device=0'" from inside the first training, nor a CPU fallback."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(YolosslError) as info:
        resolve_device(device)
    assert message in str(info.value)


def test_yaml_model_builds_offline() -> None:
    model = load_model("yolo11n.yaml")
    assert model.task == "detect"


def test_unavailable_named_weights_give_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    with pytest.raises(YolosslError) as info:
        load_model("yolo11n.pt")  # not on disk, and no network here
    message = str(info.value)
    assert message.startswith("yolo11n.pt: ")
    assert "yolo11n.yaml" in message and "local .pt" in message
    assert "\n" not in message
    assert time.perf_counter() - start < 120


def test_model_must_be_pt_or_yaml() -> None:
    with pytest.raises(YolosslError, match=r"model.onnx: a model is a \.pt weights file or a \.yaml model config"):
        load_model("model.onnx")


def test_trained_weights_validate(tiny_weights: Path) -> None:
    data_yaml = tiny_weights.parents[2] / "data.yaml"
    metrics = validate_detector(tiny_weights, data_yaml, TrainSettings(epochs=1, imgsz=64, batch=8, device="cpu"))
    assert 0.0 <= metrics.map50_95 <= metrics.map50 <= 1.0
    assert (tiny_weights.parents[1] / "results.csv").is_file()
    per_class = validate_per_class(tiny_weights, data_yaml, TrainSettings(epochs=1, imgsz=64, batch=8, device="cpu"))
    assert list(per_class) == ["circle", "square", "triangle", "cross", "ring"]  # by name, in the data YAML's order
    assert all(0.0 <= ap <= 1.0 for ap in per_class.values())
    assert sum(per_class.values()) / len(per_class) == pytest.approx(metrics.map50_95, abs=1e-6)  # every class in val


def test_epoch_reports_carry_val_metrics_only_from_epochs_that_validated(tiny_weights: Path, tmp_path: Path) -> None:
    """With val=False Ultralytics holds zeros until its last epoch: the cycle's log must not show them as mAP 0.000."""
    from yolossl.train import train_detector

    data_yaml = tiny_weights.parents[2] / "data.yaml"
    reports: list[tuple[int, dict[str, float]]] = []
    settings = TrainSettings(epochs=2, imgsz=64, batch=8, device="cpu", workers=0, extra={"val": False})
    train_detector(tiny_weights, data_yaml, tmp_path / "train", settings, lambda e, n, v: reports.append((e, v)))
    assert [epoch for epoch, _ in reports] == [1, 2]
    first, last = reports[0][1], reports[1][1]
    assert "box_loss" in first and "mAP50-95" not in first
    assert "box_loss" in last and 0.0 <= last["mAP50-95"] <= last["mAP50"] <= 1.0


def test_multi_gpu_training_arguments_pass_through(tmp_path: Path, monkeypatch) -> None:
    """--device 0,1 reaches Ultralytics' DDP launcher unchanged, each round in its own save dir, and the
    metrics come from a validation in this process (the DDP workers' metrics stay in theirs)."""
    from ultralytics import YOLO

    import yolossl.train as train_module
    from yolossl.train import Metrics, train_detector

    seen: dict = {}

    def fake_train(self, **kwargs):  # what Ultralytics' multi-GPU launch returns to the parent: no metrics
        seen.update(kwargs)
        weights = Path(kwargs["project"]) / kwargs["name"] / "weights" / "best.pt"
        weights.parent.mkdir(parents=True)
        weights.write_bytes(b"weights")
        return None

    validated = []
    monkeypatch.setattr(YOLO, "train", fake_train)
    monkeypatch.setattr(
        train_module, "validate_detector", lambda w, d, s: validated.append(s.device) or Metrics(0.5, 0.3, 0.6, 0.4)
    )
    settings = TrainSettings(epochs=2, imgsz=64, batch=16, device="0,1", workers=4)
    result = train_detector("yolo11n.yaml", tmp_path / "data.yaml", tmp_path / "run" / "round_2" / "train", settings)
    assert seen["device"] == "0,1" and seen["batch"] == 16 and isinstance(seen["batch"], int)
    assert seen["project"] == str((tmp_path / "run" / "round_2").resolve()) and seen["name"] == "train"
    assert result.metrics == Metrics(0.5, 0.3, 0.6, 0.4) and validated == ["0,1"]


def test_validation_runs_on_the_first_of_several_devices(tmp_path: Path, monkeypatch) -> None:
    from types import SimpleNamespace

    from ultralytics import YOLO

    seen: dict = {}

    def fake_val(self, **kwargs):
        seen.update(kwargs)
        return SimpleNamespace(box=SimpleNamespace(map50=0.5, map=0.3, mp=0.6, mr=0.4))

    monkeypatch.setattr(YOLO, "val", fake_val)
    metrics = validate_detector(Path("yolo11n.yaml"), tmp_path / "d.yaml", TrainSettings(1, 64, 8, device="0,1"))
    assert seen["device"] == "0" and metrics.map50_95 == 0.3


def test_ultralytics_does_not_keep_half_the_cores_after_validating(tiny_weights, tiny_dataset) -> None:
    """Its select_device sets torch to cores - 1 threads; what runs next (labeling, the head) needs them all."""
    before = torch.get_num_threads()
    settings = TrainSettings(epochs=1, imgsz=64, batch=4, device="cpu", workers=0)
    validate_detector(tiny_weights, tiny_dataset / "data.yaml", settings)
    assert torch.get_num_threads() == before


def test_freed_buffers_are_reused_not_faulted_in_again() -> None:
    """Buffers of a batch's sizes freed and allocated again, as every labeling batch does: no fresh page faults."""
    import subprocess
    import sys

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's allocator only")
    script = (
        "import resource, numpy as np\n"
        "from yolossl.runtime import set_up_process\n"
        "set_up_process()\n"
        "def batch():\n"
        "    return [np.ones(n << 10, np.uint8) for n in (3072, 200, 5120, 40960, 1024, 3072)]\n"
        "batch()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(5): batch()\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    ours = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert ours.returncode == 0, ours.stderr
    assert int(ours.stdout) < 500  # glibc's defaults: ~15 000 pages faulted in again
    env["MALLOC_TRIM_THRESHOLD_"] = "131072"  # an allocator setting the user made is left alone
    theirs = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert int(theirs.stdout) > 5000
