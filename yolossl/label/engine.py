"""The detector engine: batched inference that keeps the model busy and memory flat.

Images are decoded and letterboxed in background threads, a few batches ahead of the model, and
each result is handed on as soon as its batch is done. The model is Ultralytics' `AutoBackend`,
so the same code runs PyTorch weights (FP16 on CUDA, channels-last on CPU) and models exported
by Ultralytics' exporter to ONNX Runtime, OpenVINO or TensorRT; boxes go through Ultralytics' own
NMS and `scale_boxes`. Test-time augmentation and ensembles add views (flip, smaller scale, other
models) that `fusion.fuse_detections` merges with weighted boxes fusion.

    >>> detector = Detector([Path("best.pt")], imgsz=640, device="0")
    >>> for frame in detector.run(pool.images, batch=32):
    ...     frame.detections.xyxy
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolossl._fs import NotARegularFile, special_file_kind
from yolossl.data import ImageItem
from yolossl.errors import YolosslError, first_line
from yolossl.label.settings import BACKENDS

logger = logging.getLogger(__name__)

_INSTALL = {
    "onnxruntime": "pip install 'yolossl[onnxruntime]'",
    "openvino": "pip install 'yolossl[openvino]'",
    "tensorrt": "pip install tensorrt (NVIDIA GPUs only)",
}
GREY = 114  # Ultralytics' letterbox grey: what its models see as "no content" (padding, masks, crops)
_TTA_SCALE = 0.83  # the smaller view of --tta, as in Ultralytics' own augmented inference


@dataclass(frozen=True)
class Detections:
    """Boxes of one image: corners in original-image pixels, scores, integer class ids."""

    xyxy: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.xyxy.shape != (n, 4) or self.classes.shape != (n,):
            raise ValueError(
                f"xyxy must be ({n}, 4) and classes ({n},), got {self.xyxy.shape} and {self.classes.shape}"
            )

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64))

    def select(self, mask: np.ndarray) -> Detections:
        return Detections(self.xyxy[mask], self.scores[mask], self.classes[mask])

    def xywhn(self, shape: tuple[int, int]) -> np.ndarray:
        """Normalised centre-size boxes (YOLO label format) for an image of `shape` (h, w)."""
        h, w = shape[:2]
        x1, y1, x2, y2 = self.xyxy.T
        return np.stack([(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h], axis=1)


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
    ) -> None:
        if not weights:
            raise YolosslError("no model given: pass --model best.pt (repeatable for an ensemble)")
        if backend not in BACKENDS:
            raise YolosslError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        import torch
        import torchvision  # noqa: F401  Ultralytics' NMS runs torchvision's C++ kernel only once it is imported
        from ultralytics.utils.torch_utils import select_device

        self.imgsz = _round_to_stride(imgsz)
        self.conf, self.iou, self.max_det, self.tta = conf, iou, max_det, tta
        from yolossl.runtime import torch_threads_kept

        with torch_threads_kept():  # labeling decodes in a light thread and wants every core for the model
            self.device = select_device(str(device).split(",")[0], verbose=False)
        self.half = self.device.type == "cuda" if half is None else half
        self.models = [self._load(Path(w), backend, export_dir) for w in weights]
        self._layouts = [_input_layout(m) for m in self.models]
        names = [dict(m.names) for m in self.models]
        if any(n != names[0] for n in names[1:]):
            raise YolosslError("ensemble models must have the same classes in the same order")
        self.names: dict[int, str] = {int(k): str(v) for k, v in names[0].items()}
        self._torch = torch

    def _load(self, weights: Path, backend: str, export_dir: Path | None) -> Any:
        from ultralytics.nn.autobackend import AutoBackend

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
        return model

    def _export(self, weights: Path, backend: str, export_dir: Path | None) -> Path:
        """Export through Ultralytics' exporter into `export_dir`, never beside the user's weights."""
        from ultralytics import YOLO

        if backend == "tensorrt" and self.device.type != "cuda":
            raise YolosslError("--backend tensorrt needs a CUDA device (--device 0)")
        digest = hashlib.sha1(weights.read_bytes()).hexdigest()[:8]  # a re-trained file of the same name re-exports
        target_dir = (export_dir or Path("runs/export")) / f"{weights.stem}-{digest}-{backend}-{self.imgsz}"
        fmt = BACKENDS[backend]
        suffix = {"onnx": ".onnx", "engine": ".engine", "openvino": "_openvino_model"}[fmt]
        exported = target_dir / f"{weights.stem}{suffix}"
        if exported.exists():
            return exported
        target_dir.mkdir(parents=True, exist_ok=True)
        local = target_dir / weights.name
        shutil.copyfile(weights, local)
        device = "cpu" if self.device.type == "cpu" else str(self.device.index or 0)
        try:
            path = YOLO(str(local)).export(
                format=fmt, imgsz=self.imgsz, dynamic=True, half=self.half, device=device, verbose=False
            )
        except ImportError as e:
            raise YolosslError(f"--backend {backend} needs its exporter and runtime: {_INSTALL[backend]} ({e})") from e
        return Path(path)

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
        """Letterboxed RGB (H, W, 3) uint8 images to the model's input: NCHW, 0-1, FP16 where the model is.

        The batch stays in the decoders' channels-last memory (a permuted view, not a copy): that
        is the layout Ultralytics runs PyTorch models in on CPU, so the first convolution need not
        convert it. `_detect` makes it contiguous for models that want NCHW.
        """
        x = self._torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2)
        return (x.half() if self.half else x.float()).div_(255)

    def _detect(self, tensor: Any, shapes: list[tuple[int, int]]) -> list[Detections]:
        """Every view of every model, NMS'd, mapped back to original pixels, fused when there are several."""
        from ultralytics.utils import nms, ops

        per_image: list[list[Detections]] = [[] for _ in shapes]
        size = tensor.shape[2:]
        with self._torch.inference_mode():
            for model, layout in zip(self.models, self._layouts, strict=True):
                for view, undo in self._views(tensor):
                    raw = model(view.contiguous(memory_format=layout))  # a no-op where the layouts agree
                    kept = nms.non_max_suppression(
                        raw, self.conf, self.iou, max_det=self.max_det, end2end=getattr(model, "end2end", False)
                    )
                    for i, boxes in enumerate(kept):
                        boxes = boxes[:, :6].float()
                        boxes[:, :4] = undo(boxes[:, :4])
                        boxes[:, :4] = ops.scale_boxes(size, boxes[:, :4], shapes[i])
                        out = boxes.cpu().numpy().astype(np.float64)
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


def _named_weights(weights: Path) -> Path:
    """A released Ultralytics weight named without a folder (`yolo11n.pt`) and not here: downloaded
    as the cycle does it, or one error saying the download failed and what to pass instead."""
    if weights.parent != Path(".") or weights.suffix != ".pt":
        raise YolosslError(f"{weights}: model weights not found (labeling reads a local .pt file; pass its path)")
    from yolossl.train import load_model

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


def _round_to_stride(size: int, stride: int = 32) -> int:
    return max(stride, round(size / stride) * stride)


def _default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 2)))


Loaded = tuple[np.ndarray | None, np.ndarray | None, tuple[int, int]]


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


def load_letterboxed(path: Path, imgsz: int, keep_original: bool = False) -> Loaded:
    """(original or None, letterboxed square as the model takes it or None if unreadable, decoded (h, w)).

    The square is RGB (imgsz, imgsz, 3) uint8, ready to stack into a channels-last batch.
    """
    image = read_image(path, imgsz)
    if image is None:
        return None, None, (0, 0)
    h, w = image.shape[:2]
    return (image if keep_original else None), to_rgb(letterbox(image, imgsz)), (h, w)


def to_rgb(boxed: np.ndarray) -> np.ndarray:
    """The letterboxed BGR square as RGB, the channel order Ultralytics models take (a new array:
    the letterboxed one may be the decoded original, which writers still need in BGR)."""
    return cv2.cvtColor(boxed, cv2.COLOR_BGR2RGB)


def read_image(path: Path, imgsz: int | None = None) -> np.ndarray | None:
    """BGR uint8 like Ultralytics' loaders read it (EXIF orientation applied), or None if not an image.

    With `imgsz`, an image far larger than the model's input (a 12000x9000 archive scan, say) is
    decoded at 1/2, 1/4 or 1/8 scale, which JPEG decoders do almost for free: memory stays bounded
    and nothing the model could see is lost. Boxes are normalised, so labels do not change. An
    image whose header says it would decode past MAX_DECODED_PIXELS is not decoded at all.
    """
    try:
        data = _read_file(path)
    except (OSError, NotARegularFile):
        return None
    if not data.size or _truncated_jpeg(data):
        return None
    header = image_header(data)
    scale = 1
    if header is not None:
        fitting = decode_scale(header)
        if fitting is None:
            return None
        scale = max(fitting, _scale_for_model(header, imgsz) if imgsz else 1)
    image = cv2.imdecode(data, _REDUCED[scale])
    return image if image is not None and image.size else None


def _read_file(path: Path) -> np.ndarray:
    """The file's bytes, refusing a FIFO, socket or device first: reading a FIFO waits for a writer forever."""
    kind = special_file_kind(path)
    if kind is not None:
        raise NotARegularFile(path, kind)
    return np.fromfile(path, dtype=np.uint8)


def _truncated_jpeg(data: np.ndarray) -> bool:
    """A JPEG cut short (start marker, but no end marker near its end): OpenCV would decode a grey-padded half."""
    return bytes(data[:2]) == b"\xff\xd8" and b"\xff\xd9" not in bytes(data[-1024:])


def why_unreadable(path: Path) -> str:
    """A short reason for the warning about an image that `read_image` could not read."""
    try:
        data = _read_file(path)
    except NotARegularFile as e:
        return f"not a regular file ({e.kind})"
    except PermissionError:
        return "no permission to read it"
    except OSError as e:
        return e.strerror or "cannot be opened"
    if not data.size:
        return "empty file (0 bytes)"
    if _truncated_jpeg(data):
        return "truncated JPEG (no end marker)"
    header = image_header(data)
    if header is not None and decode_scale(header) is None:
        fmt, width, height = header
        return f"{width}x{height} {fmt}, more than the {MAX_DECODED_PIXELS} pixels (8192x8192) an image may decode to"
    return "not an image (OpenCV cannot decode it)"


MAX_DECODED_PIXELS = 1 << 26
"""8192x8192: the most pixels an image is decoded to, 192 MiB in BGR, in each decoding thread.

Every JPEG fits, decoded at 1/2 to 1/8 scale (the largest possible, 65535x65535, is 67.1 M pixels
at 1/8). PNG, TIFF, BMP and WebP decoders cannot scale: past this they are skipped, since a 389 KB
PNG of 20000x20000 would otherwise take 1.2 GB in each of the labeling threads at once."""

_REDUCED = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}

# Formats Pillow reads natively, by their first bytes: their size is known before anything is decoded.
_HEADER_FORMATS = (
    (b"\xff\xd8", "JPEG"),
    (b"\x89PNG", "PNG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"RIFF", "WEBP"),
)


def image_header(data: bytes | np.ndarray) -> tuple[str, int, int] | None:
    """(format, width, height) read from the header alone; None for another format or a damaged header.

    Pillow's image classes are used directly: `Image.open` raises DecompressionBombError before
    telling a huge image's size, and with Ultralytics imported it is a patched version that looks
    for a HEIF plugin on a file it does not know (an ImportError where that is not installed).
    """
    start = bytes(data[:4])
    fmt = next((name for magic, name in _HEADER_FORMATS if start.startswith(magic)), None)
    if fmt is None:
        return None
    try:
        with _pillow_class(fmt)(io.BytesIO(data)) as header:
            width, height = header.size
    except Exception:  # Pillow's parsers raise SyntaxError, struct.error, OSError... on damaged bytes
        return None
    return fmt, width, height


def _pillow_class(fmt: str) -> Any:
    from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin

    return {
        "JPEG": JpegImagePlugin.JpegImageFile,
        "PNG": PngImagePlugin.PngImageFile,
        "BMP": BmpImagePlugin.BmpImageFile,
        "TIFF": TiffImagePlugin.TiffImageFile,
        "WEBP": WebPImagePlugin.WebPImageFile,
    }[fmt]


def decode_scale(header: tuple[str, int, int]) -> int | None:
    """The least of 1, 2, 4, 8 that decodes within MAX_DECODED_PIXELS (only JPEGs scale); None if none does."""
    fmt, width, height = header
    scales = (1, 2, 4, 8) if fmt == "JPEG" else (1,)
    return next((f for f in scales if width * height <= MAX_DECODED_PIXELS * f * f), None)


def _scale_for_model(header: tuple[str, int, int], imgsz: int) -> int:
    """The largest of 8, 4, 2 that keeps the long side at least twice `imgsz` (1 if none does)."""
    long_side = max(header[1:])
    return next((f for f in (8, 4, 2) if long_side / f >= 2 * imgsz), 1)


def letterbox(image: np.ndarray, imgsz: int) -> np.ndarray:
    """Resize keeping the aspect ratio and pad to a centred `imgsz` square: Ultralytics' own LetterBox,
    whose geometry `scale_boxes` inverts."""
    from ultralytics.data.augment import LetterBox

    return LetterBox(new_shape=(imgsz, imgsz), auto=False, center=True, padding_value=GREY)(image=image)
