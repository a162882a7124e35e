"""Data-parallel training over processes with ``torch.distributed`` (DDP-style).

Every process holds the whole model: the global latents' variational parameters are
replicated, like the networks. Each global minibatch is split between the processes; each
computes Pyro's loss on its share with the cell plate sized to the *global* training set,
so its loss is an unbiased estimate of the full-data negative ELBO, and the gradients are
averaged with weights ``b_r / B`` (the process's share of the global batch). For equal
shares that is the plain mean, and the update estimates the same gradient as one process
with the whole global batch; the global terms are averaged over independent draws, which
only lowers their variance.

Launch one process per device with ``torchrun``; :meth:`DataParallel.from_environment`
joins the process group it sets up (``gloo`` on CPU, ``nccl`` on GPU).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from samsvae_plus.errors import InputError


def main_process_info(logger: logging.Logger, parallel: DataParallel | None) -> Callable[..., None]:
    """``logger.info`` on the main process (or without data parallelism), else
    ``logger.debug``: every process runs the same steps, and one account of them is enough."""
    return logger.info if parallel is None or parallel.is_main else logger.debug


@dataclass(frozen=True)
class DataParallel:
    """This process's place in a data-parallel group."""

    rank: int
    world_size: int

    @classmethod
    def from_environment(cls) -> DataParallel:
        """Join (or reuse) the default process group that ``torchrun`` describes."""
        if not dist.is_available():
            raise InputError("this torch build has no torch.distributed; train without distributed")
        if not dist.is_initialized():
            if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
                raise InputError(
                    "distributed training needs a process group: launch with "
                    "torchrun --nproc_per_node=N ..., or call "
                    "torch.distributed.init_process_group() first"
                )
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return cls(dist.get_rank(), dist.get_world_size())

    @property
    def is_main(self) -> bool:
        """Whether this process writes outputs (rank 0)."""
        return self.rank == 0

    def device(self) -> torch.device:
        """This process's device: its own GPU (``LOCAL_RANK``) when there are GPUs."""
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", self.rank)))
        return torch.device("cpu")

    def sampling_seed(self, seed: int) -> int:
        """A torch seed per process: the minibatch order is shared, the particles are not."""
        return int(np.random.SeedSequence([seed, self.rank]).generate_state(1)[0])

    def shard(self, positions: np.ndarray) -> np.ndarray:
        """This process's share of a global minibatch. A batch with fewer cells than
        processes (the tail of an epoch) goes to every process whole, so no process is idle
        and the weighted average is still unbiased."""
        if len(positions) < self.world_size:
            return positions
        return np.array_split(positions, self.world_size)[self.rank]

    @torch.no_grad()
    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Make every process start from rank 0's parameters and buffers."""
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)

    @torch.no_grad()
    def average_gradients(self, params: list[torch.nn.Parameter], n_local: int) -> None:
        """Replace each gradient by the average over processes, weighted by batch share."""
        trainable = [p for p in params if p.requires_grad]
        # float32: nccl reduces CUDA tensors, and counts of cells are exact in it
        share = torch.tensor([float(n_local)], device=self.device())
        dist.all_reduce(share)
        weight = n_local / float(share)
        flat = torch.cat(
            [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in trainable]
        )
        flat.mul_(weight)
        dist.all_reduce(flat)
        offset = 0
        for p in trainable:
            p.grad = flat[offset : offset + p.numel()].view_as(p).clone()
            offset += p.numel()

    def sum(self, value: float) -> float:
        """The sum of a number over processes."""
        total = torch.tensor([value], dtype=torch.float64, device=self.device())
        dist.all_reduce(total)
        return float(total)
