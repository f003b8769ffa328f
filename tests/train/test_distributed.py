"""Decisions made once for every rank of a multi-GPU run, pinned on a 2-process gloo group on the CPU."""

from __future__ import annotations

import math
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from yolossl.label.filters import ClassThresholds
from yolossl.train.distributed import decided_on_rank_0
from yolossl.train.teacher import KeptShare


def _rank(rank: int, port: int, results) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        measured = []

        def measure() -> ClassThresholds:  # each rank's own shard of val would give its own thresholds
            measured.append(rank)
            return ClassThresholds({0: 0.3 + rank / 10, 1: math.inf}, 0.1, "precision >= 0.8 per class on val")

        thresholds = decided_on_rank_0(measure)
        share = KeptShare(3)  # rank 0 saw two boxes of class 0 and kept one; rank 1 one of class 2, kept
        share.add(
            torch.tensor([0.0, 0.0] if rank == 0 else [2.0]), torch.tensor([True, False] if rank == 0 else [True])
        )
        share.sum_across_ranks(torch.device("cpu"))
        results[rank] = (measured, thresholds.kept, thresholds.unreachable, share.seen.tolist(), share.kept.tolist())
    finally:
        dist.destroy_process_group()


def test_thresholds_are_measured_on_rank_0_and_the_kept_share_counts_every_rank() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_rank, args=(port, results), nprocs=2, join=True)
        assert results[0] == ([0], {0: 0.3, 1: math.inf}, [1], [2, 0, 1], [1, 0, 1])
        assert results[1] == ([], {0: 0.3, 1: math.inf}, [1], [2, 0, 1], [1, 0, 1])  # rank 0's thresholds; all counts


def test_in_one_process_the_decision_is_just_made() -> None:
    assert decided_on_rank_0(lambda: 7) == 7
    assert not dist.is_initialized()
