"""The run report: plots people would rather look at than read, in one self-contained HTML page.

`write_report(run_dir)` reads only what a cycle wrote (summary.csv, config.yaml, data_report.json,
each round's pseudo/record.csv and thresholds.json, an online run's train/teacher.csv), draws the
PNGs beside `report.html`, and embeds them in it, so the page can be mailed or attached to a
ticket as one file. It works on a finished, interrupted or round-0-only run alike: what is missing
is simply not shown.

Why one module of ~400 lines: each plot is a short function over `RunData`, and the page is the
only caller of all of them; split, the pieces would only import each other.

    >>> write_report(Path("runs/cycle/exp"))   # -> runs/cycle/exp/report.html
"""

from __future__ import annotations

import base64
import csv
import html
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolossl.cycle.control import CONTROL_FILE
from yolossl.errors import YolosslError
from yolossl.images import read_image
from yolossl.label.filters import ClassThresholds
from yolossl.label.record import RECORD_FILE, RecordRow, read_record
from yolossl.train.online_settings import TEACHER_LOG

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"
ORACLE_FILE = "oracle.json"  # {"map50": .., "map50_95": ..}: `yolossl bench` writes it into its yolossl arm
SAMPLES = 8
STYLES = {  # how each status is drawn on the sample images (BGR, thickness, dashed)
    "kept": ((60, 180, 60), 2, False),
    "uncertain": ((0, 165, 255), 1, True),
    "dropped": ((150, 150, 150), 1, False),
}


@dataclass
class RoundRecord:
    """One pseudo-labeled round's candidate boxes (from record.csv) and its thresholds."""

    index: int
    rows: list[RecordRow]
    thresholds: ClassThresholds | None = None


@dataclass
class RunData:
    """Everything the report shows, read from the run folder."""

    run_dir: Path
    summary: list[dict[str, str]]
    class_names: list[str]
    config: str
    data_report: dict[str, Any]
    records: list[RoundRecord]
    oracle: dict[str, float] | None
    teacher: dict[int, list[dict[str, str]]] = field(default_factory=dict)
    """The online teacher's log per epoch (`--mode online`), by round."""
    control: dict[str, Any] | None = None
    """The labels alone for the rounds' wall time and the run's verdict (`cycle.control.CONTROL_FILE`)."""


def load_run(run_dir: Path) -> RunData:
    """Read a run folder; a folder without config.yaml is not a run."""
    if not (run_dir / "config.yaml").is_file():
        raise YolosslError(f"{run_dir}: not a yolossl run folder (no config.yaml)")
    summary = _read_csv(run_dir / "summary.csv")
    names = [k.removeprefix("boxes_") for k in (summary[0] if summary else {}) if k.startswith("boxes_")]
    records = []
    for round_dir in sorted(run_dir.glob("round_*/pseudo"), key=lambda p: int(p.parent.name.split("_")[1])):
        thresholds_path, record_path = round_dir / "thresholds.json", round_dir / RECORD_FILE
        thresholds = ClassThresholds.load(thresholds_path) if thresholds_path.is_file() else None
        rows = read_record(record_path) if record_path.is_file() else []
        records.append(RoundRecord(int(round_dir.parent.name.split("_")[1]), rows, thresholds))
    if not names and records and records[0].rows:
        names = sorted({r.class_name for rec in records for r in rec.rows})
    oracle = json.loads((run_dir / ORACLE_FILE).read_text()) if (run_dir / ORACLE_FILE).is_file() else None
    control = json.loads((run_dir / CONTROL_FILE).read_text()) if (run_dir / CONTROL_FILE).is_file() else None
    data_report_path = run_dir / "data_report.json"
    return RunData(
        run_dir=run_dir,
        summary=summary,
        class_names=names,
        config=(run_dir / "config.yaml").read_text(encoding="utf-8"),
        data_report=json.loads(data_report_path.read_text()) if data_report_path.is_file() else {},
        records=records,
        oracle=oracle,
        control=control,
        teacher={
            int(path.parents[1].name.split("_")[1]): _read_csv(path)
            for path in sorted(run_dir.glob(f"round_*/train/{TEACHER_LOG}"))
        },
    )


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- the series each plot draws


def map_series(data: RunData) -> dict[str, list[float]]:
    """Per round: round index, val mAP50, mAP50-95, and whether the round guard accepted it (1/0)."""
    rows = data.summary
    return {
        "round": [int(r["round"]) for r in rows],
        "map50": [float(r["map50"]) for r in rows],
        "map50_95": [float(r["map50_95"]) for r in rows],
        "accepted": [1.0 if r.get("accepted", "True") == "True" else 0.0 for r in rows],
        "test_map50_95": [float(r["test_map50_95"]) for r in rows if r.get("test_map50_95")],
    }


def boxes_per_class(data: RunData) -> dict[int, dict[str, dict[str, int]]]:
    """{round: {status: {class name: count}}} of the candidate boxes each round recorded."""
    out: dict[int, dict[str, dict[str, int]]] = {}
    for record in data.records:
        counts: dict[str, Counter[str]] = {"kept": Counter(), "uncertain": Counter(), "dropped": Counter()}
        for row in record.rows:
            counts.setdefault(row.status, Counter())[row.class_name] += 1
        out[record.index] = {status: dict(c) for status, c in counts.items()}
    return out


def scores_by_class(record: RoundRecord) -> dict[str, np.ndarray]:
    """Candidate scores of one round, per class name."""
    scores: dict[str, list[float]] = {}
    for row in record.rows:
        scores.setdefault(row.class_name, []).append(row.score)
    return {name: np.array(values) for name, values in scores.items()}


# ---------------------------------------------------------------- drawing


def plot_map(data: RunData, path: Path) -> Any:
    plt = _pyplot()
    series = map_series(data)
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label, color in (("map50", "val mAP50", "tab:blue"), ("map50_95", "val mAP50-95", "tab:green")):
        ax.plot(series["round"], series[key], marker="o", label=label, color=color)
        if series[key]:
            ax.axhline(series[key][0], color=color, linestyle=":", linewidth=1, label=f"{label}, round 0 (labels only)")
    rejected = [i for i, ok in enumerate(series["accepted"]) if not ok]
    if rejected:
        ax.scatter(
            [series["round"][i] for i in rejected],
            [series["map50_95"][i] for i in rejected],
            marker="x",
            s=80,
            color="red",
            zorder=3,
            label="rejected by the round guard",
        )
    tested = len(series["test_map50_95"]) == len(series["round"]) > 0
    if tested:
        ax.plot(series["round"], series["test_map50_95"], marker="s", color="tab:purple", label="test mAP50-95")
    if data.oracle:
        ax.axhline(data.oracle["map50_95"], color="black", linestyle="--", linewidth=1, label="oracle mAP50-95")
    if data.control:
        budget = f"labels alone, same time ({data.control['budget_s']:.0f} s)"
        ax.axhline(data.control["metrics"]["map50_95"], color="tab:red", linewidth=1.5, label=f"{budget}: val")
        if tested and data.control.get("test"):
            ax.axhline(data.control["test"]["map50_95"], color="tab:red", linestyle="-.", label=f"{budget}: test")
    ax.set_xlabel("round")
    ax.set_ylabel("mAP")
    ax.set_title("mAP per round (val chooses" + (", test reports)" if tested else ")"))
    ax.set_xticks(series["round"] or [0])
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_teacher(rows: list[dict[str, str]], names: list[str], path: Path) -> Any:
    """The online run per epoch: the unlabeled loss and the share of the teacher's boxes kept per class; and per
    class, its share of the unlabeled class loss over the round from kept (hard) and soft targets: a class without a
    bar took no part in the unlabeled loss."""
    plt = _pyplot()
    epochs = [int(r["epoch"]) for r in rows]
    with_shares = bool(rows) and f"hard_{names[0]}" in rows[0] if names else False
    fig, axes = plt.subplots(1, 3 if with_shares else 2, figsize=(16 if with_shares else 11, 4))
    loss_ax, share_ax = axes[0], axes[1]
    loss_ax.plot(epochs, [float(r["u_loss"]) for r in rows], marker="o", color="tab:purple")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("unlabeled loss (u_loss)")
    loss_ax.set_title("Loss on the teacher's targets")
    for name in names:
        seen = [int(r.get(f"seen_{name}") or 0) for r in rows]
        kept = [int(r.get(f"kept_{name}") or 0) for r in rows]
        share = [k / s if s else math.nan for k, s in zip(kept, seen, strict=True)]
        share_ax.plot(epochs, share, marker="o", label=name)
    share_ax.set_xlabel("epoch")
    share_ax.set_ylabel("kept / seen above the floor")
    share_ax.set_ylim(0, 1.05)
    share_ax.set_title("Teacher boxes kept, per class")
    share_ax.legend(fontsize=8, loc="best")
    from matplotlib.ticker import MaxNLocator

    for ax in (loss_ax, share_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if with_shares:
        _plot_loss_shares(axes[2], rows, names)
    return _save(fig, path)


def loss_shares(rows: list[dict[str, str]], name: str) -> tuple[float, float]:
    """A class's mean share of the unlabeled class loss over a round's epochs, from hard and from soft targets."""
    hard = [float(r.get(f"hard_{name}") or 0) for r in rows]
    soft = [float(r.get(f"soft_{name}") or 0) for r in rows]
    return sum(hard) / max(1, len(rows)), sum(soft) / max(1, len(rows))


def _plot_loss_shares(ax: Any, rows: list[dict[str, str]], names: list[str]) -> None:
    shares = [loss_shares(rows, name) for name in names]
    y = np.arange(len(names))
    hard = [100 * h for h, _ in shares]
    ax.barh(y, hard, color="tab:green", label="kept (hard) targets")
    ax.barh(y, [100 * s for _, s in shares], left=hard, color="tab:orange", hatch="//", alpha=0.6, label="soft targets")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("% of the unlabeled class loss (the rest: background)")
    ax.set_title("Unlabeled signal per class, round mean")
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="x", alpha=0.3)


def plot_boxes(data: RunData, path: Path) -> Any:
    plt = _pyplot()
    counts = boxes_per_class(data)
    fig, ax = plt.subplots(figsize=(8, 4))
    rounds = sorted(counts)
    names = data.class_names
    width = 0.8 / max(1, len(rounds))
    x = np.arange(len(names))
    colors = plt.get_cmap("viridis")(np.linspace(0.1, 0.85, max(1, len(rounds))))
    for i, index in enumerate(rounds):
        kept = [counts[index].get("kept", {}).get(n, 0) for n in names]
        uncertain = [counts[index].get("uncertain", {}).get(n, 0) for n in names]
        ax.bar(x + i * width, kept, width, color=colors[i], label=f"round {index} kept")
        ax.bar(
            x + i * width,
            uncertain,
            width,
            bottom=kept,
            color=colors[i],
            alpha=0.35,
            hatch="//",
            label=f"round {index} uncertain",
        )
    ax.set_xticks(x + width * (len(rounds) - 1) / 2, names, rotation=20)
    ax.set_ylabel("pseudo boxes")
    ax.set_title("Pseudo boxes per class (solid: kept as labels, hatched: uncertain)")
    if rounds:
        ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_scores(record: RoundRecord, names: list[str], path: Path) -> Any:
    plt = _pyplot()
    scores = scores_by_class(record)
    cols = min(4, max(1, len(names)))
    rows = math.ceil(len(names) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for k, name in enumerate(names):
        ax = axes[k // cols][k % cols]
        values = scores.get(name, np.zeros(0))
        ax.hist(values, bins=np.linspace(0, 1, 41), color="tab:gray")
        threshold = record.thresholds.kept.get(k, math.inf) if record.thresholds else math.inf
        if math.isfinite(threshold):
            ax.axvline(threshold, color="tab:green", linewidth=2, label=f"kept >= {threshold:.2f}")
        else:
            ax.text(0.5, 0.9, "no pseudo-labels (unreachable)", transform=ax.transAxes, ha="center", fontsize=7)
        if record.thresholds is not None:
            ax.axvline(
                record.thresholds.uncertain_low, color="tab:orange", linestyle="--", linewidth=1, label="uncertain from"
            )
        ax.set_title(f"{name} ({len(values)} boxes)", fontsize=9)
        ax.set_xlim(0, 1)
        ax.legend(fontsize=6)
    for k in range(len(names), rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle(f"Round {record.index}: candidate scores per class and the thresholds used", fontsize=10)
    fig.supxlabel("detector score", fontsize=9)
    return _save(fig, path)


def sample_images(record: RoundRecord, count: int = SAMPLES) -> list[str]:
    """The images with the most candidate boxes (ties by name): where there is most to look at."""
    per_image = Counter(row.image for row in record.rows)
    return [image for image, _ in sorted(per_image.items(), key=lambda kv: (-kv[1], kv[0]))[:count]]


def draw_samples(record: RoundRecord, path: Path, size: int = 256) -> Path | None:
    """A grid of sample images with their boxes drawn by status; None when the round has no boxes."""
    images = sample_images(record)
    if not images:
        return None
    by_image: dict[str, list[RecordRow]] = {}
    for row in record.rows:
        by_image.setdefault(row.image, []).append(row)
    tiles = []
    for image_path in images:
        image = read_image(Path(image_path), size)  # never a FIFO, never past MAX_DECODED_PIXELS
        if image is None:
            image = np.full((size, size, 3), 230, np.uint8)
            cv2.putText(image, "image missing", (10, size // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 200), 1)
        else:
            image, content = _letterbox_tile(image, size)
            for row in sorted(by_image[image_path], key=lambda r: ("dropped", "uncertain", "kept").index(r.status)):
                _draw_box(image, row, content)
        tiles.append(image)
    while len(tiles) % 4:
        tiles.append(np.full((size, size, 3), 255, np.uint8))
    grid = np.vstack([np.hstack(tiles[i : i + 4]) for i in range(0, len(tiles), 4)])
    cv2.imwrite(str(path), grid)
    return path


def _letterbox_tile(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The image scaled into the top-left of a white square tile, and the (w, h) it covers there."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    resized = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))))
    tile = np.full((size, size, 3), 255, np.uint8)
    tile[: resized.shape[0], : resized.shape[1]] = resized
    return tile, (resized.shape[1], resized.shape[0])


def _draw_box(tile: np.ndarray, row: RecordRow, content: tuple[int, int]) -> None:
    color, thickness, dashed = STYLES.get(row.status, STYLES["dropped"])
    iw, ih = content
    xc, yc, bw, bh = row.xywhn
    p1 = (round((xc - bw / 2) * iw), round((yc - bh / 2) * ih))
    p2 = (round((xc + bw / 2) * iw), round((yc + bh / 2) * ih))
    if dashed:
        _dashed_rectangle(tile, p1, p2, color, thickness)
    else:
        cv2.rectangle(tile, p1, p2, color, thickness)
    if row.status == "kept":
        cv2.putText(
            tile,
            f"{row.class_name} {row.score:.2f}",
            (p1[0], max(10, p1[1] - 3)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.35,
            color,
            1,
            cv2.LINE_AA,
        )


def _dashed_rectangle(image: np.ndarray, p1: tuple[int, int], p2: tuple[int, int], color, thickness: int) -> None:
    (x1, y1), (x2, y2) = p1, p2
    for a, b in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
        for start in range(0, length, 8):
            t0, t1 = start / max(length, 1), min(start + 4, length) / max(length, 1)
            q0 = (round(a[0] + (b[0] - a[0]) * t0), round(a[1] + (b[1] - a[1]) * t0))
            q1 = (round(a[0] + (b[0] - a[0]) * t1), round(a[1] + (b[1] - a[1]) * t1))
            cv2.line(image, q0, q1, color, thickness)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window; set here, not at import, to leave callers' backends alone
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Any:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return fig


# ---------------------------------------------------------------- the page


def write_report(run_dir: str | Path) -> Path:
    """Draw the plots beside `run_dir/report.html` and write the page with them embedded; return its path."""
    run_dir = Path(run_dir)
    data = load_run(run_dir)
    figures: list[tuple[str, Path]] = []
    if data.summary:
        plot_map(data, run_dir / "report_map.png")
        figures.append(("Validation mAP per round", run_dir / "report_map.png"))
    for index, rows in data.teacher.items():
        if rows:
            plot_teacher(rows, data.class_names, run_dir / f"report_teacher_{index}.png")
            figures.append((f"Online teacher per epoch, round {index}", run_dir / f"report_teacher_{index}.png"))
    if data.records:
        plot_boxes(data, run_dir / "report_boxes.png")
        figures.append(("Pseudo boxes per class", run_dir / "report_boxes.png"))
        last = data.records[-1]
        plot_scores(last, data.class_names, run_dir / "report_scores.png")
        figures.append((f"Scores and thresholds, round {last.index}", run_dir / "report_scores.png"))
        if draw_samples(last, run_dir / "report_samples.png"):
            figures.append((f"Sample pseudo-labeled images, round {last.index}", run_dir / "report_samples.png"))
    page = _html(data, figures)
    tmp = run_dir / f".{REPORT_FILE}.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(run_dir / REPORT_FILE)
    return run_dir / REPORT_FILE


def _html(data: RunData, figures: list[tuple[str, Path]]) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>yolossl report: {html.escape(data.run_dir.name)}</title>",
        "<style>body{font-family:sans-serif;margin:24px;max-width:1100px;color:#222}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th{background:#f0f0f0}.rejected{color:#b00}.best{font-weight:bold;background:#e8f5e9}"
        "img{max-width:100%;border:1px solid #ddd;margin:6px 0}pre{background:#f6f6f6;padding:10px;font-size:12px}"
        ".legend span{margin-right:16px}</style></head><body>",
        f"<h1>yolossl run <code>{html.escape(str(data.run_dir))}</code></h1>",
    ]
    parts.append(_rounds_table(data))
    parts.append(_classes_left_out(data))
    for title, path in figures:
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(
            f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{encoded}'>"
        )
        if path.name == "report_samples.png":
            parts.append(
                "<p class='legend'><span style='color:#3cb43c'>&#9632; kept (a label)</span>"
                "<span style='color:#ffa500'>&#9632; uncertain (masked grey in training)</span>"
                "<span style='color:#969696'>&#9632; dropped</span></p>"
            )
    parts.append(_data_checks(data))
    parts.append(f"<h2>Effective configuration</h2><pre>{html.escape(data.config)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def classes_left_out(data: RunData) -> list[str]:
    """One line per round and class that got no pseudo-label in the whole round: from the online teacher during
    training (`teacher.csv`), or from the labeling of the pool at the round's end (summary)."""
    lines = []
    for index, rows in data.teacher.items():
        for name in data.class_names:
            if rows and f"kept_{name}" in rows[0] and not sum(int(r[f"kept_{name}"]) for r in rows):
                without = sum(f"thr_{name}" in r and not r[f"thr_{name}"] for r in rows)
                soft = loss_shares(rows, name)[1]
                lines.append(
                    f"Round {index}: the teacher gave {name} no "
                    + (f"kept target (soft targets only: {soft:.1%} of the unlabeled class loss)" if soft else "target")
                    + f" in any of its {len(rows)} epochs"
                    + (f" ({without} without a threshold at the target precision)" if without else "")
                )
    for row in data.summary:
        if row["round"] == "0":
            continue
        missing = [n for n in data.class_names if row.get(f"boxes_{n}") == "0"]
        if missing:
            lines.append(f"Round {row['round']}: the labeling of the pool kept no box of {', '.join(missing)}")
    return lines


def _classes_left_out(data: RunData) -> str:
    lines = classes_left_out(data)
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f"<h2>Classes without pseudo-labels</h2><ul class='rejected'>{items}</ul>"


def _rounds_table(data: RunData) -> str:
    if not data.summary:
        return "<p>No round has finished yet.</p>"
    best = max((r for r in data.summary if r.get("accepted", "True") == "True"), key=lambda r: float(r["map50_95"]))
    tested = any(r.get("test_map50_95") for r in data.summary)
    head = ("round", "images", "pseudo boxes", "uncertain", "val mAP50", "val mAP50-95", "P", "R")
    head += ("test mAP50", "test mAP50-95", "time", "round guard") if tested else ("time", "round guard")
    rows = ["<h2>Rounds</h2><table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for r in data.summary:
        accepted = r.get("accepted", "True") == "True"
        guard = "best (final model)" if r is best else "accepted" if accepted else "rejected: below the best so far"
        css = "best" if r is best else "" if accepted else "rejected"
        cells = (
            r["round"],
            r["images_used"],
            r["pseudo_boxes"],
            r.get("uncertain_boxes", "0"),
            f"{float(r['map50']):.3f}",
            f"{float(r['map50_95']):.3f}",
            f"{float(r['precision']):.3f}",
            f"{float(r['recall']):.3f}",
            *((_number(r.get("test_map50")), _number(r.get("test_map50_95"))) if tested else ()),
            f"{float(r['wall_time_s']):.0f} s",
            guard,
        )
        rows.append(f"<tr class='{css}'>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    if data.control:
        c = data.control
        cells = [
            "labels alone, same time",
            "",
            "",
            "",
            f"{c['metrics']['map50']:.3f}",
            f"{c['metrics']['map50_95']:.3f}",
        ]
        cells += [f"{c['metrics']['precision']:.3f}", f"{c['metrics']['recall']:.3f}"]
        if tested:
            cells += [f"{c['test'][k]:.3f}" if c.get("test") else "" for k in ("map50", "map50_95")]
        cells += [f"{c['wall_time_s']:.0f} s", f"the control: {c['epochs']} epochs from round 0"]
        rows.append("<tr class='control'>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in cells) + "</tr>")
    rows.append("</table>")
    if data.control:
        rows.append(f"<p class='verdict'><b>{html.escape(data.control['verdict'])}</b></p>")
    if data.oracle:
        oracle = data.oracle.get("map50_95")
        shown = f"{oracle:.3f}" if isinstance(oracle, float) else _text(oracle)
        rows.append(f"<p>Oracle (all labels): mAP50-95 {shown}</p>")
    return "\n".join(rows)


def _data_checks(data: RunData) -> str:
    if not data.data_report:
        return ""
    items = []
    for split, info in data.data_report.get("splits", {}).items():
        counts = ", ".join(f"{_text(n)} &times; {_text(k)}" for k, n in info.get("counts", {}).items()) or "no problems"
        items.append(f"<li>{_text(split)} split ({_text(info.get('images', 0))} images): {counts}</li>")
    pool = data.data_report.get("pool", {})
    if pool:
        items.append(
            f"<li>unlabeled pool: {_text(pool.get('images', 0))} images, {_text(pool.get('non_images_skipped', 0))} "
            f"non-image files skipped, {_text(pool.get('leakage_excluded', 0))} copies of val images left out "
            f"(leakage guard: {_text(pool.get('leakage_mode'))})</li>"
        )
    skipped = [(r["round"], r.get("skipped_images", "0")) for r in data.summary if r.get("skipped_images", "0") != "0"]
    for index, count in skipped:
        items.append(f"<li>round {_text(index)}: {_text(count)} unreadable images skipped</li>")
    return "<h2>Input checks</h2><ul>" + "".join(items) + "</ul>"


def _number(value: str | None) -> str:
    return f"{float(value):.3f}" if value else "-"


def _text(value: object) -> str:
    """Any value read from the run folder, as HTML text: the files may have been edited or shared."""
    return html.escape(str(value))
