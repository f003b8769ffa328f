from __future__ import annotations

import platform
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolossl.boxes import Detections
from yolossl.data import ImageItem, scan_image_folders
from yolossl.errors import YolosslError
from yolossl.images import letterbox, load_letterboxed, read_image, to_rgb
from yolossl.label import engine
from yolossl.label.engine import Detector
from yolossl.label.fusion import fuse_detections
from yolossl.quality import box_iou


def test_detections_validate_their_shapes() -> None:
    with pytest.raises(ValueError, match=r"xyxy must be \(2, 4\)"):
        Detections(np.zeros((3, 4)), np.zeros(2), np.zeros(2, dtype=np.int64))
    d = Detections(np.array([[10.0, 20.0, 30.0, 60.0]]), np.array([0.9]), np.array([1]))
    np.testing.assert_allclose(d.xywhn((100, 200)), [[0.1, 0.4, 0.1, 0.4]])


def test_letterbox_keeps_aspect_and_centres() -> None:
    image = np.full((50, 100, 3), 200, dtype=np.uint8)
    boxed = letterbox(image, 64)
    assert boxed.shape == (64, 64, 3)
    assert (boxed[:16] == 114).all() and (boxed[48:] == 114).all()  # 100x50 -> 64x32, padded above and below
    assert (boxed[16:48] == 200).all()


def test_to_rgb_swaps_channels_and_leaves_the_original() -> None:
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 30  # B, G, R
    image[1, 2] = (1, 2, 3)
    rgb = to_rgb(image)
    assert rgb.shape == (2, 3, 3) and rgb.flags.c_contiguous
    assert (rgb[0, 0] == (30, 20, 10)).all() and (rgb[1, 2] == (3, 2, 1)).all()
    assert (image[1, 2] == (1, 2, 3)).all()  # the original stays BGR: masked copies are written from it


def test_batch_is_channels_last_and_the_model_gets_its_own_layout(tiny_dataset: Path, tiny_weights: Path) -> None:
    import torch

    detector = Detector([tiny_weights], imgsz=64)
    batch = detector._to_tensor([load_letterboxed(item.path, 64)[1] for item in _pool(tiny_dataset)[:2]])
    assert batch.shape == (2, 3, 64, 64) and batch.is_contiguous(memory_format=torch.channels_last)
    if platform.machine() in ("x86_64", "AMD64"):  # where Ultralytics runs PyTorch models channels-last on CPU
        assert detector._layouts == [torch.channels_last]


def test_unreadable_files_read_as_none(tmp_path: Path) -> None:
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    assert read_image(tmp_path / "text.jpg") is None
    assert read_image(tmp_path / "empty.png") is None
    assert read_image(tmp_path / "missing.jpg") is None


def _pool(tiny_dataset: Path) -> list[ImageItem]:
    return scan_image_folders([tiny_dataset / "unlabeled"]).images


def _boxes(detector: Detector, items: list[ImageItem], batch: int) -> list[Detections]:
    return [frame.detections for frame in detector.run(items, batch=batch)]


def _same(
    a: list[Detections], b: list[Detections], conf: float, min_iou: float = 0.99, score_tol: float = 1e-3
) -> None:
    """Each box of one set scoring clearly above the floor has its twin in the other: same class, IoU >= min_iou,
    score within score_tol. (Boxes right at the floor may fall on either side of it by rounding.)"""
    assert sum(len(d) for d in a) > 0, "a comparison over no boxes proves nothing"
    for x, y in ((a, b), (b, a)):
        for first, second in zip(x, y, strict=True):
            clear = first.scores >= 2 * conf
            for box, score, cls in zip(first.xyxy[clear], first.scores[clear], first.classes[clear], strict=True):
                iou = box_iou(box[None], second.xyxy)[0] if len(second) else np.zeros(0)
                twins = (iou >= min_iou) & (second.classes == cls) & (np.abs(second.scores - score) <= score_tol)
                assert twins.any(), f"no twin for box {box} (class {cls}, score {score:.4f})"


def test_batching_does_not_change_the_boxes(tiny_dataset: Path, tiny_weights: Path) -> None:
    detector = Detector([tiny_weights], imgsz=64, conf=0.001)
    items = _pool(tiny_dataset)
    _same(_boxes(detector, items, batch=1), _boxes(detector, items, batch=5), conf=0.001)


def test_frames_come_in_order_with_unreadable_ones_marked(tiny_dataset: Path, tiny_weights: Path, tmp_path) -> None:
    items = _pool(tiny_dataset)[:3]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    items.insert(1, ImageItem("broken", broken))
    frames = list(Detector([tiny_weights], imgsz=64, conf=0.001).run(items, batch=2, keep_images=True))
    assert [f.item.id for f in frames] == [i.id for i in items]
    assert frames[1].detections is None and frames[1].image is None
    assert frames[0].shape == (64, 64) and frames[0].image.shape == (64, 64, 3)
    for frame in (frames[0], frames[2]):
        d = frame.detections
        assert (d.xyxy >= 0).all() and (d.xyxy[:, [0, 2]] <= 64).all() and (d.scores >= 0.001).all()


def test_model_input_is_what_ultralytics_predictor_feeds(tiny_dataset: Path, tiny_weights: Path) -> None:
    """Decoding, letterbox, channel order and scaling must give the predictor's own input tensor, exactly."""
    import torch
    from ultralytics import YOLO

    path = _pool(tiny_dataset)[0].path
    model = YOLO(str(tiny_weights))
    model.predict(str(path), imgsz=64, verbose=False)  # sets up the predictor
    theirs = model.predictor.preprocess([cv2.imread(str(path))])
    detector = Detector([tiny_weights], imgsz=64)
    ours = detector._to_tensor([load_letterboxed(path, 64)[1]])
    assert ours.shape == theirs.shape == (1, 3, 64, 64)
    assert torch.equal(ours, theirs.float())


def test_boxes_map_back_to_the_original_image(tiny_dataset: Path, tiny_weights: Path, tmp_path: Path) -> None:
    """The same picture at twice the size must give boxes at twice the coordinates."""
    source = _pool(tiny_dataset)[0].path
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), cv2.resize(cv2.imread(str(source)), (128, 128), interpolation=cv2.INTER_NEAREST))
    detector = Detector([tiny_weights], imgsz=64, conf=0.001)
    small_dets, big_dets = _boxes(detector, [ImageItem("s", source), ImageItem("b", big)], batch=1)
    k = min(len(small_dets), len(big_dets), 5)
    assert k > 0
    iou = box_iou(small_dets.xyxy[:k] * 2, big_dets.xyxy[:k])
    assert (iou.max(axis=1) > 0.8).all()


def test_ensemble_members_are_fused_per_image(tiny_dataset: Path, tiny_weights: Path) -> None:
    items = _pool(tiny_dataset)[:4]
    single = _boxes(Detector([tiny_weights], imgsz=64, conf=0.001), items, batch=4)
    twins = _boxes(Detector([tiny_weights, tiny_weights], imgsz=64, conf=0.001), items, batch=4)
    for one, fused in zip(single, twins, strict=True):
        expected = fuse_detections([one, one], (64, 64), 0.001)
        np.testing.assert_allclose(fused.xyxy, expected.xyxy, atol=1e-6)
        np.testing.assert_allclose(fused.scores, expected.scores, atol=1e-6)
    assert sum(len(d) for d in twins) > 0


def test_tta_views_map_boxes_back(tiny_weights: Path) -> None:
    """Each TTA view's inverse takes a box seen in that view back to the original letterboxed frame."""
    import torch

    detector = Detector([tiny_weights], imgsz=64, conf=0.001, tta=True)
    views = list(detector._views(torch.zeros(1, 3, 64, 64)))
    assert len(views) == 3
    box = torch.tensor([[8.0, 16.0, 24.0, 40.0]])
    (_, same), (_, unflip), (small, unscale) = views
    torch.testing.assert_close(same(box), box)
    torch.testing.assert_close(unflip(torch.tensor([[64 - 24.0, 16.0, 64 - 8.0, 40.0]])), box)
    scale = 32 / 64  # 64 * 0.83 rounded down to the stride
    assert small.shape == (1, 3, 64, 64) and (small[..., 32:, :] == 114 / 255).all()
    torch.testing.assert_close(unscale(box * scale), box)


def test_tta_runs_end_to_end(tiny_dataset: Path, tiny_weights: Path) -> None:
    items = _pool(tiny_dataset)[:4]
    tta = _boxes(Detector([tiny_weights], imgsz=64, conf=0.001, tta=True), items, batch=4)
    assert sum(len(d) for d in tta) > 0
    assert all(((d.xyxy >= 0) & (d.xyxy <= 64)).all() and (d.scores <= 1).all() for d in tta)


def test_onnxruntime_boxes_match_pytorch(tiny_dataset: Path, tiny_weights: Path, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime is an optional extra: pip install 'yolossl[onnxruntime]'")
    items = _pool(tiny_dataset)
    torch_boxes = _boxes(Detector([tiny_weights], imgsz=64, conf=0.001), items, batch=4)
    onnx = Detector([tiny_weights], imgsz=64, conf=0.001, backend="onnxruntime", export_dir=tmp_path)
    assert not list(tiny_weights.parent.glob("*.onnx"))  # exported beside a copy, not beside the user's weights
    onnx_boxes = _boxes(onnx, items, batch=4)
    _same(torch_boxes, onnx_boxes, conf=0.001, min_iou=0.99, score_tol=1e-3)

    # The exported file handed over, as the Ray engine's driver hands it to its actors: loaded, not exported again.
    from ultralytics.engine.model import Model

    (exported,) = onnx.sources
    assert exported.suffix == ".onnx" and exported.is_relative_to(tmp_path)
    monkeypatch.setattr(Model, "export", lambda *a, **k: pytest.fail("exported a second time"))
    handed = Detector([exported], imgsz=64, conf=0.001, backend="onnxruntime")
    assert handed.sources == [exported]
    _same(onnx_boxes, _boxes(handed, items, batch=4), conf=0.001, min_iou=0.999, score_tol=1e-5)


def test_a_named_weight_is_downloaded_or_the_failure_said(tmp_path: Path, monkeypatch) -> None:
    """`--model yolo11n.pt` works as in the cycle: Ultralytics downloads it; offline, one clear line."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(YolosslError) as info:
        Detector(["yolo11n.pt"])  # not on disk, and no network here
    message = str(info.value)
    assert message.startswith("yolo11n.pt: weights not found locally and the download failed")
    assert "yolo11n.yaml" in message and "local .pt" in message and "\n" not in message


def test_a_downloaded_named_weight_is_the_one_labeling_uses(tmp_path: Path, tiny_weights: Path, monkeypatch) -> None:
    import shutil
    from types import SimpleNamespace

    import yolossl.models

    def download(name):  # what Ultralytics does online: the file lands here, the model knows its path
        shutil.copyfile(tiny_weights, tmp_path / str(name))
        return SimpleNamespace(ckpt_path=str(tmp_path / str(name)))

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(yolossl.models, "load_model", download)
    assert Detector(["yolo11n.pt"], imgsz=64).names == Detector([tiny_weights], imgsz=64).names


def test_bad_requests_are_clear(tiny_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(YolosslError, match="model weights not found"):
        Detector([tmp_path / "nope.pt"])
    with pytest.raises(YolosslError, match="--backend must be one of"):
        Detector([tiny_weights], backend="tflite")
    with pytest.raises(YolosslError, match="no model given"):
        Detector([])
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_text("not a model")
    with pytest.raises(YolosslError, match=r"corrupt\.pt: could not load the model"):
        Detector([corrupt])


def test_the_detector_keeps_every_core_for_the_model(tiny_weights) -> None:
    """Ultralytics' select_device leaves a core for dataloaders (1 thread of 2): labeling halved its speed."""
    import torch

    before = torch.get_num_threads()
    Detector([tiny_weights], imgsz=64)
    assert torch.get_num_threads() == before


def test_nms_runs_torchvisions_kernel(tiny_dataset: Path, tiny_weights: Path) -> None:
    """Ultralytics falls back to a Python-loop NMS unless torchvision is imported: 4x slower at the
    candidate floor. A fresh interpreter, as `yolossl label` starts, with the fallback made to fail."""
    import subprocess
    import sys

    script = (
        "import sys; from pathlib import Path\n"
        "from ultralytics.utils.nms import TorchNMS\n"
        "TorchNMS.nms = staticmethod(lambda *a: sys.exit('the Python-loop NMS ran'))\n"
        "from yolossl.data import scan_image_folders\n"
        "from yolossl.label.engine import Detector\n"
        f"items = scan_image_folders([{str(tiny_dataset / 'unlabeled')!r}]).images\n"
        f"frames = list(Detector([{str(tiny_weights)!r}], imgsz=64, conf=0.001).run(items, batch=4))\n"
        "print(sum(len(f.detections) for f in frames))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) > 0  # boxes went through NMS


def test_the_tensorrt_export_is_built_for_the_labeling_batch(tiny_weights: Path, tmp_path: Path, monkeypatch) -> None:
    """A dynamic engine takes batches up to the one it was exported with (Ultralytics' default: 1); the export cache
    is keyed on it, so labeling at another batch exports again. The engine itself needs a GPU: the arguments are
    checked here."""
    import torch
    from ultralytics.engine.model import Model

    asked: list[dict] = []

    class Exported(Exception):
        pass

    def export(self, **kwargs):
        asked.append(kwargs)
        raise Exported

    monkeypatch.setattr(Model, "export", export)
    monkeypatch.setattr(engine, "require_tensorrt_exporter", lambda: None)  # not installed here
    detector = object.__new__(Detector)  # as __init__ leaves it on a GPU, without loading through TensorRT
    detector.device, detector.half, detector.imgsz, detector.batch = torch.device("cuda", 0), True, 64, 32
    with pytest.raises(Exported):
        detector._export(tiny_weights, "tensorrt", tmp_path)
    assert asked[0]["format"] == "engine" and asked[0]["batch"] == 32 and asked[0]["dynamic"] is True
    assert asked[0]["device"] == "0" and asked[0]["half"] is True  # FP16 layers; the engine's input stays fp32
    (export_dir,) = tmp_path.iterdir()
    assert export_dir.name.endswith("-tensorrt-64-b32-fp16")
    from yolossl.label.pseudo import make_detector
    from yolossl.label.settings import LabelSettings

    made = make_detector([tiny_weights], LabelSettings(imgsz=64, batch=24).predict)
    assert made.batch == 24  # the labeling batch reaches the detector


class _Backend:
    """A loaded model that takes `dtype` input, as Ultralytics' backend reports it (`fp16`), around a real fp32 one.

    TensorRT engines Ultralytics builds take fp32 (`fp16` False, even with FP16 layers); an fp16 batch fed to one is
    read as fp32 garbage, so the fake refuses any other dtype."""

    def __init__(self, real, dtype) -> None:
        import torch

        self.real, self.dtype, self.fp16 = real, dtype, dtype == torch.float16
        self.names, self.end2end, self.seen = real.names, False, []

    def __call__(self, x):
        self.seen.append(x.dtype)
        assert x.dtype == self.dtype, f"fed {x.dtype} to a model built for {self.dtype}"
        return self.real(x.float())


def test_each_model_is_fed_the_input_precision_it_was_built_for(
    tiny_dataset: Path, tiny_weights: Path, monkeypatch, caplog
) -> None:
    """Asked for half precision (as on a GPU), an ensemble of an fp32 engine and an fp16 model feeds each its own
    precision, and the log says which; the boxes are those of the fp32 model alone."""
    import logging

    import torch

    real = Detector([tiny_weights], imgsz=64, conf=0.001)
    fakes = iter([_Backend(real.models[0], torch.float32), _Backend(real.models[0], torch.float16)])
    monkeypatch.setattr(Detector, "_load", lambda self, *a: next(fakes))
    caplog.clear()  # the lines of `real` above, when an earlier test left yolossl's level at INFO
    with caplog.at_level(logging.INFO, logger="yolossl.label.engine"):
        detector = Detector([tiny_weights, tiny_weights], imgsz=64, conf=0.001, half=True)
    fp32, fp16 = detector.models
    assert [r.getMessage().rsplit(": ", 1)[1] for r in caplog.records] == ["fp32 input", "fp16 input"]
    items = _pool(tiny_dataset)[:4]
    fused = _boxes(detector, items, batch=4)
    assert fp32.seen == [torch.float32] and fp16.seen == [torch.float16]
    assert sum(len(d) for d in fused) > 0

    monkeypatch.setattr(Detector, "_load", lambda self, *a: _Backend(real.models[0], torch.float32))
    alone = Detector([tiny_weights], imgsz=64, conf=0.001, half=True)
    batch = alone._to_tensor([load_letterboxed(item.path, 64)[1] for item in items])
    assert batch.dtype == torch.float32  # not halved for an fp32 engine, however the detector was asked
    _same(_boxes(real, items, batch=4), _boxes(alone, items, batch=4), conf=0.001, min_iou=0.999, score_tol=1e-6)


def test_the_tensorrt_exporter_is_checked_up_front_in_one_line(tiny_weights: Path, tmp_path: Path, monkeypatch):
    """TensorRT export needs onnx and onnxslim too; with YOLO_AUTOINSTALL=false Ultralytics cannot fetch them."""
    import importlib.util

    import torch
    from ultralytics.engine.model import Model

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in ("tensorrt", "onnxslim") else real_find_spec(name)
    )
    monkeypatch.setattr(Model, "export", lambda *a, **k: pytest.fail("exported without the exporter's packages"))
    detector = object.__new__(Detector)
    detector.device, detector.half, detector.imgsz, detector.batch = torch.device("cuda", 0), True, 64, 16
    with pytest.raises(YolosslError) as info:
        detector._export(tiny_weights, "tensorrt", tmp_path)
    assert (
        str(info.value)
        == "--backend tensorrt needs tensorrt, onnxslim: pip install 'yolossl[tensorrt]' (NVIDIA GPUs only)"
    )


@pytest.mark.parametrize("cuda_provider", [False, True])
def test_onnx_is_exported_in_fp16_only_for_the_cuda_provider(
    cuda_provider: bool, tiny_weights: Path, tmp_path: Path, monkeypatch
) -> None:
    """On a GPU without onnxruntime-gpu, ONNX Runtime runs on its CPU provider: an fp16 graph there is slow kernels."""
    import torch
    from ultralytics.engine.model import Model

    asked: list[dict] = []
    monkeypatch.setattr(Model, "export", lambda self, **kwargs: asked.append(kwargs) or str(tmp_path / "m.onnx"))
    monkeypatch.setattr(engine, "_onnxruntime_on_cuda", lambda: cuda_provider)
    detector = object.__new__(Detector)
    detector.device, detector.half, detector.imgsz, detector.batch = torch.device("cuda", 0), True, 64, 16
    detector._export(tiny_weights, "onnxruntime", tmp_path)
    assert asked[0]["format"] == "onnx" and asked[0]["half"] is cuda_provider
