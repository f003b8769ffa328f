"""The two views of FixMatch, built with albumentations.

Weak: a flip and a small shift: the view whose confident prediction becomes the pseudo-label.
Strong: two RandAugment-style operations at random strength (FixMatch's pool: contrast, colour,
equalize, posterize, solarize, sharpness, rotate, shear, translate), then cutout: the view
trained toward it, so the model must recognise the object through heavy distortion.
"""

from __future__ import annotations

import albumentations as A
import numpy as np
import torch

from yolossl.images import GREY


def weak_view(seed: int | None = None) -> A.Compose:
    return A.Compose(
        [A.HorizontalFlip(p=0.5), A.Affine(translate_percent=(-0.125, 0.125), p=1.0, fill=GREY)], seed=seed
    )


def strong_view(seed: int | None = None) -> A.Compose:
    operations = [
        A.RandomBrightnessContrast(brightness_limit=0.4, contrast_limit=0.4, p=1.0),
        A.HueSaturationValue(hue_shift_limit=30, sat_shift_limit=40, val_shift_limit=30, p=1.0),
        A.Equalize(p=1.0),
        A.Posterize(num_bits=(3, 6), p=1.0),
        A.Solarize(threshold_range=(0.5, 1.0), p=1.0),
        A.Sharpen(p=1.0),
        A.Affine(rotate=(-30, 30), p=1.0, fill=GREY),
        A.Affine(shear=(-20, 20), p=1.0, fill=GREY),
        A.Affine(translate_percent=(-0.2, 0.2), p=1.0, fill=GREY),
    ]
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.SomeOf(operations, n=2, p=1.0),
            A.CoarseDropout(
                num_holes_range=(1, 1), hole_height_range=(0.25, 0.5), hole_width_range=(0.25, 0.5), fill=GREY, p=1.0
            ),
        ],
        seed=seed,
    )


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 BGR -> (N, 3, H, W) float RGB in 0..1."""
    return torch.from_numpy(np.ascontiguousarray(crops[..., ::-1])).permute(0, 3, 1, 2).float().div_(255)


def views(crops: np.ndarray, transform: A.Compose) -> torch.Tensor:
    return to_tensor(np.stack([transform(image=c)["image"] for c in crops]))
