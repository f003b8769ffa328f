from __future__ import annotations

import pytest

from yolossl.errors import YolosslError
from yolossl.label import LabelSettings
from yolossl.label.settings import FilterSettings, PredictSettings


def test_the_band_and_the_floor_are_resolved_once() -> None:
    assert (LabelSettings().uncertain_low, LabelSettings().min_conf) == (0.1, 0.05)
    low = LabelSettings(conf=0.03)  # the band shrinks to fit a low conf, and the floor with it
    assert (low.uncertain_low, low.min_conf) == (0.03, 0.03)
    with pytest.raises(YolosslError, match=r"need 0 < min_conf \(0.2\) <= uncertain_low \(0.1\)"):
        LabelSettings(min_conf=0.2)


def test_each_room_gets_its_half() -> None:
    settings = LabelSettings(conf=0.4, uncertain="keep", imgsz=96, batch=3, device="0", tta=True, engine="ray")
    assert settings.predict == PredictSettings(imgsz=96, batch=3, device="0", tta=True, min_conf=0.05)
    assert settings.filter == FilterSettings(conf=0.4, uncertain="keep", uncertain_low=0.1)
