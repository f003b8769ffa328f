"""The label-bound bench of issue #15: every arm on 3 seeds, then one-ingredient ablations on seed 0.

Step `main` runs `yolossl bench --dataset glyphs` (converged labeled-only round 0 shared by every arm,
the budget-matched labeled-only continuation, the docs' workflow, the offline rounds (the default cycle until
29 Nov), the oracle; the online arm, the default since, is step `online`).
Step `supervised-fresh` adds the budget-matched labeled-only arm on Ultralytics' own schedule (warm-up
and decay each round) on every seed: the labels alone on their best schedule, not only on the
cycle's; the baseline that decides is the better of the two, per seed.
Step `converged` continues main's round 0s on the labels, learning-rate cycle after cycle, until one
gains < 0.005 (at most `--converge-cycles` more): the labeled-only model trained to convergence.
Step `from-converged` then runs every arm again (online too) from those converged models:
SSL set against labels alone once more steps on them stop helping.
Step `online` adds the online teacher (`--mode online`) on every seed, from main's round 0s, at
main's yolossl steps. Step `online-wall` runs it again at the offline rounds' wall time instead: its
steps scaled per seed by the two arms' measured minutes (from their cycle.log). Step `ema-control` runs
the online arm with every epoch a burn-in epoch: the same trainer and EMA teacher at the same steps,
without unlabeled images (what the teacher's weight averaging gives alone); `ema-control-from-converged`
the same from the converged models, at from-converged's steps. Step `ablations` reruns only the
yolossl arm on seed 0 from main's round 0, one ingredient changed at a time, and prints each against
main's seed-0 baselines; `ablations-from-converged` does the same from seed 0's converged model, at
from-converged's steps, and the online arm with one of its ingredients changed. An ablation's own
steps can differ a little from the default arm's (it keeps other pool images), so its gap uses the
default arm's budget-matched baseline: read small differences with that in mind.

`--ema fitted` (the default since every yolossl training fits its EMA to the run) names its runs
NAME-fitted-ema-...: its steps start from its own main step's round 0s, and the from-converged steps
from its converged models, else from NAME's, which, like every run named NAME-..., were trained on
Ultralytics' EMA (`--ema ultralytics`).

    python benchmarks/glyphs_bench.py --name glyphs                        # every step: several hours on 2 cores
    python benchmarks/glyphs_bench.py --name glyphs --steps online,ablations
    python benchmarks/glyphs_bench.py --name glyphs --steps converged --first-seed 1 --seeds 2  # seed 1 alone
    python benchmarks/glyphs_bench.py --name glyphs --steps from-converged,ablations-from-converged  # fitted EMA
    python benchmarks/glyphs_bench.py --name glyphs --steps ablations-from-converged --first-seed 1 --only "..."
    python benchmarks/glyphs_bench.py --name glyphs --steps summary          # the tables in RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from yolossl.bench import ARMS, BenchConfig, BenchResult, format_table, run_bench
from yolossl.demo import BENCH_DATASETS
from yolossl.runtime import set_up_process

ABLATIONS = {
    # the offline pseudo-aware rows were measured without box loss from pseudo boxes (the default then)
    "pseudo-aware loss (ignore regions)": {"loss": "pseudo-aware", "pseudo_box_min_score": None},
    "pseudo-aware loss + grey mask": {"loss": "pseudo-aware", "uncertain": "mask", "pseudo_box_min_score": None},
    "uncertain boxes as background (keep)": {"uncertain": "keep"},
    "pseudo-aware, box loss from boxes >= 0.9": {"loss": "pseudo-aware", "pseudo_box_min_score": 0.9},
    "pseudo-aware, box loss from every box": {"loss": "pseudo-aware", "pseudo_box_min_score": 0.0},
    "pseudo-aware, lambda_u 0.5": {"loss": "pseudo-aware", "lambda_u": 0.5, "pseudo_box_min_score": None},
    "round schedule fresh (Ultralytics' warm-up and decay)": {"round_schedule": "fresh"},
    "one round of three rounds' epochs": {"rounds": 1, "round_epochs": 6},
    "pseudo-aware, thresholds at precision 0.9": {
        "loss": "pseudo-aware",
        "target_precision": 0.9,
        "pseudo_box_min_score": None,
    },
}
ONLINE_ABLATIONS = {  # the online arm (`--mode online`, the default cycle since 29 Nov), one ingredient changed
    # measured as ablations on the defaults of their day, now defaults themselves: "online, strong view zoomed and
    # shifted" (strong_scale 0.5, strong_translate 0.1) and "online, box loss from teacher boxes >= 0.5"
    # (pseudo_box_min_score 0.5); the lambda_u and ratio rows were measured with no box loss from pseudo boxes
    "online, flip-and-colour view only (before 29 Nov)": {"strong_scale": 0.0, "strong_translate": 0.0},
    "online, no box loss from pseudo boxes (before 29 Nov)": {"pseudo_box_min_score": None},
    "online, lambda_u 2": {"lambda_u": 2.0},
    "online, 2 unlabeled images per labeled one": {"unlabeled_ratio": 2.0},
}


def summarize(project: Path, name: str) -> str:
    """Three tables from every run of the bench, each arm per seed with mean ± std and the gap it recovers against
    the better labeled-only arm of its table: from main's round 0s (the round schedule's and Ultralytics' own
    budget-matched arms), from the labeled-only models trained to convergence (that model, or it continued
    for the yolossl arm's steps), and the same with every arm's EMA fitted to its run (`--ema fitted`), with
    seed 0's ablations."""
    main = _per_seed(
        project,
        {
            "": [name, f"{name}-seed[0-9]*"],
            " (supervised-fresh)": [f"{name}-supervised-fresh*"],
            " (converged step)": [f"{name}-converged", f"{name}-converged-seed*"],
            " (online)": [f"{name}-online", f"{name}-online-seed*"],
            " (online at the offline wall time)": [f"{name}-online-wall-seed*"],
            " (ema-control: online trainer, labels alone)": [f"{name}-ema-control", f"{name}-ema-control-seed*"],
        },
    )
    converged = _per_seed(
        project,
        {
            "": [f"{name}-from-converged-seed*"],
            " (ema-control: online trainer, labels alone)": [f"{name}-ema-control-from-converged-seed*"],
        },
    )
    ema = "online (ema-control: online trainer, labels alone)"
    matched = ["supervised", "supervised (supervised-fresh)"]
    tables = [_table(main, [matched, [*matched, "converged (converged step)", ema]], "from main's round 0s")]
    if converged:
        tables.append(
            _table(
                converged,
                [["converged", "supervised"], ["converged", "supervised", ema]],
                "from the converged labeled-only models",
            )
        )
    fitted = _per_seed(
        project,
        {
            "": [f"{name}-fitted-ema-from-converged-seed*"],
            " (ema-control: online trainer, labels alone)": [
                f"{name}-ema-control-from-converged-seed*",
                f"{name}-fitted-ema-ema-control-from-converged-seed*",
            ],
        },
        mark_per_round=True,
    )
    # The online trainer's EMA was fitted before every other arm's: its from-converged runs belong here too.
    fitted.update(_per_seed(project, {"": [f"{name}-from-converged-seed*"]}, only=("online",)))
    for ablation in sorted(project.glob(f"{name}-fitted-ema-from-converged-ablation-*")):
        label = re.sub(r"-seed\d+$", "", ablation.name.split("-ablation-")[1])  # more seeds of one ablation
        for arm, values in _per_seed(project, {f" (ablation: {label})": [ablation.name]}).items():
            fitted.setdefault(arm, {}).update(values)
    if fitted:
        tables.append(
            _table(
                fitted,
                [["supervised"], ["converged", "supervised", "supervised (per round)", ema]],
                "from the converged labeled-only models, every arm's EMA fitted",
            )
        )
    return "\n\n".join(tables)


def _per_seed(
    project: Path, patterns: dict[str, list[str]], mark_per_round: bool = False, only: tuple[str, ...] = ()
) -> dict[str, dict[int, float]]:
    """mAP50-95 per arm and seed (of the `only` arms, when given); with `mark_per_round`, supervised and oracle arms
    trained round by round (before `matched_arms` was one run) are their own rows."""
    per_seed: dict[str, dict[int, float]] = {}
    for suffix, globs in patterns.items():
        for folder in sorted({f for g in globs for f in project.glob(g)}):
            if (folder / "bench.json").is_file():
                bench = json.loads((folder / "bench.json").read_text())
                for row in bench["per_seed"]:
                    if only and row["arm"] not in only:
                        continue
                    per_round = (
                        mark_per_round and row["arm"] in ("supervised", "oracle") and "matched_arms" not in bench
                    )
                    arm = row["arm"] + (" (per round)" if per_round else "") + suffix
                    per_seed.setdefault(arm, {})[row["seed"]] = row["map50_95"]
    return per_seed


def _table(per_seed: dict[str, dict[int, float]], baselines: list[list[str]], title: str) -> str:
    """Each arm per seed, with one gap column per set of labeled-only baselines (the better of the set, per seed)."""
    bases = [_best_per_seed(per_seed, arms) for arms in baselines]
    oracle = _best_per_seed(per_seed, ["oracle", "oracle (per round)"])
    columns = "".join(f" gap recovered per seed (vs the better of {' / '.join(arms)}) |" for arms in baselines)
    lines = [f"| arm ({title}) | mAP50-95 per seed | mean ± std |{columns}", "|---|---|---|" + "---|" * len(bases)]
    for arm, values in per_seed.items():
        seeds = sorted(values)
        shown = ", ".join(f"{values[s]:.3f}" for s in seeds)
        mean, std = statistics.fmean(values.values()), statistics.pstdev(values.values())
        gaps = " | ".join(", ".join(_gap(values[s], base.get(s), oracle.get(s)) for s in seeds) for base in bases)
        lines.append(f"| {arm} | {shown} | {mean:.3f} ± {std:.3f} | {gaps} |")
    return "\n".join(lines)


def _best_per_seed(per_seed: dict[str, dict[int, float]], arms: list[str]) -> dict[int, float]:
    best: dict[int, float] = {}
    for arm in arms:
        for seed, value in per_seed.get(arm, {}).items():
            best[seed] = max(value, best.get(seed, value))
    return best


def _gap(value: float, base: float | None, oracle: float | None) -> str:
    """The share of the labeled-only-to-oracle gap an arm recovers; none when the labels alone reach the oracle."""
    if base is None or oracle is None:
        return "-"
    if oracle - base < 0.005:
        return "no gap"
    return f"{(value - base) / (oracle - base):.0%}"


STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}")


def minutes(cycle_log: Path) -> float:
    """A run's wall time from its log's first and last timestamps: its rounds after the adopted round 0, labeling,
    validation and report included (the bench's runs are never resumed, so no idle time counts)."""
    stamps = [m.group(0) for line in cycle_log.read_text().splitlines() if (m := STAMP.match(line))]
    first, last = (datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in (stamps[0], stamps[-1]))
    return (last - first).total_seconds() / 60


def online_wall_share(project: Path, name: str, seed: int) -> float:
    """Offline rounds' minutes / online run's minutes on one seed: the online steps that fit the offline time."""
    offline = minutes(project / name / f"seed_{seed}" / "yolossl" / "cycle.log")
    online_logs = sorted(project.glob(f"{name}-online/seed_{seed}/online/cycle.log")) or sorted(
        project.glob(f"{name}-online-seed*/seed_{seed}/online/cycle.log")
    )
    if not online_logs:
        raise SystemExit(f"no online run of seed {seed} under {project}/{name}-online*: run --steps online first")
    online = minutes(online_logs[0])
    print(f"seed {seed}: offline rounds {offline:.1f} min, online at matched steps {online:.1f} min", flush=True)
    return offline / online


def yolossl_run(project: Path, pattern: str, seed: int) -> Path:
    """The from-converged run (all arms, or a subset as a run apart) whose yolossl arm set that seed's steps."""
    found = earlier_yolossl_run(project, pattern, seed)
    if found is None:
        raise SystemExit(f"no yolossl arm of seed {seed} in {project}/{pattern}: run --steps from-converged first")
    return found


def earlier_yolossl_run(project: Path, pattern: str, seed: int) -> Path | None:
    found = [
        run for run in sorted(project.glob(pattern)) if (run / f"seed_{seed}" / "yolossl" / "state.json").is_file()
    ]
    return found[0] if found else None


def converged_round0s(project: Path, names: list[str], seed: int) -> Path:
    """A run folder whose seed_N/round0 is the converged step's model of that seed (main's own round 0 when that
    one had converged), from the first of `names` that has one: every arm's start."""
    for name in names:
        main = project / name / f"seed_{seed}" / "round0"
        record = main / "round_0" / "round0_cycles.json"
        main_converged = record.is_file() and json.loads(record.read_text())["converged"]
        found = [main / "weights" / "best.pt"] if main_converged else []
        found += sorted(project.glob(f"{name}-converged*/seed_{seed}/converged/weights/best.pt"))
        if found:
            break
    else:
        raise SystemExit(
            f"no converged model of seed {seed} under {project}/{names[0]}-converged*: run --steps converged"
        )
    linked = project / f"{name}-converged-round0s" / f"seed_{seed}" / "round0"
    if not linked.is_symlink():
        linked.parent.mkdir(parents=True, exist_ok=True)
        linked.symlink_to(found[0].parents[1].resolve())
    return linked.parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="glyphs")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--project", default="runs/bench")
    parser.add_argument(
        "--steps", default="main,supervised-fresh,online,ablations", help="comma-separated steps, in this order"
    )
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="the supervised-fresh, converged, from-converged, ema-control and ablations-from-converged steps start "
        "at this seed",
    )
    parser.add_argument("--converge-cycles", type=int, default=12, help="converged step: more cycles at most")
    parser.add_argument(
        "--from-converged-arms",
        default=",".join(a for a in ARMS if a != "supervised-wall"),
        help="from-converged step: these arms (a subset: a run apart)",
    )
    parser.add_argument("--online-seeds", type=int, default=None, help="seeds of the online step (default: --seeds)")
    parser.add_argument("--only", nargs="*", help="ablation names to run (default: all)")
    parser.add_argument(
        "--ema",
        default="fitted",
        choices=("fitted", "ultralytics"),
        help="every arm's saved weight average; fitted runs are named NAME-fitted-ema-... (the runs named NAME-... "
        "were trained on Ultralytics' EMA, before it was fitted)",
    )
    args = parser.parse_args()
    set_up_process()
    import logging

    import ultralytics  # noqa: F401  (its logger is set up on import; quiet it after)

    logging.getLogger("ultralytics").setLevel(logging.WARNING)
    dataset = BENCH_DATASETS["glyphs"]
    common = {"data": str(dataset.ensure()), "label_fraction": dataset.label_fraction, "project": args.project}
    training = {**dataset.training, "ema": args.ema}
    steps = set(args.steps.split(","))
    if steps == {"summary"}:
        print(summarize(Path(args.project), args.name))
        return
    named = args.name + ("-fitted-ema" if args.ema == "fitted" else "")  # this invocation's runs
    main_run = Path(args.project) / named
    if "main" in steps:
        start = time.perf_counter()
        # step `online` runs it from these round 0s (and supervised-wall, matched to its time, with it)
        offline_arms = tuple(arm for arm in ARMS if arm not in ("online", "supervised-wall"))
        result = run_bench(BenchConfig(**common, seeds=args.seeds, training=training, name=named, arms=offline_arms))
        print(format_table(result.summary()))
        print(f"{main_run}: {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    first, suffix = args.first_seed, (f"-seed{args.first_seed}" if args.first_seed else "")

    def more(name: str, arms: tuple[str, ...], first_seed: int, seeds: int, **changes: Any) -> BenchResult:
        """Arms from main's round 0s (unless `round0_from` is given), as a run of their own."""
        config = {"training": training, "round0_from": str(main_run), **changes}
        result = run_bench(BenchConfig(**common, seeds=seeds, first_seed=first_seed, arms=arms, name=name, **config))
        print(format_table(result.summary()), flush=True)
        return result

    if "supervised-fresh" in steps:
        fresh = {"cycle": {"round_schedule": "fresh"}}
        more(f"{named}-supervised-fresh{suffix}", ("supervised",), first, args.seeds - first, **fresh)
    if "converged" in steps:
        cycles = {"converge_cycles": args.converge_cycles}
        more(f"{named}-converged{suffix}", ("converged",), first, args.seeds - first, **cycles)
    if "from-converged" in steps:
        for seed in range(first, args.seeds):
            round0s = str(converged_round0s(Path(args.project), [named, args.name], seed))
            arms = tuple(args.from_converged_arms.split(","))
            part = "" if set(arms) == set(ARMS) - {"supervised-wall"} else "-" + "-".join(arms)
            earlier = earlier_yolossl_run(Path(args.project), f"{named}-from-converged-seed{seed}*", seed)
            budget = {"budget_from": str(earlier)} if earlier and "yolossl" not in arms else {}
            more(f"{named}-from-converged-seed{seed}{part}", arms, seed, 1, round0_from=round0s, **budget)
    if "ema-control-from-converged" in steps:  # after from-converged: its yolossl arm's steps
        for seed in range(first, args.seeds):
            round0s = str(converged_round0s(Path(args.project), [named, args.name], seed))
            budget = str(yolossl_run(Path(args.project), f"{named}-from-converged-seed{seed}*", seed))
            labels_alone = {"cycle": {"burn_in_epochs": 10_000}, "round0_from": round0s, "budget_from": budget}
            more(f"{named}-ema-control-from-converged-seed{seed}", ("online",), seed, 1, **labels_alone)
    if "ablations-from-converged" in steps:  # one ingredient changed, at from-converged's steps, seed by seed
        for seed in range(first, args.seeds if first else 1):  # seed 0 unless --first-seed asks for more
            round0s = str(converged_round0s(Path(args.project), [named, args.name], seed))
            default = yolossl_run(Path(args.project), f"{named}-from-converged-seed{seed}*", seed)
            ablations = [(label, options, "yolossl") for label, options in ABLATIONS.items()]
            ablations += [(label, options, "online") for label, options in ONLINE_ABLATIONS.items()]
            for label, options, arm in ablations:
                if not args.only or label in args.only:
                    slug = "ablation-" + "".join(c if c.isalnum() else "-" for c in label)[:40].strip("-")
                    changes = {"cycle": options, "round0_from": round0s, "budget_from": str(default)}
                    run = f"{named}-from-converged-{slug}" + (f"-seed{seed}" if seed else "")
                    result = more(run, (arm,), seed, 1, **changes)
                    print(f"seed {seed}, {label}: mAP50-95 {result.arms[0].map50_95:.4f}", flush=True)
    if "online" in steps:
        more(f"{named}-online", ("online",), 0, args.online_seeds or args.seeds)
    if "online-wall" in steps:
        for seed in range(first, args.seeds):
            share = online_wall_share(Path(args.project), named, seed)
            more(f"{named}-online-wall-seed{seed}", ("online",), seed, 1, online_steps=share)
    if "ema-control" in steps:
        labels_alone = {"cycle": {"burn_in_epochs": 10_000}}  # longer than the run: the labels alone, every epoch
        more(f"{named}-ema-control{suffix}", ("online",), first, args.seeds - first, **labels_alone)
    if "ablations" not in steps:
        return
    baseline = json.loads((main_run / "bench.json").read_text())["arms"]
    supervised, oracle = (baseline[a]["per_seed_map50_95"][0] for a in ("supervised", "oracle"))
    default = baseline["yolossl"]["per_seed_map50_95"][0]
    rows = [("offline cycle", default)]
    for label, options in ABLATIONS.items():
        if args.only and label not in args.only:
            continue
        slug = "ablation-" + "".join(c if c.isalnum() else "-" for c in label)[:40].strip("-")
        run = run_bench(
            BenchConfig(
                **common,
                seeds=1,
                arms=("yolossl",),
                training=training,
                cycle=options,
                name=f"{named}-{slug}",
                round0_from=str(main_run),
            )
        )
        rows.append((label, run.arms[0].map50_95))
        print(f"{label}: mAP50-95 {run.arms[0].map50_95:.4f}", flush=True)
    print(f"\nseed 0: supervised (budget-matched) {supervised:.4f}, oracle {oracle:.4f}")
    print("| yolossl arm, seed 0 | val mAP50-95 | gap recovered |\n|---|---|---|")
    for label, value in rows:
        gap = (value - supervised) / (oracle - supervised) if oracle > supervised else float("nan")
        print(f"| {label} | {value:.4f} | {gap:.0%} |")


if __name__ == "__main__":
    main()
