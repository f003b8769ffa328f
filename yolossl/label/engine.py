"""The detector engine: batched inference that keeps the model busy and memory flat.

Images are decoded and letterboxed in background threads, a few batches ahead of the model, and
each result is handed on as soon as its batch is done. The model is Ultralytics' `AutoBackend`,
so the same code runs PyTorch weights (FP16 on CUDA, channels-last on CPU) and models exported
by Ultralytics' exporter to ONNX Runtime, OpenVINO or TensorRT, each fed the input precision it was
built for (a TensorRT engine Ultralytics builds takes fp32, even with FP16 layers); boxes go through Ultralytics' own
NMS and `scale_boxes`. Test-time augmentation and ensembles add views (flip, smaller scale, other
models) that `fusion.fuse_detections` merges with weighted boxes fusion.

    >>> detector = Detector([Path("best.pt")], imgsz=640, device="0")
    >>> for frame in detector.run(pool.images, batch=32):
    ...     frame.detections.xyxy
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yolossl.boxes import Detections
from yolossl.data import ImageItem
from yolossl.errors import YolosslError, first_line
from yolossl.images import GREY, Loaded, load_letterboxed
from yolossl.label.settings import BACKENDS

logger = logging.getLogger(__name__)

_INSTALL = {
    "onnxruntime": "pip install 'yolossl[onnxruntime]'",
    "openvino": "pip install 'yolossl[openvino]'",
    "tensorrt": "pip install 'yolossl[tensorrt]' (NVIDIA GPUs only)",
}
_EXPORT_SUFFIX = {"onnx": ".onnx", "engine": ".engine", "openvino": "_openvino_model"}
_TTA_SCALE = 0.83  # the smaller view of --tta, as in Ultralytics' own augmented inference


@dataclass
class Frame:
    """One image's result. `detections` is None when the file could not be read as an image."""

    item: ImageItem
    shape: tuple[int, int]
    detections: Detections | None
    image: np.ndarray | None = field(default=None, repr=False)  # the decoded original, when asked for


class Detector:
    """One or more models behind one `run()`; views of each image are fused when there are several."""

    def __init__(
        self,
        weights: Sequence[str | Path],
        imgsz: int = 640,
        device: str = "cpu",
        conf: float = 0.05,
        iou: float = 0.7,
        max_det: int = 300,
        backend: str = "torch",
        tta: bool = False,
        half: bool | None = None,
        export_dir: Path | None = None,
        batch: int = 16,
    ) -> None:
        if not weights:
            raise YolosslError("no model given: pass --model best.pt (repeatable for an ensemble)")
        if backend not in BACKENDS:
            raise YolosslError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        import torch
        import torchvision  # noqa: F401  Ultralytics' NMS runs torchvision's C++ kernel only once it is imported

        self.imgsz = _round_to_stride(imgsz)
        self.conf, self.iou, self.max_det, self.tta = conf, iou, max_det, tta
        self.batch = batch  # the largest batch an exported engine must take (TensorRT's profile is fixed at export)
        self.device = labeling_device(device)
        self.half = self.device.type == "cuda" if half is None else half
        self.sources: list[Path] = []  # the files loaded: the weights, or what they were exported to
        self.models = [self._load(Path(w), backend, export_dir) for w in weights]
        self._layouts = [_input_layout(m) for m in self.models]
        self._dtypes = [_input_dtype(m) for m in self.models]
        for w, dtype in zip(weights, self._dtypes, strict=True):
            logger.info("Labeling with %s (%s): %s input", w, backend, "fp16" if dtype == torch.float16 else "fp32")
        names = [dict(m.names) for m in self.models]
        if any(n != names[0] for n in names[1:]):
            raise YolosslError("ensemble models must have the same classes in the same order")
        self.names: dict[int, str] = {int(k): str(v) for k, v in names[0].items()}
        self._torch = torch

    def _load(self, weights: Path, backend: str, export_dir: Path | None) -> Any:
        from ultralytics.nn.autobackend import AutoBackend

        if is_exported(weights, backend):  # exported once by a driver (the Ray engine's) and handed over
            source = weights
        else:
            if not weights.is_file():
                weights = _named_weights(weights)
            source = weights if BACKENDS[backend] is None else self._export(weights, backend, export_dir)
        try:
            model = AutoBackend(model=str(source), device=self.device, fp16=self.half, fuse=True, verbose=False)
        except ImportError as e:
            raise YolosslError(f"--backend {backend} needs its runtime: {_INSTALL[backend]} ({e})") from e
        except Exception as e:  # Ultralytics raises TypeError, RuntimeError, ... for a file it cannot load
            raise YolosslError(f"{weights}: could not load the model ({first_line(e)})") from e
        model.eval()
        self.sources.append(Path(source))
        return model

    def _export(self, weights: Path, backend: str, export_dir: Path | None) -> Path:
        return export_model(weights, backend, self.imgsz, self.batch, self.device, self.half, export_dir)

    def run(
        self,
        items: Sequence[ImageItem],
        batch: int = 16,
        keep_images: bool = False,
        workers: int | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> Iterator[Frame]:
        """Yield a `Frame` per image, in order. `keep_images` also hands over each decoded original."""
        batches = [items[i : i + batch] for i in range(0, len(items), batch)]
        for chunk, loaded in _prefetch(batches, self.imgsz, keep_images, workers or _default_workers()):
            readable = [i for i, (_, boxed, _) in enumerate(loaded) if boxed is not None]
            detections: dict[int, Detections] = {}
            if readable:
                tensor = self._to_tensor([loaded[i][1] for i in readable])
                shapes = [loaded[i][2] for i in readable]
                for i, dets in zip(readable, self._detect(tensor, shapes), strict=True):
                    detections[i] = dets
            for i, item in enumerate(chunk):
                original, _, shape = loaded[i]
                yield Frame(item=item, shape=shape, detections=detections.get(i), image=original)
            if on_progress:
                on_progress(len(chunk))

    def _to_tensor(self, images: list[np.ndarray]) -> Any:
        """Letterboxed RGB (H, W, 3) uint8 images to the models' input: NCHW, 0-1, FP16 where every model takes FP16
        (`_detect` casts per model where an ensemble mixes them).

        The batch stays in the decoders' channels-last memory (a permuted view, not a copy): that
        is the layout Ultralytics runs PyTorch models in on CPU, so the first convolution need not
        convert it. `_detect` makes it contiguous for models that want NCHW.
        """
        x = self._torch.from_numpy(np.stack(images))
        if self.device.type == "cuda":  # from pinned memory, without blocking: the copy overlaps the decoding
            x = x.pin_memory()
        x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        half = all(dtype == self._torch.float16 for dtype in self._dtypes)
        return (x.half() if half else x.float()).div_(255)

    def _detect(self, tensor: Any, shapes: list[tuple[int, int]]) -> list[Detections]:
        """Every view of every model, NMS'd, mapped back to original pixels, fused when there are several."""
        from ultralytics.utils import nms, ops

        per_image: list[list[Detections]] = [[] for _ in shapes]
        size = tensor.shape[2:]
        with self._torch.inference_mode():
            for model, layout, dtype in zip(self.models, self._layouts, self._dtypes, strict=True):
                for view, undo in self._views(tensor):
                    raw = model(view.to(dtype).contiguous(memory_format=layout))  # no-ops where they agree
                    kept = nms.non_max_suppression(
                        raw, self.conf, self.iou, max_det=self.max_det, end2end=getattr(model, "end2end", False)
                    )
                    mapped = []
                    for i, boxes in enumerate(kept):
                        boxes = boxes[:, :6].float()
                        boxes[:, :4] = undo(boxes[:, :4])
                        boxes[:, :4] = ops.scale_boxes(size, boxes[:, :4], shapes[i])
                        mapped.append(boxes)
                    # one copy to the CPU for the batch, not one per image
                    rows = self._torch.cat(mapped).cpu().numpy().astype(np.float64)
                    for i, out in enumerate(np.split(rows, np.cumsum([len(b) for b in mapped])[:-1])):
                        per_image[i].append(Detections(out[:, :4], out[:, 4], out[:, 5].astype(np.int64)))
        if len(per_image[0]) == 1:
            return [views[0] for views in per_image]
        from yolossl.label.fusion import fuse_detections

        return [fuse_detections(views, shape, self.conf) for views, shape in zip(per_image, shapes, strict=True)]

    def _views(self, tensor: Any) -> Iterator[tuple[Any, Callable[[Any], Any]]]:
        """The input as is, and with --tta a mirrored and a smaller copy, each with its box inverse."""
        yield tensor, lambda b: b
        if not self.tta:
            return
        width = tensor.shape[3]

        def unflip(b: Any) -> Any:
            return self._torch.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], dim=1)

        yield tensor.flip(3), unflip
        side = max(32, int(self.imgsz * _TTA_SCALE) // 32 * 32)  # smaller, and still a multiple of the stride
        small = self._torch.nn.functional.interpolate(tensor, size=(side, side), mode="bilinear", align_corners=False)
        padded = self._torch.full_like(tensor, GREY / 255)
        padded[:, :, :side, :side] = small
        scale = side / self.imgsz
        yield padded, lambda b: b / scale


def labeling_device(device: str) -> Any:
    """The torch.device labeling runs on (the first of a list): Ultralytics' `select_device`, every core kept."""
    from ultralytics.utils.torch_utils import select_device

    from yolossl.runtime import torch_threads_kept

    with torch_threads_kept():  # labeling decodes in a light thread and wants every core for the model
        return select_device(str(device).split(",")[0], verbose=False)


def export_model(
    weights: Path, backend: str, imgsz: int, batch: int, device: Any, half: bool, export_dir: Path | None
) -> Path:
    """`weights` exported for `backend` through Ultralytics' exporter into `export_dir`, never beside the user's
    weights; an export made before with the same file and options is reused. `imgsz` is rounded to the stride as the
    detector does; `batch` is the largest an engine must take (TensorRT's profile is fixed at export); `device` a
    torch.device (`labeling_device`)."""
    from ultralytics import YOLO

    imgsz = _round_to_stride(imgsz)
    if backend == "tensorrt" and device.type != "cuda":
        raise YolosslError("--backend tensorrt needs a CUDA device (--device 0)")
    # fp16 ONNX only where ONNX Runtime runs it on the GPU: its CPU provider would run fp16 kernels, slowly
    half = half and (backend != "onnxruntime" or _onnxruntime_on_cuda())
    digest = hashlib.sha1(weights.read_bytes()).hexdigest()[:8]  # a re-trained file of the same name re-exports
    name = f"{weights.stem}-{digest}-{backend}-{imgsz}-b{batch}{'-fp16' if half else ''}"
    target_dir = (export_dir or Path("runs/export")) / name
    exported = target_dir / f"{weights.stem}{_EXPORT_SUFFIX[BACKENDS[backend]]}"
    if exported.exists():
        return exported
    if backend == "tensorrt":
        require_tensorrt_exporter()
    target_dir.mkdir(parents=True, exist_ok=True)
    local = target_dir / weights.name
    shutil.copyfile(weights, local)
    try:
        path = YOLO(str(local)).export(
            format=BACKENDS[backend],
            imgsz=imgsz,
            dynamic=True,
            batch=batch,
            half=half,
            device="cpu" if device.type == "cpu" else str(device.index or 0),
            verbose=False,
        )
    except ImportError as e:
        raise YolosslError(f"--backend {backend} needs its exporter and runtime: {_INSTALL[backend]} ({e})") from e
    return Path(path)


def is_exported(weights: Path, backend: str) -> bool:
    """Whether `weights` is already a model exported for `backend` (a .onnx, .engine or OpenVINO folder)."""
    fmt = BACKENDS.get(backend)
    return fmt is not None and weights.name.endswith(_EXPORT_SUFFIX[fmt]) and weights.exists()


def _named_weights(weights: Path) -> Path:
    """A released Ultralytics weight named without a folder (`yolo11n.pt`) and not here: downloaded
    as the cycle does it, or one error saying the download failed and what to pass instead."""
    if weights.parent != Path(".") or weights.suffix != ".pt":
        raise YolosslError(f"{weights}: model weights not found (labeling reads a local .pt file; pass its path)")
    from yolossl.models import load_model

    return Path(load_model(weights).ckpt_path)


def _input_layout(model: Any) -> Any:
    """The memory layout a loaded model computes in: channels-last where Ultralytics converted the
    PyTorch model to it (CPU), plain NCHW for everything else (CUDA, exported runtimes)."""
    import torch

    module = getattr(getattr(model, "backend", None), "model", None)
    if isinstance(module, torch.nn.Module):
        kernels = (p for p in module.parameters() if p.dim() == 4 and p.shape[-1] > 1)
        first = next(kernels, None)
        if first is not None and not first.is_contiguous() and first.is_contiguous(memory_format=torch.channels_last):
            return torch.channels_last
    return torch.contiguous_format


def _input_dtype(model: Any) -> Any:
    """The input precision a loaded model was built for: Ultralytics' backend says (`fp16`, read from a TensorRT
    engine's or an ONNX graph's input type, or the PyTorch model it halved). AutoBackend only ever casts to half, so
    an fp16 batch fed to an fp32 engine would be read as fp32 garbage."""
    import torch

    return torch.float16 if getattr(model, "fp16", False) else torch.float32


def require_tensorrt_exporter() -> None:
    """Ultralytics' TensorRT export goes through ONNX: `onnx` and `onnxslim` too, which `YOLO_AUTOINSTALL=false` (set
    by the CLI) keeps it from fetching. All three checked before anything is exported, in one line."""
    import importlib.util

    missing = [name for name in ("tensorrt", "onnx", "onnxslim") if importlib.util.find_spec(name) is None]
    if missing:
        raise YolosslError(f"--backend tensorrt needs {', '.join(missing)}: {_INSTALL['tensorrt']}")


def _onnxruntime_on_cuda() -> bool:
    try:
        import onnxruntime
    except ImportError:
        return False  # the load that follows says how to install it
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def _round_to_stride(size: int, stride: int = 32) -> int:
    return max(stride, round(size / stride) * stride)


def _default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 2)))


def _prefetch(
    batches: list[Sequence[ImageItem]], imgsz: int, keep_images: bool, workers: int, ahead: int = 2
) -> Iterator[tuple[Sequence[ImageItem], list[Loaded]]]:
    """Decode and letterbox up to `ahead` batches beyond the one being consumed, in a thread pool."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="yolossl-decode") as pool:
        pending: deque[list[Future[Loaded]]] = deque()
        submitted = 0
        while submitted < len(batches) and len(pending) <= ahead:
            pending.append([pool.submit(load_letterboxed, it.path, imgsz, keep_images) for it in batches[submitted]])
            submitted += 1
        for chunk in batches:
            futures = pending.popleft()
            if submitted < len(batches):
                pending.append(
                    [pool.submit(load_letterboxed, it.path, imgsz, keep_images) for it in batches[submitted]]
                )
                submitted += 1
            yield chunk, [f.result() for f in futures]
