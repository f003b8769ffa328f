"""The online teacher: the strong view's box mapping, its batches and a tiny run end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from yolossl.errors import YolosslError
from yolossl.train.online_settings import ONLINE_KEY, OnlineSettings, load_online_settings, save_online_settings
from yolossl.train.targets import (
    IGNORE,
    KIND_STRIDE,
    PSEUDO_AREA,
    PSEUDO_BOX,
    PSEUDO_CLASS_ONLY,
    SOFT_KIND,
    LossRules,
    soft_code,
)
from yolossl.train.teacher import image_targets, kept_mask, student_targets
from yolossl.train.views import hflip_matrix, map_boxes, maps_in_view, strong_view, visible_share, warp


def _drawn_image(box: tuple[int, int, int, int], size: tuple[int, int] = (48, 64)) -> torch.Tensor:
    """A black (1, 3, h, w) image with one white rectangle at pixel corners `box` (x1, y1, x2, y2)."""
    image = torch.zeros(1, 3, *size)
    x1, y1, x2, y2 = box
    image[..., y1:y2, x1:x2] = 1.0
    return image


def _bright_box(image: torch.Tensor) -> list[int]:
    """The pixel-edge corners of the bright pixels of a (1, 3, h, w) image."""
    ys, xs = torch.nonzero(image[0, 0] > 0.5, as_tuple=True)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


@pytest.mark.parametrize(
    "matrix",
    [
        hflip_matrix(64),
        torch.tensor([[0.5, 0.0, 10.0], [0.0, 0.5, 6.0], [0.0, 0.0, 1.0]]),  # scale down and shift
        torch.tensor([[-1.0, 0.0, 60.0], [0.0, 1.0, -8.0], [0.0, 0.0, 1.0]]),  # mirror and shift up
    ],
    ids=["hflip", "scale-shift", "flip-shift"],
)
def test_teacher_boxes_land_on_the_object_in_the_strong_view(matrix: torch.Tensor) -> None:
    """A drawn rectangle, warped by a known matrix: the mapped box is where its pixels went, and maps back."""
    box = (8, 12, 28, 36)
    image = _drawn_image(box)
    warped = warp(image, matrix[None])
    mapped = map_boxes(torch.tensor([box], dtype=torch.float32), matrix, 64, 48)[0]
    assert mapped.tolist() == pytest.approx(_bright_box(warped), abs=1.0)
    back = map_boxes(mapped[None], torch.linalg.inv(matrix), 64, 48)[0]
    assert back.tolist() == pytest.approx(list(box), abs=1e-4)


def test_the_strong_view_moves_no_pixel_unless_mirrored() -> None:
    box = (8, 12, 28, 36)
    image = _drawn_image(box).repeat(8, 1, 1, 1) * 0.8
    generator = torch.Generator().manual_seed(0)
    strong, matrices = strong_view(image, generator, flip=0.0)
    assert torch.equal(matrices, torch.eye(3).repeat(8, 1, 1))
    assert not torch.allclose(strong, image, atol=0.05)  # perturbed ...
    for view in strong:  # ... but the object is where it was: inside brighter than outside, everywhere
        inside, outside = view[:, 12:36, 8:28], torch.cat([view[:, :, :8].flatten(), view[:, :, 28:].flatten()])
        assert inside.mean() > outside.mean() + 0.3
    strong, matrices = strong_view(image, torch.Generator().manual_seed(0), flip=1.0)
    assert torch.equal(matrices, hflip_matrix(64).repeat(8, 1, 1))
    for view, matrix in zip(strong, matrices, strict=True):
        x1, y1, x2, y2 = map_boxes(torch.tensor([box], dtype=torch.float32), matrix, 64, 48)[0].int().tolist()
        assert view[:, y1:y2, x1:x2].mean() > view.mean() + 0.2


def test_a_zoomed_and_shifted_strong_view_carries_the_boxes_along() -> None:
    """With scale and translate, every image gets its own zoom and shift, and the object is where its box went."""
    box = (20, 14, 40, 30)
    image = _drawn_image(box).repeat(16, 1, 1, 1) * 0.8
    strong, matrices = strong_view(image, torch.Generator().manual_seed(0), flip=0.5, scale=0.5, translate=0.1)
    zooms = matrices[:, 0, 0].abs()
    assert zooms.min() >= 0.5 and zooms.max() <= 1.5 and zooms.std() > 0.1  # 1 ± 0.5, drawn per image
    assert torch.equal(matrices[:, 1, 1], zooms)  # the same zoom both ways: no shear
    assert (matrices[:, 0, 0] < 0).any() and (matrices[:, 0, 0] > 0).any()  # some mirrored
    for view, matrix in zip(strong, matrices, strict=True):
        x1, y1, x2, y2 = map_boxes(torch.tensor([box], dtype=torch.float32), matrix, 64, 48)[0].round().int().tolist()
        inside = view[:, y1 + 1 : y2 - 1, x1 + 1 : x2 - 1]
        assert inside.mean() > view.mean() + 0.2


def test_visible_share_of_boxes_moved_out_of_view() -> None:
    boxes = torch.tensor([[8.0, 8.0, 24.0, 24.0], [40.0, 8.0, 56.0, 24.0]])
    shift = torch.tensor([[1.0, 0.0, 16.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # 16 px right, in a 64 px image
    assert visible_share(boxes, shift, 64, 48).tolist() == pytest.approx([1.0, 0.5])
    zoom = torch.tensor([[2.0, 0.0, -32.0], [0.0, 2.0, -24.0], [0.0, 0.0, 1.0]])  # 2x about the centre
    # each box is now 32 x 32: 16 of its 32 px wide and 24 of its 32 px high stay inside
    assert visible_share(boxes, zoom, 64, 48).tolist() == pytest.approx([0.5 * 0.75, 0.5 * 0.75])
    assert visible_share(boxes, shift @ shift, 64, 48).tolist() == pytest.approx([1.0, 0.0])  # 32 px right


def test_an_object_moved_mostly_out_of_view_is_an_ignore_region_not_a_target() -> None:
    boxes = torch.tensor(
        [
            [8.0, 8.0, 24.0, 24.0, 0.9, 0.0],  # stays in view: a target
            [36.0, 8.0, 60.0, 24.0, 0.9, 1.0],  # 16 px of its 24 leave the image: an ignore region
            [-8.0, 30.0, 8.0, 46.0, 0.9, 1.0],  # half outside the teacher's image already: its visible half stays
        ]
    )
    shift = torch.tensor([[1.0, 0.0, 20.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    targets = student_targets(boxes, torch.ones(3, dtype=torch.bool), shift, 64, 48)
    assert [t[0] for t in targets.kept] == [0, 1]
    assert targets.kept[0][2:] == pytest.approx(((16 + 20) / 64, 16 / 48, 16 / 64, 16 / 48))
    assert targets.kept[1][2:] == pytest.approx(((4 + 20) / 64, 38 / 48, 8 / 64, 16 / 48))
    assert targets.ignore == [pytest.approx(((56 + 64) / 2 / 64, 16 / 48, 8 / 64, 16 / 48))]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_the_strong_views_box_geometry_ignores_autocast(dtype: torch.dtype) -> None:
    """AMP wraps `preprocess_batch`: a 400x400 px box at imgsz 640 (area 160 000 > fp16's 65 504) must stay a target,
    at the same place, under autocast as without."""
    from yolossl.train.views import jitter_matrices

    boxes = torch.tensor([[100.0, 120.0, 500.0, 520.0, 0.9, 1.0], [13.3, 17.7, 61.1, 70.9, 0.8, 0.0]])
    kept = torch.ones(2, dtype=torch.bool)
    matrix = (jitter_matrices(1, 640, 640, 0.3, 0.1, torch.Generator().manual_seed(3)) @ hflip_matrix(640))[0]
    plain = student_targets(boxes, kept, matrix, 640, 640)
    with torch.autocast(device_type="cpu", dtype=dtype):
        under = student_targets(boxes, kept, matrix, 640, 640)
        share = visible_share(boxes[:, :4], matrix, 640, 640)
    assert len(plain.kept) == 2 and share.dtype == torch.float32 and bool((share > 0.5).all())
    assert under.kept == plain.kept and under.ignore == plain.ignore


def test_teacher_boxes_become_kind_coded_targets() -> None:
    """Above the class threshold: a target (box regression from the gate up); below it: unsure, a soft target at
    the teacher's score or an ignore region, as the rules say."""
    boxes = torch.tensor(
        [
            [0.0, 0.0, 32.0, 32.0, 0.9, 1.0],  # kept, regressed
            [32.0, 0.0, 64.0, 32.0, 0.5, 0.0],  # kept, class only
            [0.0, 32.0, 16.0, 48.0, 0.3, 0.0],  # under class 0's threshold: unsure
            [10.0, 10.0, 10.5, 20.0, 0.9, 1.0],  # less than a pixel wide: dropped
        ]
    )
    thresholds = torch.tensor([0.4, 0.6])
    kept = kept_mask(boxes, thresholds)
    assert kept.tolist() == [True, True, False, True]
    targets = image_targets(boxes, kept, 64, 48)
    assert targets.kept == [
        pytest.approx((1, 0.9, 0.25, 1 / 3, 0.5, 2 / 3)),
        pytest.approx((0, 0.5, 0.75, 1 / 3, 0.5, 2 / 3)),
    ]
    assert targets.unsure == [pytest.approx((0, 0.3, 0.125, 5 / 6, 0.25, 1 / 3))] and targets.ignore == []
    codes, _ = targets.encoded(LossRules(box_min_score=0.8))
    assert codes[:, 0].tolist() == [
        PSEUDO_BOX * KIND_STRIDE + 1,
        PSEUDO_CLASS_ONLY * KIND_STRIDE,
        IGNORE * KIND_STRIDE,
        PSEUDO_AREA * KIND_STRIDE,
    ]
    soft, _ = targets.encoded(LossRules(box_min_score=0.8, unsure="soft"))
    assert soft[2, 0] == (SOFT_KIND + 300) * KIND_STRIDE + 0 == soft_code(0, 0.3)
    assert all(float(np.float32(c)) == c for c in soft[:, 0].tolist())  # exact float32 integers


def test_a_box_the_strong_view_cuts_off_is_ignored_whatever_its_score() -> None:
    boxes = torch.tensor([[0.0, 0.0, 20.0, 20.0, 0.9, 1.0], [0.0, 30.0, 20.0, 50.0, 0.3, 0.0]])
    shift = torch.tensor([[1.0, 0.0, -15.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # 15 of 20 px leave the image
    targets = student_targets(boxes, torch.tensor([True, False]), shift, 64, 64)
    assert targets.kept == [] and targets.unsure == [] and len(targets.ignore) == 2


def test_online_settings_round_trip_and_damage(tmp_path: Path) -> None:
    settings = OnlineSettings(("a.jpg", "b.jpg"), LossRules(0.5, 0.7, (2,)), unlabeled_ratio=0.5, target_precision=0.8)
    save_online_settings(settings, tmp_path / "online.json")
    assert load_online_settings(tmp_path / "online.json") == settings
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(YolosslError, match=r"bad.json: not an online settings file written by yolossl \(KeyError"):
        load_online_settings(tmp_path / "bad.json")
    with pytest.raises(YolosslError, match=r"^unlabeled_ratio must be a number > 0, got 0"):
        OnlineSettings(("a.jpg",), unlabeled_ratio=0)


def _online_data_yaml(tiny_dataset: Path, run: Path, **options) -> Path:
    """The tiny labeled split (8 images) as a round dataset, its YAML naming an online.json over 8 pool images."""
    from yolossl.data import load_data_yaml, scan_image_folders
    from yolossl.merge import build_round_dataset, mirror_split

    spec = load_data_yaml(tiny_dataset / "data.yaml")
    val = mirror_split(spec.val_items(), run / "val", len(spec.names))
    data_yaml = build_round_dataset(run / "round_1", spec.train_items(), [], val, spec.names).data_yaml
    pool = tuple(str(item.path) for item in scan_image_folders([str(tiny_dataset / "unlabeled")]).images[:8])
    # a one-epoch model is never confident: a low conf gives the teacher boxes to keep
    values = {"conf": 0.002, "uncertain_low": 0.001, "rules": LossRules(lambda_u=0.5, box_min_score=0.0024), **options}
    save_online_settings(OnlineSettings(pool, **values), run / "round_1" / "online.json")
    meta = yaml.safe_load(data_yaml.read_text())
    data_yaml.write_text(yaml.safe_dump({**meta, ONLINE_KEY: str(run / "round_1" / "online.json")}))
    return data_yaml


def _watched_run(model: Path | str, data_yaml: Path, save_dir: Path, epochs: int) -> dict:
    """Train the online trainer on `data_yaml`, recording each batch and each step's loss keys."""
    from yolossl.train.online import OnlineTeacherTrainer

    seen: dict = {"keys": [], "batches": []}

    class Watched(OnlineTeacherTrainer):
        def preprocess_batch(self, batch):
            batch = super().preprocess_batch(batch)
            seen["batches"].append(
                {"n": len(batch["img"]), "n_l": batch["n_l"], "cls": batch["cls"].view(-1).tolist(),
                 "owner": batch["batch_idx"].view(-1).tolist(),
                 "dense": tuple(batch["teacher_scores"].shape) if "teacher_scores" in batch else None}
            )  # fmt: skip
            return batch

    def after_batch(trainer) -> None:
        seen["keys"].append(tuple(trainer.loss_items))

    overrides = dict(
        model=str(model), data=str(data_yaml), epochs=epochs, imgsz=64, batch=4, device="cpu", workers=0,
        plots=False, project=str(save_dir.parent), name=save_dir.name, exist_ok=True, val=True,
    )  # fmt: skip
    trainer = Watched(overrides=overrides)
    trainer.add_callback("on_train_batch_end", after_batch)
    trainer.train()
    seen["trainer"] = trainer
    return seen


def test_a_tiny_online_run_end_to_end(tiny_dataset: Path, tmp_path: Path, tiny_weights: Path, caplog) -> None:
    """2 epochs of 2 batches (4 labeled + 4 unlabeled): teacher targets on the appended half, same loss keys."""
    import logging

    data_yaml = _online_data_yaml(tiny_dataset, tmp_path / "run", burn_in_epochs=1)
    with caplog.at_level(logging.INFO, logger="yolossl"):
        seen = _watched_run(tiny_weights, data_yaml, tmp_path / "t" / "online", epochs=2)

    keys = {("box_loss", "cls_loss", "dfl_loss", "u_loss")}
    assert set(seen["keys"]) == keys and len(seen["keys"]) == 4  # every step, burn-in included
    burn_in, online = seen["batches"][:2], seen["batches"][2:]
    assert all(b["n"] == b["n_l"] == 4 for b in burn_in)  # epoch 1 (burn-in): labeled only
    for b in online:
        assert b["n"] == 8 and b["n_l"] == 4
        unlabeled = [(o, c) for o, c in zip(b["owner"], b["cls"], strict=True) if o >= 4]
        # every unlabeled image has its PSEUDO_AREA box, and its other boxes are teacher targets or ignore regions
        assert sorted({o for o, c in unlabeled if c == PSEUDO_AREA * KIND_STRIDE}) == [4, 5, 6, 7]
        assert {int(c) // KIND_STRIDE for o, c in unlabeled} <= {PSEUDO_BOX, PSEUDO_CLASS_ONLY, IGNORE, PSEUDO_AREA}
        assert all(c < KIND_STRIDE for o, c in zip(b["owner"], b["cls"], strict=True) if o < 4)  # humans' untouched
    assert any(int(c) // KIND_STRIDE in (PSEUDO_BOX, PSEUDO_CLASS_ONLY) for b in online for c in b["cls"])

    trainer = seen["trainer"]
    assert trainer.ema_schedule.target == 0.0  # 4 optimizer steps: the teacher follows the student
    assert trainer.ema.decay is trainer.ema_schedule  # not Ultralytics' 2000-update ramp
    assert (tmp_path / "t" / "online" / "weights" / "best.pt").is_file()
    log = [r.getMessage() for r in caplog.records if r.name == "yolossl.train.online"]
    epochs = [m for m in log if m.startswith("Online epoch")]
    assert (
        epochs[0] == "Online epoch 1/2: unlabeled loss 0.0000; teacher boxes kept per class: no boxes above the floor; "
        "unlabeled class loss per class (hard+soft): none"
    )
    assert epochs[1].startswith("Online epoch 2/2: unlabeled loss ") and "%)" in epochs[1]
    assert float(epochs[1].split("unlabeled loss ")[1].split(";")[0]) > 0


def test_without_its_settings_the_online_trainer_says_so(tiny_dataset: Path, tmp_path: Path) -> None:
    data_yaml = _online_data_yaml(tiny_dataset, tmp_path / "run")
    meta = yaml.safe_load(data_yaml.read_text())
    del meta[ONLINE_KEY]
    data_yaml.write_text(yaml.safe_dump(meta))
    with pytest.raises(YolosslError, match=r"data.yaml: no 'online' entry naming the online teacher's settings"):
        _watched_run("yolo11n.yaml", data_yaml, tmp_path / "t" / "x", epochs=1)


def test_thresholds_from_val_at_the_start_and_after_each_validation(
    tiny_dataset: Path, tmp_path: Path, tiny_weights: Path, caplog
) -> None:
    """With a target precision the teacher's thresholds are measured on val; classes out of reach get no
    background loss on the unlabeled images."""
    import logging

    data_yaml = _online_data_yaml(tiny_dataset, tmp_path / "run", target_precision=0.5)
    with caplog.at_level(logging.INFO, logger="yolossl"):
        seen = _watched_run(tiny_weights, data_yaml, tmp_path / "t" / "online", epochs=1)
    chosen = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Online teacher thresholds")]
    assert len(chosen) == 2  # before the first batch, and after the one validation
    assert all(m.startswith("Online teacher thresholds (precision >= 0.5 per class on val): circle ") for m in chosen)
    trainer = seen["trainer"]
    unreachable = torch.isinf(trainer.kept_thresholds_cpu)
    assert torch.equal(trainer.model.criterion.no_threshold, unreachable)


def _summary(run: Path) -> list[dict[str, str]]:
    import csv

    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in csv.DictReader((run / "summary.csv").open())]


def test_online_rounds_are_one_run_in_segments_each_ending_with_the_pool_labeled_and_merged(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rounds 2 x round_epochs 1: one online run of the offline rounds' steps (5 epochs over the 8 labeled images), in
    two rounds: epochs 1-2 and 3-5. Round 2 goes on from round 1's student, teacher, optimizer and epoch; each round
    ends with its teacher's labeling of the pool in round_k/pseudo/ and round_k/data.yaml, which Ultralytics trains on
    as it is."""
    import csv

    import torch
    from ultralytics import YOLO

    from tests.conftest import tiny_cycle_config
    from yolossl import run_cycle
    from yolossl.train import train_detector
    from yolossl.train.online import OnlineTeacherTrainer

    runs, continued = [], []

    def trainer(model, data_yaml, save_dir, settings, on_epoch):  # the real trainer, watched
        runs.append((settings.online, settings.epochs, ONLINE_KEY in yaml.safe_load(data_yaml.read_text())))
        return train_detector(model, data_yaml, save_dir, settings, on_epoch)

    original = OnlineTeacherTrainer._continue_run

    def continue_run(self, path):  # what the second round starts from
        original(self, path)
        saved = torch.load(path, weights_only=False)
        student = self.model.state_dict()
        same_student = all(torch.equal(student[k].cpu(), v) for k, v in saved["student"].items())
        teacher = self.ema.ema.state_dict()
        same_teacher = all(torch.equal(teacher[k].cpu(), v.cpu()) for k, v in saved["ema"].state_dict().items())
        continued.append((self.start_epoch, self.ema.updates == saved["updates"] > 0, same_student, same_teacher))

    monkeypatch.setattr(OnlineTeacherTrainer, "_continue_run", continue_run)
    # scores of a one-epoch model stay near 0.0025: below `conf` every box would be an ignore region (no loss)
    config = tiny_cycle_config(
        tiny_dataset,
        tmp_path,
        rounds=2,
        mode="online",
        lambda_u=0.5,
        unlabeled_ratio=0.5,
        burn_in_epochs=1,
        conf=0.002,
        uncertain_low=0.001,
        strong_scale=0.5,
        strong_translate=0.1,
        train_args={"nbs": 8},  # an optimizer step (and a teacher update) every batch
    )
    result = run_cycle(config, trainer=trainer)
    run = result.run_dir
    assert runs == [(False, 1, False), (True, 5, True), (True, 5, True)]  # each round a part of one 5-epoch run
    assert continued == [(2, True, True, True)]
    assert [r.index for r in result.rounds] == [0, 1, 2] and [r.epochs for r in result.rounds[1:]] == [2, 3]
    assert [r.labeled_repeat for r in result.rounds[1:]] == [1, 1]  # as the online run trained the labels
    assert result.rounds[1].trained_from == str(result.rounds[0].weights)
    assert result.rounds[2].trained_from == str(run / "round_1" / "train" / "weights" / "continue.pt")
    assert not (run / "round_2" / "train" / "weights" / "continue.pt").exists()  # the run's end: nothing follows

    first, second = (load_online_settings(run / f"round_{k}" / "online.json") for k in (1, 2))
    assert len(first.unlabeled) == 12 and first.unlabeled_ratio == 0.5 and first.rules.lambda_u == 0.5
    assert first.burn_in_epochs == 1 and (first.strong_scale, first.strong_translate) == (0.5, 0.1)
    assert (first.conf, first.target_precision, first.uncertain_low) == (0.002, None, 0.001)
    assert (first.continue_from, first.stop_epoch) == (None, 2)
    assert (second.continue_from, second.stop_epoch) == (result.rounds[2].trained_from, None)

    teacher = [list(csv.DictReader((run / f"round_{k}" / "train" / "teacher.csv").open())) for k in (1, 2)]
    assert [[r["epoch"] for r in rows] for rows in teacher] == [["1", "2"], ["3", "4", "5"]]  # the run counts on
    assert float(teacher[0][0]["u_loss"]) == 0 and float(teacher[0][1]["u_loss"]) > 0  # burn-in, then the teacher
    assert all(r[f"thr_{n}"] == "0.0020" for rows in teacher for r in rows for n in result.class_names)
    for k, rows in ((1, teacher[0]), (2, teacher[1])):  # the summary's teacher: the round's epochs added up
        kept = {n: sum(int(r[f"kept_{n}"]) for r in rows) for n in result.class_names}
        assert result.rounds[k].teacher.kept == kept and result.rounds[k].teacher.epochs == len(rows)

    for k in (1, 2):  # every round leaves its pseudo-labels and a merged dataset of them
        round_dir = run / f"round_{k}"
        assert len(list((round_dir / "pseudo" / "labels").glob("*.txt"))) == 12
        assert (round_dir / "pseudo" / "record.csv").is_file() and (round_dir / "pseudo" / "thresholds.json").is_file()
        merged = yaml.safe_load((round_dir / "data.yaml").read_text())
        assert ONLINE_KEY not in merged
        pseudo = list((Path(merged["path"]) / "images" / "pseudo").iterdir())
        assert len(pseudo) == result.rounds[k].pseudo_images > 0
    model = YOLO("yolo11n.yaml")
    model.train(
        data=str(run / "round_2" / "data.yaml"),
        epochs=1,
        imgsz=64,
        batch=8,
        device="cpu",
        workers=0,
        project=str(tmp_path / "yolo"),
        name="train",
        plots=False,
        val=False,
    )
    assert (tmp_path / "yolo" / "train" / "weights" / "last.pt").is_file()

    rows = _summary(run)
    assert [r["round"] for r in rows] == ["0", "1", "2"] and int(rows[2]["pseudo_boxes"]) == result.rounds[
        2
    ].pseudo_boxes
    assert rows[0]["teacher_kept_share"] == "" and 0 < float(rows[2]["teacher_kept_share"]) <= 1
    assert (run / "weights" / "best.pt").read_bytes() == result.best.weights.read_bytes()
    log = (run / "cycle.log").read_text()
    assert "Round 2: online teacher, epochs 3-5 of 5, from " in log and "Online epoch 5/5: unlabeled loss " in log
    assert "Online run: 5 epochs over the labeled images, the optimizer steps of 2 offline round(s) of " in log
    assert "Round 2 epoch 3/3 (run epoch 5/5)" in log and "u_loss" in log
    assert (run / "report.html").is_file() and "could not be written" not in log
    assert (run / "report_teacher_2.png").is_file() and "Online teacher per epoch, round 2" in (
        run / "report.html"
    ).read_text()


def test_one_online_round_as_before(tiny_dataset: Path, tmp_path: Path) -> None:
    """`--one-online-round`: the whole run is round 1, as online runs were before 6 Dec (and old runs resume so)."""
    from tests.conftest import tiny_cycle_config
    from yolossl import run_cycle

    config = tiny_cycle_config(
        tiny_dataset,
        tmp_path,
        rounds=2,
        mode="online",
        online_rounds=False,
        online_epochs=2,
        conf=0.002,
        uncertain_low=0.001,
    )
    result = run_cycle(config)
    assert [r.index for r in result.rounds] == [0, 1] and result.rounds[1].epochs == 2
    assert load_online_settings(result.run_dir / "round_1" / "online.json").stop_epoch is None
    assert len(list((result.run_dir / "round_1" / "pseudo" / "labels").glob("*.txt"))) == 12


def test_an_interrupted_online_round_resumes_from_its_last_finished_step(tiny_dataset: Path, tmp_path: Path) -> None:
    """Stopped in the online training, then in the labeling after it: each resume redoes only the step cut off."""
    from tests.conftest import tiny_cycle_config
    from yolossl import resume_cycle, run_cycle
    from yolossl.cycle import PoolLabeler
    from yolossl.cycle.inputs import read_inputs
    from yolossl.train import train_detector

    calls: list[str] = []

    def trainer(model, data_yaml, save_dir, settings, on_epoch):
        calls.append("online" if settings.online else "round 0")
        if settings.online and calls.count("online") == 1:
            raise KeyboardInterrupt("stopped in the online run")
        return train_detector(model, data_yaml, save_dir, settings, on_epoch)

    def labeler_stopping_once(run: Path):
        inputs = read_inputs(tiny_cycle_config(tiny_dataset, tmp_path, mode="online"), run / "config.yaml")
        real = PoolLabeler(inputs, "cpu")

        def label(index, weights, round_dir, advance):
            calls.append("label")
            if calls.count("label") == 1:
                raise KeyboardInterrupt("stopped in the labeling")
            return real(index, weights, round_dir, advance)

        return label

    config = tiny_cycle_config(tiny_dataset, tmp_path, mode="online")
    with pytest.raises(KeyboardInterrupt, match="online run"):
        run_cycle(config, trainer=trainer)
    run = tmp_path / "r"
    round_0 = (run / "round_0" / "train" / "weights" / "best.pt").stat().st_mtime_ns
    labeler = labeler_stopping_once(run)
    with pytest.raises(KeyboardInterrupt, match="labeling"):
        resume_cycle(run, trainer=trainer, labeler=labeler)
    online_weights = (run / "round_1" / "train" / "weights" / "best.pt").stat().st_mtime_ns
    result = resume_cycle(run, trainer=trainer, labeler=labeler)

    assert calls == ["round 0", "online", "online", "label", "label"]
    assert (run / "round_0" / "train" / "weights" / "best.pt").stat().st_mtime_ns == round_0
    assert (run / "round_1" / "train" / "weights" / "best.pt").stat().st_mtime_ns == online_weights
    assert [r.index for r in result.rounds] == [0, 1] and [r["round"] for r in _summary(run)] == ["0", "1"]
    assert len(list((run / "round_1" / "pseudo" / "labels").glob("*.txt"))) == 12


def test_the_mode_options_reach_the_config_and_are_checked(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from yolossl.cli import app
    from yolossl.config import resolve_config

    config = resolve_config({"mode": "online", "unlabeled_ratio": 0.5, "lambda_u": 2.0})
    assert (config.mode, config.unlabeled_ratio, config.loss_rules().lambda_u) == ("online", 0.5, 2.0)
    assert resolve_config({}).mode == "online"  # the default: the only mode above the labels alone on the bench
    assert resolve_config({"mode": "offline", "fixmatch": True}).fixmatch
    assert resolve_config({"fixmatch": True}).fixmatch  # online: the head reviews each round's labeling of the pool
    with pytest.raises(YolosslError, match=r"^mode must be one of offline, online, got 'both'$"):
        resolve_config({"mode": "both"})
    with pytest.raises(YolosslError, match=r"^from_scratch needs mode offline \(--mode offline\): "):
        resolve_config({"from_scratch": True})
    assert resolve_config({}).online_rounds and not resolve_config({"online_rounds": False}).online_rounds
    with pytest.raises(YolosslError, match=r"^unlabeled_ratio must be > 0, got 0.0$"):
        resolve_config({"unlabeled_ratio": 0.0})
    assert resolve_config({"mode": "online", "burn_in_epochs": 3}).burn_in_epochs == 3
    with pytest.raises(YolosslError, match=r"^burn_in_epochs must be >= 0, got -1$"):
        resolve_config({"burn_in_epochs": -1})
    assert resolve_config({"mode": "online", "online_epochs": 7}).online_epochs == 7
    assert resolve_config({"online_val": True}).online_val and not resolve_config({}).online_val
    with pytest.raises(YolosslError, match=r"^online_epochs must be >= 1, got 0$"):
        resolve_config({"online_epochs": 0})
    with pytest.raises(YolosslError, match=r"^strong_scale must be in \[0, 1\), got 1.0$"):
        resolve_config({"strong_scale": 1.0})
    with pytest.raises(YolosslError, match=r"^strong_translate must be in \[0, 0.5\], got -0.1$"):
        resolve_config({"strong_translate": -0.1})
    result = CliRunner().invoke(app, ["cycle", "--mode", "sideways", "--data", str(tmp_path / "none.yaml")])
    assert result.exit_code != 0 and "mode must be one of offline, online, got 'sideways'" in result.output


def test_the_online_run_takes_the_offline_rounds_optimizer_steps(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from yolossl.config import CycleConfig
    from yolossl.cycle.online import OnlineCycle

    def online_epochs(n_labeled: int, repeat: int = 1, **options) -> int:
        config = CycleConfig(data="d.yaml", mode="online", rounds=3, round_epochs=2, **options)
        inputs = SimpleNamespace(config=config, pool=SimpleNamespace(images=[None] * 1000))
        return OnlineCycle(inputs, tmp_path, "cpu", labeler=lambda *a: None).online_epochs(n_labeled, repeat)

    # offline, each round: 100 labeled x 5 (a third of the round) + 1000 pool images, 2 epochs, 3 rounds: 9000 images
    assert online_epochs(100) == 90
    # labeled_repeat 2: 3 x 2 x (200 + 1000) images, the online run's epochs over its 100 x 2 labeled images
    assert online_epochs(100, repeat=2, labeled_repeat=2) == 36
    assert online_epochs(100, online_epochs=7) == 7


def test_the_online_run_validates_at_its_end_unless_asked(tmp_path: Path) -> None:
    """As the bench measured it: the thresholds chosen once at the start, one validation at the end (half the time at
    demo size); `--online-val` validates every epoch. Round 0's `val` (train_args) is its own."""
    from types import SimpleNamespace

    from yolossl.config import CycleConfig
    from yolossl.cycle.online import OnlineCycle

    def settings(**options):
        config = CycleConfig(data="d.yaml", mode="online", **options)
        inputs = SimpleNamespace(config=config, names=["a", "b"], pool=SimpleNamespace(images=[None] * 10))
        return OnlineCycle(inputs, tmp_path, "cpu", labeler=lambda *a: None).online_train_settings(12)

    quiet = settings(train_args={"mosaic": 0.5})
    assert quiet.online and quiet.epochs == 12 and quiet.extra["val"] is False and quiet.extra["mosaic"] == 0.5
    assert quiet.extra["warmup_epochs"] == 0.0  # the rounds' continued schedule
    assert settings(online_val=True).extra["val"] is True
    assert settings(train_args={"val": True}).extra["val"] is False


def test_a_killed_online_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    """SIGKILL inside round 1 (after its first epoch), between the rounds, and inside round 2: each --resume ends with
    the uninterrupted run's summary and pseudo-labels."""
    from tests.conftest import killed_and_resumed

    options = [
        *("--mode", "online", "--rounds", "2", "--epochs", "1", "--online-epochs", "4", "--imgsz", "64"),
        *("--batch", "8", "--conf", "0.002", "--uncertain-low", "0.001", "--device", "cpu", "--workers", "0"),
        "--no-control",  # its length follows the clock; its resume is pinned in tests/test_control.py
    ]
    kill_points = (
        ("round_1/train/weights/last.pt", "round_1/metrics.json"),  # inside round 1
        ("round_1/metrics.json", "round_2/train/weights/last.pt"),  # between the rounds
        ("round_2/train/weights/last.pt", "round_2/metrics.json"),  # inside round 2
    )
    whole, *killed_runs = killed_and_resumed(tmp_path, options, kill_points)
    for killed in killed_runs:
        assert _summary(killed) == _summary(whole)
        assert [r["round"] for r in _summary(killed)] == ["0", "1", "2"]
        assert "Online epoch 4/4: unlabeled loss " in (killed / "cycle.log").read_text()
        for k in (1, 2):
            labels = {p.name: p.read_text() for p in (whole / f"round_{k}" / "pseudo" / "labels").iterdir()}
            assert {p.name: p.read_text() for p in (killed / f"round_{k}" / "pseudo" / "labels").iterdir()} == labels


def test_an_out_of_memory_retry_rebuilds_the_unlabeled_loader_and_the_teacher_schedule(
    tiny_dataset: Path, tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ultralytics halves the batch after an OOM in the first epoch and rebuilds its loaders: the unlabeled loader
    and the EMA schedule (fitted to twice the steps now) must follow, and the unlabeled loader is closed at the end."""
    import yolossl.train.ema
    from yolossl.train.online import OnlineTeacherTrainer

    seen: dict = {"sizes": [], "closed": [], "fitted_to": []}
    fit = yolossl.train.ema.ema_schedule

    def ema_schedule(total_updates, max_decay=0.9999):
        seen["fitted_to"].append(total_updates)
        return fit(total_updates, max_decay)

    monkeypatch.setattr(yolossl.train.ema, "ema_schedule", ema_schedule)

    class OutOfMemoryOnce(OnlineTeacherTrainer):
        def _with_unlabeled(self, batch):
            seen["sizes"].append((self.batch_size, self.unlabeled_batch_size))
            if len(seen["sizes"]) == 1:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return super()._with_unlabeled(batch)

        def _close_unlabeled(self):
            seen["closed"].append(getattr(self, "unlabeled_loader", None) is not None)
            super()._close_unlabeled()

    data_yaml = _online_data_yaml(tiny_dataset, tmp_path / "run")
    overrides = dict(
        model=str(tiny_weights), data=str(data_yaml), epochs=2, imgsz=64, batch=8, nbs=4, device="cpu", workers=0,
        plots=False, project=str(tmp_path / "t"), name="oom", exist_ok=True, val=False,
    )  # fmt: skip
    OutOfMemoryOnce(overrides=overrides).train()
    assert seen["sizes"][0] == (8, 8) and set(seen["sizes"][1:]) == {(4, 4)}  # both halves halved together
    assert seen["fitted_to"] == [2, 4]  # 2 epochs x 1 batch of 8, then x 2 batches of 4
    assert seen["closed"] == [True, True]  # the old loader at the retry, the new one at the end


def test_a_round_whose_continuation_is_gone_says_so_in_one_line(tiny_dataset: Path, tmp_path: Path) -> None:
    from tests.conftest import tiny_cycle_config
    from yolossl import resume_cycle, run_cycle
    from yolossl.train import train_detector

    calls: list[bool] = []

    def trainer(model, data_yaml, save_dir, settings, on_epoch):
        calls.append(settings.online)
        if calls.count(True) == 2:
            raise KeyboardInterrupt("stopped before round 2 trained")
        return train_detector(model, data_yaml, save_dir, settings, on_epoch)

    config = tiny_cycle_config(tiny_dataset, tmp_path, mode="online", rounds=2, online_epochs=2, conf=0.002)
    with pytest.raises(KeyboardInterrupt):
        run_cycle(config, trainer=trainer)
    (tmp_path / "r" / "round_1" / "train" / "weights" / "continue.pt").unlink()
    with pytest.raises(YolosslError, match=r"continue\.pt: missing, and round 2 continues the run from it; "):
        resume_cycle(tmp_path / "r")


@pytest.mark.parametrize("unsure", ["soft", "dense"])
def test_below_every_threshold_the_teacher_still_teaches_and_teacher_csv_says_how_much(
    tiny_dataset: Path, tmp_path: Path, tiny_weights: Path, unsure: str
) -> None:
    """One kept threshold above every score: all the teacher's boxes are unsure. Soft: they become soft targets
    (their score in the code); dense: no box at all, the teacher's scores at every anchor ride in the batch. Either
    way teacher.csv gives each class its hard and soft share of the unlabeled class loss, and it is not nothing."""
    import csv

    rules = LossRules(lambda_u=0.5, box_min_score=0.0024, unsure=unsure)
    data_yaml = _online_data_yaml(tiny_dataset, tmp_path / "run", conf=0.99, rules=rules)
    seen = _watched_run(tiny_weights, data_yaml, tmp_path / "t" / "online", epochs=1)
    codes = [c for b in seen["batches"] for o, c in zip(b["owner"], b["cls"], strict=True) if o >= b["n_l"]]
    soft = [c for c in codes if c // KIND_STRIDE >= SOFT_KIND]
    assert not [c for c in codes if c // KIND_STRIDE in (PSEUDO_BOX, PSEUDO_CLASS_ONLY, IGNORE)]
    names = seen["trainer"].data["names"]
    if unsure == "soft":
        assert soft and all(0.001 <= (c // KIND_STRIDE - SOFT_KIND) / 1000 < 0.99 for c in soft)
        assert all(b["dense"] is None for b in seen["batches"])
    else:
        anchors = sum((64 // s) ** 2 for s in (8, 16, 32))
        assert not soft and all(b["dense"] == (4, anchors, len(names)) for b in seen["batches"])
    rows = list(csv.DictReader((tmp_path / "t" / "online" / "teacher.csv").open()))
    assert all(float(rows[0][f"hard_{n}"]) == 0 for n in names.values())  # nothing reached the threshold
    assert sum(float(rows[0][f"soft_{n}"]) for n in names.values()) > 0


def test_dense_maps_follow_the_strong_view_level_by_level() -> None:
    """A head level's map (stride 8 on a 64 px image) mirrored with the image: each cell lands on the mirrored cell;
    shifted by two cells, it moves by two cells, and what enters from outside is 0."""

    maps = torch.arange(64.0).view(1, 1, 8, 8)
    mirrored = maps_in_view(maps, hflip_matrix(64).unsqueeze(0), 8)
    torch.testing.assert_close(mirrored, maps.flip(-1))
    shift = torch.tensor([[[1.0, 0.0, 16.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])  # 16 px = 2 cells right
    moved = maps_in_view(maps, shift, 8)
    torch.testing.assert_close(moved[..., 2:], maps[..., :6])
    assert torch.all(moved[..., :2] == 0)
    torch.testing.assert_close(maps_in_view(maps, torch.eye(3).unsqueeze(0), 8), maps)


def test_dense_targets_are_the_teachers_scores_at_the_students_anchors() -> None:
    """Scores in the head's anchor order (levels of stride 8, 16, 32 on 64 px: 64 + 16 + 4 anchors), moved with the
    view level by level; below the floor, 0."""
    from yolossl.train.teacher import dense_targets

    g = torch.Generator().manual_seed(0)
    preds = torch.cat([torch.zeros(1, 4, 84), torch.rand(1, 2, 84, generator=g)], 1)
    scores = preds[0, 4:].T  # (anchors, classes)
    same = dense_targets(preds, torch.eye(3).unsqueeze(0), [8, 16, 32], 64, 64, floor=0.3)
    torch.testing.assert_close(same[0], torch.where(scores >= 0.3, scores, 0.0))
    mirrored = dense_targets(preds, hflip_matrix(64).unsqueeze(0), [8, 16, 32], 64, 64, floor=0.0)
    for start, side in ((0, 8), (64, 4), (80, 2)):
        level = preds[0, 4:, start : start + side * side].view(2, side, side)
        torch.testing.assert_close(mirrored[0, start : start + side * side], level.flip(-1).reshape(2, -1).T)


def _scores(b: int, anchors: int, nc: int, candidates: list[int], conf: float) -> torch.Tensor:
    """Predictions (b, 4 + nc, anchors) whose image i has `candidates[i]` anchors scoring above `conf`, at random
    places, with overlapping boxes (NMS has work to do) and tied scores."""
    generator = torch.Generator().manual_seed(0)
    xy = torch.rand(b, 2, anchors, generator=generator) * 48 + 8
    wh = torch.rand(b, 2, anchors, generator=generator) * 16 + 4
    scores = torch.rand(b, nc, anchors, generator=generator) * conf  # below the floor
    for i, n in enumerate(candidates):
        places = torch.randperm(anchors, generator=generator)[:n]
        scores[i, :, places] = torch.rand(nc, n, generator=generator).round(decimals=1) * (1 - conf) + conf + 1e-3
    return torch.cat([xy, wh, scores], 1)


def test_the_teachers_nms_on_its_candidates_alone_gives_ultralytics_boxes_exactly() -> None:
    """Moving only the candidates to the host, in their order, changes nothing Ultralytics' NMS returns: an image
    without candidates, one with exactly 6 (a last dimension Ultralytics reads as an end-to-end output), many."""
    from ultralytics.utils.nms import non_max_suppression

    from yolossl.train.teacher import candidates_first, nms_boxes

    preds = _scores(4, 400, 5, [0, 6, 90, 250], conf=0.05)
    assert candidates_first(preds, 0.05).shape == (4, 9, 250)
    ours, theirs = nms_boxes(preds, 0.05, 0.5), non_max_suppression(preds, 0.05, 0.5, max_det=300)
    assert [len(b) for b in ours] == [len(b) for b in theirs] and len(ours[2]) > 0
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    six = _scores(2, 50, 3, [6, 2], conf=0.05)
    assert candidates_first(six, 0.05).shape[2] == 7
    pairs = zip(nms_boxes(six, 0.05, 0.5), non_max_suppression(six, 0.05, 0.5), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


class _OnDevice(torch.Tensor):
    """A CPU tensor standing in for one on a GPU: each read of its values by the host (a host sync there) is
    counted; what `.cpu()`, `.numpy()` or `.tolist()` give back is a host tensor."""

    reads: list[str] = []  # noqa: RUF012  (the test's counter)
    _READS = frozenset({"item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__", "nonzero"})
    _READS |= {"argwhere", "masked_select", "unique", "unique_consecutive", "bincount", "repeat_interleave"}

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        on_device = bool(args) and isinstance(args[0], _OnDevice)
        boolean_index = name in ("__getitem__", "__setitem__") and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool
            for i in (args[1] if isinstance(args[1], tuple) else (args[1],))
        )
        if on_device and (name in cls._READS or boolean_index or (name == "where" and len(args) == 1)):
            cls.reads.append(name)
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **kwargs)
            if name == "cpu":  # on the CPU `.cpu()` is the tensor itself: its copy on the host is a plain tensor
                return out.as_subclass(torch.Tensor)
        if name in ("numpy", "tolist", "item"):
            return out
        return torch._tensor._convert(out, cls)


def test_an_online_step_waits_for_the_device_twice(tiny_dataset: Path, tmp_path: Path, tiny_weights: Path) -> None:
    """The unlabeled half of a step (teacher, NMS, strong view, targets, dense scores) on "device" tensors that count
    every read by the host: 2 for the batch (the candidates' count and their copy); 9 before at an unlabeled batch of
    4 (2 an image in Ultralytics' NMS on the device, then the copy of its boxes). Counted on the CPU: nothing here
    ran on a GPU (the CUDA sync debug mode would count there)."""
    from ultralytics.utils.nms import non_max_suppression

    from yolossl.train.online import OnlineTeacherTrainer

    _OnDevice.reads.clear()
    non_max_suppression(_scores(4, 400, 5, [0, 6, 90, 250], conf=0.05).as_subclass(_OnDevice), 0.05, 0.5)
    assert len(_OnDevice.reads) >= 2 * 3  # the instrument sees Ultralytics' per-image reads (3 images with boxes)

    counts: list[tuple[int, int]] = []

    class Counted(OnlineTeacherTrainer):
        def _with_unlabeled(self, batch):
            batches = self.unlabeled_batches
            self.unlabeled_batches = ({**b, "img": b["img"].as_subclass(_OnDevice)} for b in [next(batches)])
            _OnDevice.reads.clear()
            try:
                batch = super()._with_unlabeled(batch)
            finally:
                self.unlabeled_batches = batches
            counts.append((len(_OnDevice.reads), int((batch["batch_idx"] >= batch["n_l"]).sum())))
            return {k: v.as_subclass(torch.Tensor) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    for unsure in ("ignore", "dense"):
        rules = LossRules(lambda_u=0.5, box_min_score=0.0024, unsure=unsure)
        data_yaml = _online_data_yaml(tiny_dataset, tmp_path / unsure, rules=rules)
        overrides = dict(
            model=str(tiny_weights), data=str(data_yaml), epochs=1, imgsz=64, batch=4, device="cpu", workers=0,
            plots=False, project=str(tmp_path / "t"), name=unsure, exist_ok=True, val=False,
        )  # fmt: skip
        Counted(overrides=overrides).train()
    assert len(counts) == 4 and all(reads == 2 for reads, _ in counts), counts
    assert all(targets > 4 for _, targets in counts)  # every step had teacher targets beside its 4 PSEUDO_AREA boxes


@pytest.mark.parametrize(
    ("workers", "ratio", "split"), [(8, 1.0, (4, 4)), (6, 2.0, (2, 4)), (1, 1.0, (1, 1)), (0, 1.0, (0, 0))]
)
def test_the_loader_workers_are_shared_by_the_labeled_and_the_unlabeled_loader(workers, ratio, split) -> None:
    from yolossl.train.online import split_workers

    assert split_workers(workers, ratio) == split
