"""`yolossl bench`: will SSL help on my data? Every arm on identical splits, seeds and training budget.

Per split seed the training images are split into a labeled fraction and a pool whose labels are hidden (or an
explicit labeled / unlabeled / truth split is used), and one labeled-only round 0 is trained, the start of every
arm. Then, once per training seed (`train_seeds` replicates), each arm trains beyond it:

- saturated: round 0 itself, the labels trained until saturated (round 0 is shared, so once per seed);
- supervised: the labels alone for the online arm's optimizer steps (step-matched);
- supervised-wall: the labels alone for the online arm's measured wall time (wall-matched);
- docs: the docs' workflow, predict(conf=0.85) -> merge (empty images as background) -> retrain;
- yolossl: the offline rounds (on request; when it runs, its images seen set the steps of the others);
- online: the default cycle (an EMA teacher inside the run, in rounds);
- oracle: the hidden labels restored, for the same steps: the ceiling.

Every training validates once, at its end (no arm picks a best epoch). Val chooses what each method chooses
(thresholds, the round guard, kept-if-above-round-0); the test split (the data YAML's `test:`, else a fixed
half of val held out) is only scored, and every reported figure is its. The summary pairs each arm with the
labeled-only arms run by run (same split, seed and round 0): mean difference with a 90% bootstrap interval,
and the gap recovered against the better labeled-only arm, step- and wall-matched.

Rooms: `config` (arms and options), `splits` (test, labels kept, pool hidden), `arms` (how each trains and is
scored), `statistics` (pairs, intervals, gaps), `report` (bench.json, bench.md), `run` (the loop).

    >>> result = run_bench(BenchConfig(data="data.yaml", label_fraction=0.1, seeds=3, train_seeds=2))
"""

from yolossl.bench.arms import ArmResult, online_config
from yolossl.bench.config import ARMS, DEFAULT_ARMS, BenchConfig
from yolossl.bench.report import BenchResult, format_table
from yolossl.bench.run import run_bench
from yolossl.bench.splits import hold_out_test, make_split

__all__ = [
    "ARMS",
    "DEFAULT_ARMS",
    "ArmResult",
    "BenchConfig",
    "BenchResult",
    "format_table",
    "hold_out_test",
    "make_split",
    "online_config",
    "run_bench",
]
