"""A small convolutional classifier for object crops: builds offline, trains on a CPU in minutes."""

from __future__ import annotations

from torch import nn


def crop_classifier(n_classes: int, width: int = 16) -> nn.Module:
    """A single conv at full crop size, then three double-conv blocks (2w, 4w, 8w channels) each after a
    halving, global pooling and a linear layer: about 11 MFLOPs for a 32 px crop at width 16."""

    def conv(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    layers: list[nn.Module] = [*conv(3, width)]
    channels = width
    for _ in range(3):
        layers += [nn.MaxPool2d(2), *conv(channels, 2 * channels), *conv(2 * channels, 2 * channels)]
        channels *= 2
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(channels, n_classes)]
    return nn.Sequential(*layers)
