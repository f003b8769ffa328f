"""Process-wide set-up, kept apart from training: offline Ultralytics, the allocator, fonts, torch threads, devices.

Everything here changes or reads the state of the whole process (environment variables, glibc's
allocator, torch's thread pool, files in Ultralytics' config folder): the CLI and the benchmarks
call `set_up_process()` once, first; importing yolossl never does.

    >>> set_up_process()          # before the first `import ultralytics`
    >>> resolve_device(None)      # '0' with CUDA, else 'cpu'
"""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from yolossl.errors import YolosslError

if TYPE_CHECKING:
    import torch

OFFLINE_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}


def set_up_process() -> None:
    """Set this process up for yolossl: Ultralytics offline, freed memory kept for reuse, torch on every core.

    Call before the first `import ultralytics` (the CLI and the benchmarks do). It changes process-wide
    state, which is why importing yolossl never does: YOLO_OFFLINE=1 and YOLO_AUTOINSTALL=false (no
    network probe, telemetry or pip install at run time; values the user set win; named weights
    still download where the network allows it), glibc's allocator tuned (`reuse_freed_memory`), and
    torch imported first.

    Torch is imported here, first: `import ultralytics` sets OMP_NUM_THREADS=1 when it is unset
    (meant for its training dataloaders), and a torch imported after that runs labeling and the
    FixMatch head on one core. Ultralytics' trainer still picks its own thread count. Freed memory
    is kept for reuse (`reuse_freed_memory`).
    """
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    reuse_freed_memory()
    import torch  # noqa: F401  (its thread pool is sized from the environment as the user left it)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt() parameters
_KEEP_BELOW = 1 << 30
_ALLOCATOR_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD")


def reuse_freed_memory() -> bool:
    """Keep the large buffers torch and OpenCV free for the next batch instead of returning them to the OS.

    glibc maps each buffer over 32 MiB (and, as it adapts, smaller ones) afresh and unmaps it on
    free, so every batch page-faults its tensors in again: 700-1000 faults per image when labeling
    at imgsz 256 on CPU, 8% of `yolossl label`'s images/s in benchmarks/label_speed.py. The cost:
    up to 1 GiB of freed memory stays with the process until it exits. glibc only; an allocator
    the user chose (LD_PRELOAD, MALLOC_* or GLIBC_TUNABLES) is left alone. Returns whether it took
    effect.
    """
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc" or any(os.environ.get(k) for k in _ALLOCATOR_ENV):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # Older glibc refuses an mmap threshold above 32 MiB: take that rather than nothing.
    mapped = libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BELOW) == 1 or libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1
    return mapped and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BELOW) == 1


def ensure_fonts() -> None:
    """Put a font where Ultralytics looks first, so dataset checks never try to download Arial.

    Ultralytics calls `check_font('Arial.ttf')` on every dataset check, and downloads the font
    into its config dir when missing: offline that is a failed request each time. We copy
    matplotlib's bundled DejaVuSans there instead, which is all it is used for (plot labels).
    """
    from matplotlib import get_data_path
    from ultralytics.utils import USER_CONFIG_DIR

    source = Path(get_data_path()) / "fonts/ttf/DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = Path(USER_CONFIG_DIR) / name
        if not target.exists() and source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)


def resolve_device(device: str | None) -> str:
    """The device string to give Ultralytics: as asked (checked: `check_device`), else the first CUDA GPU, else the
    CPU."""
    import torch

    if device not in (None, ""):
        check_device(str(device))
        return str(device)
    return "0" if torch.cuda.is_available() else "cpu"


def check_device(device: str) -> None:
    """Refuse, in one line naming what was typed, a device this machine does not have.

    Ultralytics' own check comes at the first training, after a run folder exists, and names the device as it
    rewrote it ('cuda' becomes "Invalid CUDA 'device=0' requested").
    """
    import torch

    text = device.strip().lower().replace("cuda:", "").replace(" ", "")
    if text in ("cpu", ""):
        return
    if text in ("mps", "mps:0"):
        if not torch.backends.mps.is_available():
            raise YolosslError(f"--device {device}: MPS is not available on this machine; use --device cpu")
        return
    ids = text.split(",")
    if text != "cuda" and not all(i.lstrip("-").isdigit() for i in ids):
        raise YolosslError(f"--device {device}: not a device (cpu, mps, cuda, 0, 0,1, cuda:0)")
    if not torch.cuda.is_available():
        raise YolosslError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    count = torch.cuda.device_count()
    missing = [i for i in ids if i.isdigit() and int(i) >= count]
    if missing:
        raise YolosslError(f"--device {device}: this machine has {count} CUDA device(s), 0..{count - 1}")


def torch_device(device: str) -> torch.device:
    """The torch device of the first of Ultralytics' device strings: 'cpu', 'mps', '0', '0,1', 'cuda', 'cuda:1'.

    For code that places tensors itself (the FixMatch head): Ultralytics' `select_device` also sets
    CUDA_VISIBLE_DEVICES for the whole process, which this must not.
    """
    import torch

    first = str(device).split(",")[0].strip().lower() or "cpu"
    if first.isdigit():
        return torch.device("cuda", int(first))
    if first == "cuda":
        return torch.device("cuda", 0)
    try:
        return torch.device(first)
    except RuntimeError as e:
        raise YolosslError(f"--device {device!r}: not a device (cpu, mps, 0, 0,1, cuda, cuda:0 ...)") from e


def describe_device(device: str) -> str:
    """'CPU' or 'CUDA:0 (NVIDIA H100 ...)': the line the cycle logs once at its start."""
    import torch

    if device == "cpu":
        return f"CPU ({torch.get_num_threads()} torch threads)"
    if not torch.cuda.is_available():  # mps (`check_device` refused CUDA devices without CUDA)
        return device.upper()
    ids = [d.strip() for d in device.split(",") if d.strip()]
    names = [f"CUDA:{i} ({torch.cuda.get_device_name(int(i))})" for i in ids if i.isdigit()]
    return ", ".join(names) or device


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Undo Ultralytics' thread choice on the way out.

    Its `select_device` sets torch to (cores - 1) threads, leaving one to dataloader workers: right
    while it trains, half the machine on 2 cores for whatever runs next in the process (labeling,
    the FixMatch head).
    """
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
