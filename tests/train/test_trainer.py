"""`PseudoAwareTrainer` on a tiny round dataset: its pseudo images carry their targets into the loss it installs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from yolossl.data import ImageItem, load_data_yaml, scan_image_folders
from yolossl.errors import YolosslError
from yolossl.merge import build_round_dataset, mirror_split
from yolossl.train.targets import (
    DATA_KEY,
    IGNORE,
    KIND_STRIDE,
    PSEUDO_AREA,
    PSEUDO_BOX,
    PSEUDO_CLASS_ONLY,
    ImageTargets,
    LossRules,
    PseudoTargets,
    load_pseudo_targets,
)


def _round_dataset(tiny_dataset: Path, run: Path, kept_per_image: int = 2) -> tuple[Path, list[str]]:
    """Round 1 of a run: the tiny labeled split plus 3 pool images, each with kept boxes and one ignore region."""
    spec = load_data_yaml(tiny_dataset / "data.yaml")
    val = mirror_split(spec.val_items(), run / "val", len(spec.names))
    pool = scan_image_folders([str(tiny_dataset / "unlabeled")]).images[:3]
    (run / "pseudo").mkdir(parents=True)
    pseudo, images = [], {}
    for k, item in enumerate(pool):
        kept = [(c % 3, 0.5 + 0.2 * c, 0.25 + 0.5 * c, 0.5, 0.2, 0.2) for c in range(kept_per_image)]
        label = run / "pseudo" / f"{item.id}.txt"
        label.write_text("".join(f"{int(c)} {x} {y} {w} {h}\n" for c, _, x, y, w, h in kept))
        pseudo.append(ImageItem(item.id, item.path, label))
        images[item.id] = ImageTargets(kept, [(0.5, 0.2 + 0.1 * k, 0.2, 0.2)])
    targets = PseudoTargets(LossRules(lambda_u=0.5, box_min_score=0.6, no_threshold_classes=(2,)), images)
    built = build_round_dataset(run / "round_1", spec.train_items(), pseudo, val, spec.names, pseudo_targets=targets)
    return built.data_yaml, [item.id for item in pool]


def test_the_round_dataset_names_its_pseudo_targets(tiny_dataset: Path, tmp_path: Path) -> None:
    data_yaml, ids = _round_dataset(tiny_dataset, tmp_path / "run")
    named = Path(yaml.safe_load(data_yaml.read_text())[DATA_KEY])
    assert named == (tmp_path / "run" / "round_1" / "pseudo_targets.json").resolve()
    targets = load_pseudo_targets(named)
    assert sorted(targets.images) == sorted(ids)
    assert targets.images_dir == str((tmp_path / "run" / "round_1" / "dataset" / "images" / "pseudo").resolve())
    assert targets.rules == LossRules(lambda_u=0.5, box_min_score=0.6, no_threshold_classes=(2,))


def test_the_trainer_trains_with_the_pseudo_aware_loss(tiny_dataset: Path, tmp_path: Path) -> None:
    """One epoch: the training set's pseudo images are kind-coded, the training model's loss is ours, the EMA's not."""
    from ultralytics.utils.torch_utils import unwrap_model

    from yolossl.train.loss import PseudoAwareLoss
    from yolossl.train.trainer import PseudoAwareTrainer

    data_yaml, ids = _round_dataset(tiny_dataset, tmp_path / "run")
    seen = {}

    def capture(trainer) -> None:
        seen["criterion"] = unwrap_model(trainer.model).criterion
        seen["ema_criterion"] = getattr(trainer.ema.ema, "criterion", None)
        seen["labels"] = {
            Path(lb["im_file"]).stem: lb["cls"][:, 0].tolist() for lb in trainer.train_loader.dataset.labels
        }
        seen["loss_names"] = trainer.loss_names

    args = dict(model="yolo11n.yaml", data=str(data_yaml), epochs=1, imgsz=64, batch=8, device="cpu", workers=0)
    # mosaic on: the kinds ride Ultralytics' mosaic and affine augmentation with their boxes
    overrides = {**args, "close_mosaic": 0, "plots": False, "project": str(tmp_path / "t"), "name": "a"}
    trainer = PseudoAwareTrainer(overrides=overrides)
    trainer.add_callback("on_train_epoch_end", capture)
    trainer.train()

    assert isinstance(seen["criterion"], PseudoAwareLoss) and seen["criterion"].lambda_u == 0.5
    assert not isinstance(seen["ema_criterion"], PseudoAwareLoss)  # validation keeps Ultralytics' loss
    assert seen["loss_names"] == ("box_loss", "cls_loss", "dfl_loss")
    # scored 0.5 (< 0.6: class only) and 0.7 (box too), one ignore region, the image's extent
    codes = [
        PSEUDO_CLASS_ONLY * KIND_STRIDE,
        PSEUDO_BOX * KIND_STRIDE + 1,
        IGNORE * KIND_STRIDE,
        PSEUDO_AREA * KIND_STRIDE,
    ]
    assert all(seen["labels"][i] == codes for i in ids)
    human = [v for k, v in seen["labels"].items() if k not in ids]
    assert human and all(c < KIND_STRIDE for codes in human for c in codes)
    assert (tmp_path / "t" / "a" / "weights" / "best.pt").is_file()


def test_a_stale_pseudo_targets_file_is_one_line(tiny_dataset: Path, tmp_path: Path) -> None:
    """The label files and the targets disagree (another build's file): refused, naming both."""
    from yolossl.train.trainer import PseudoAwareTrainer

    data_yaml, ids = _round_dataset(tiny_dataset, tmp_path / "run")
    label = tmp_path / "run" / "round_1" / "dataset" / "labels" / "pseudo" / f"{ids[0]}.txt"
    label.write_text(label.read_text().splitlines()[0] + "\n")
    args = dict(model="yolo11n.yaml", data=str(data_yaml), epochs=1, imgsz=64, batch=8, device="cpu", workers=0)
    trainer = PseudoAwareTrainer(overrides={**args, "plots": False, "project": str(tmp_path / "t"), "name": "b"})
    with pytest.raises(
        YolosslError, match=rf"pseudo_targets.json: '{ids[0]}' has 2 kept boxes here but 1 in its label"
    ):
        trainer.train()


def test_train_detector_picks_the_trainer_from_the_loss_and_the_ema(tmp_path: Path, monkeypatch) -> None:
    from ultralytics import YOLO

    from yolossl.train import TrainSettings, train_detector
    from yolossl.train.ema import FittedEmaTrainer
    from yolossl.train.trainer import PseudoAwareTrainer

    seen: list[dict] = []

    def fake_train(self, **kwargs):
        seen.append(kwargs)
        weights = Path(kwargs["project"]) / kwargs["name"] / "weights" / "best.pt"
        weights.parent.mkdir(parents=True, exist_ok=True)
        weights.write_bytes(b"weights")
        return type("Results", (), {"box": type("Box", (), {"map50": 0.5, "map": 0.3, "mp": 0.6, "mr": 0.4})})()

    monkeypatch.setattr(YOLO, "train", fake_train)
    choices = [("ultralytics", "ultralytics"), ("ultralytics", "fitted"), ("pseudo-aware", "fitted")]
    for loss, ema in choices:
        settings = TrainSettings(epochs=1, imgsz=64, batch=8, device="cpu", loss=loss, ema=ema)
        train_detector("yolo11n.yaml", tmp_path / "data.yaml", tmp_path / f"{loss}-{ema}", settings)
    assert "trainer" not in seen[0]  # Ultralytics' trainer as it ships
    assert seen[1]["trainer"] is FittedEmaTrainer and seen[2]["trainer"] is PseudoAwareTrainer
    assert issubclass(PseudoAwareTrainer, FittedEmaTrainer)
    # Ultralytics' multi-GPU launch re-imports the trainer class by module and name in each worker
    assert FittedEmaTrainer.__module__ == "yolossl.train.ema"
    for (loss, ema), kwargs in zip(choices[1:], seen[1:], strict=True):
        assert {k: v for k, v in kwargs.items() if k != "trainer"} == {
            **seen[0],
            "project": str(tmp_path.resolve()),
            "name": f"{loss}-{ema}",
        }


def test_an_end_to_end_head_is_refused_before_training(tmp_path: Path) -> None:
    from yolossl.train import TrainSettings, train_detector

    settings = TrainSettings(epochs=1, imgsz=64, batch=8, device="cpu", loss="pseudo-aware")
    with pytest.raises(YolosslError, match=r"^yolo26n.yaml: the pseudo-aware loss supports YOLOv8/YOLO11-style"):
        train_detector("yolo26n.yaml", tmp_path / "data.yaml", tmp_path / "t", settings)


def test_an_unknown_loss_is_one_line() -> None:
    from yolossl.train import TrainSettings

    with pytest.raises(YolosslError, match=r"^loss must be one of ultralytics, pseudo-aware, got 'soft'$"):
        TrainSettings(epochs=1, imgsz=64, batch=8, device="cpu", loss="soft")
