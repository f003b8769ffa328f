"""What the online trainer decides once for every process of a multi-GPU run.

Under DDP each rank sees its own shard of val (Ultralytics builds `test_loader` per rank): thresholds measured on a
shard would differ from rank to rank, and the ranks would train on different targets. Rank 0 measures on the whole
val split and every rank takes its result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch.distributed as dist

T = TypeVar("T")


def decided_on_rank_0(decide: Callable[[], T]) -> T:
    """`decide()` run on rank 0 only, its (picklable) result given to every rank; in one process, just `decide()`."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return decide()
    result = [decide() if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(result, src=0)
    return result[0]
