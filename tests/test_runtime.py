from __future__ import annotations

import pytest
import torch

from yolossl.errors import YolosslError
from yolossl.runtime import torch_device


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("cpu", "cpu"),
        ("0", "cuda:0"),
        ("1", "cuda:1"),
        ("0,1", "cuda:0"),
        ("cuda", "cuda:0"),
        ("cuda:0", "cuda:0"),
        ("cuda:1", "cuda:1"),
        (" CPU ", "cpu"),
        ("mps", "mps"),
    ],
)
def test_device_strings_parse_once_the_same_everywhere(given: str, expected: str) -> None:
    """Ultralytics' device strings as torch devices (the FixMatch head used to build 'cuda:cuda:0')."""
    assert torch_device(given) == torch.device(expected)


def test_a_device_that_is_none_is_one_line() -> None:
    with pytest.raises(YolosslError, match=r"--device 'gpu0': not a device"):
        torch_device("gpu0")


def test_the_multi_gpu_launch_can_import_cloudpickle() -> None:
    """Ultralytics' DDP launch pickles the trainer with cloudpickle, which only yolossl declares."""
    from importlib.metadata import requires

    import cloudpickle  # noqa: F401

    assert any(r.startswith("cloudpickle") for r in requires("yolossl"))
