"""Data-parallel training across processes through torch.distributed (DDP), one process per device.

    torchrun --nproc_per_node 4 -m istar_gym.rl.trainer --device cuda --groups 32 ...
    istar-train --processes 2 ...          # the same on this machine's CPU cores, from one command

A launcher (``torchrun``, ``accelerate launch``, or `launch_processes` for ``--processes``) starts
the processes and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. Each process then plays
``groups / world_size`` whole groups of every iteration, so group baselines and DPO pairs stay
within one process, and ``minibatch_size / world_size`` rows of every minibatch, so the run takes
the optimizer steps of a single process on the same batches; `DistributedDataParallel` averages
the gradients of the policy and the PRM, and every process takes the same steps, so all of them
hold the same weights. Process 0 alone
writes the logs and checkpoints and runs the held-out evaluation.

Process ``i`` of a node trains on ``cuda:(i % device count)``, so more processes than GPUs share
them (two processes on the one GPU of a test machine). The backend is NCCL when every process of a
node has a GPU of its own, else Gloo (NCCL refuses two processes on one GPU; Gloo reduces CUDA
tensors too); ``init_world(config, backend=...)`` overrides the choice.

Without a launcher the world has one process and every method here is a no-op, so the
single-process trainer runs exactly as before.

Why processes on a CPU: torch's intra-op threads only split each matrix product, and the tiny
presets' are 64 wide, while processes also split the rollouts (env steps, tokenisation, Python). On
a 2-core machine two processes ran the tiny Sokoban preset at 1.0x-1.8x the env steps per second
of one, and two threads at 0.9x-1.4x (`benchmarks/train_throughput.py`, docs/learning.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import gc
import hashlib
import inspect
import math
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "BACKENDS",
    "World",
    "device_index",
    "init_world",
    "launch_processes",
    "launched",
    "map_location_for",
    "process_group_backend",
    "restore_generator_state",
]

BACKENDS = ("gloo", "nccl")

# Metrics that add up over processes (counts and throughputs); timings take the slowest process;
# everything else is a mean over processes (each plays the same number of episodes).
_SUMMED = ("env_steps", "env_steps_per_s", "tokens_per_s", "prm_pairs")
_SLOWEST = "time_"


@dataclass
class World:
    """This process's place among the processes of one run (a single process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    cuda: bool = False
    owns_process_group: bool = False
    backend: str = "gloo"
    device_index: int = 0  # this process's CUDA device: local_rank % device count
    communicates: bool = False  # False: a world of one without a launcher, every method a no-op
    _wrapped: dict = field(default_factory=dict, repr=False)
    _closers: list = field(default_factory=list, repr=False)

    @property
    def is_main(self) -> bool:
        """Process 0: the one that logs, checkpoints and evaluates."""
        return self.rank == 0

    def shard(self, config):
        """This process's part of the run: its share of the groups and of every minibatch, on its own GPU."""
        if self.size == 1:
            return config
        device = f"cuda:{self.device_index}" if self.cuda else config.device
        return dataclasses.replace(config, groups=config.groups // self.size, minibatch_size=max(1, config.minibatch_size // self.size), device=device)

    def data_parallel(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` wrapped in `DistributedDataParallel` (once; later calls return the same
        wrapper), or ``module`` itself in a single process. Wrapping copies process 0's weights to
        all processes. Only gradient passes should go through the wrapper: forward passes without
        a backward (rollouts, scoring) use ``module`` and need no communication."""
        if not self.communicates:
            return module
        if module not in self._wrapped:
            from torch.nn.parallel import DistributedDataParallel

            # No buffer broadcast before each forward: processes run different numbers of
            # accumulation passes, and the only buffers (rotary tables) never change.
            parameters = inspect.signature(DistributedDataParallel).parameters
            no_sync = "forward_sync_buffers" if "forward_sync_buffers" in parameters else "broadcast_buffers"  # torch >= 2.13
            self._wrapped[module] = DistributedDataParallel(module, device_ids=[self.device_index] if self.cuda else None, **{no_sync: False})
        return self._wrapped[module]

    def max(self, value: int) -> int:
        """The largest ``value`` over all processes."""
        if not self.communicates:
            return value
        tensor = torch.tensor([value], dtype=torch.long, device=self._device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return int(tensor.item())

    def sum(self, values: list[float]) -> list[float]:
        """Each of ``values`` summed over all processes."""
        if not self.communicates:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self._device)
        torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def all_gather(self, value: Any) -> list[Any]:
        """Every process's ``value`` (any picklable object), in rank order, on every process."""
        if not self.communicates:
            return [value]
        values: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(values, value)
        return values

    def broadcast(self, value: Any) -> Any:
        """Process 0's ``value`` on every process."""
        if not self.communicates:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def reduce_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """One iteration's metrics over all processes: counts and throughputs summed, timings of
        the slowest process, the rest averaged (NaN where a process had no value, e.g. no DPO pair)."""
        if not self.communicates:
            return metrics
        gathered = self.all_gather(metrics)
        names = list(dict.fromkeys(name for record in gathered for name in record))
        reduced = {}
        for name in names:
            values = np.array([record.get(name, math.nan) for record in gathered], dtype=float)
            if name in _SUMMED:
                reduced[name] = float(np.nansum(values))
            elif name.startswith(_SLOWEST):
                reduced[name] = float(np.nanmax(values))
            else:
                finite = values[~np.isnan(values)]
                reduced[name] = float(finite.mean()) if finite.size else math.nan
        return reduced

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Process 0 runs the block first (e.g. building and saving the tiny model's warm start);
        the others wait, then run it too (and find what process 0 saved). If it fails in process
        0, the others raise its error too, instead of a lost connection once process 0 is gone."""
        if not self.communicates:
            yield
            return
        if self.is_main:
            try:
                yield
            except BaseException as error:
                self.broadcast(f"{type(error).__name__}: {error}")
                raise
            self.broadcast(None)
            return
        failure = self.broadcast(None)
        if failure is not None:
            raise RuntimeError(f"process 0 failed before this one could start: {failure}")
        yield

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` in `close` before the process group goes, e.g. an in-process vLLM
        engine's ``close``: it holds subgroups of that group, which must be torn down first."""
        self._closers.append(callback)

    def close(self) -> None:
        """Run the `on_close` callbacks (last registered first), free the DDP wrappers, then tear
        down the process group if `init_world` created it. The wrappers go while their group
        lives: a DDP reducer freed after its Gloo group was destroyed blocked forever in the
        group's destructor, leaving a finished ``--processes 2`` run hanging at exit."""
        while self._closers:
            self._closers.pop()()
        if self._wrapped:
            self._wrapped.clear()
            gc.collect()  # DDP wrappers sit in reference cycles; free them now, not at some later collection
        if self.owns_process_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    @property
    def _device(self) -> torch.device:
        # Gloo reduces CUDA tensors as well, but CPU ones avoid a copy for these few scalars.
        return torch.device("cuda", self.device_index) if self.backend == "nccl" else torch.device("cpu")


def init_world(config, backend: str | None = None) -> World:
    """Join the run the launcher started (``WORLD_SIZE`` > 1), or a world of one without a launcher.

    ``backend`` (``"gloo"`` or ``"nccl"``) overrides `process_group_backend`'s choice. Fails before
    any communication when ``config.groups`` does not split evenly, so every process stops with
    the same message instead of waiting for the others.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        # Even when a process group exists: an in-process vLLM engine starts a group of one of its own.
        return World()
    if config.groups % size:
        fits = [n for n in range(1, config.groups + 1) if config.groups % n == 0]
        raise ValueError(
            f"groups={config.groups} does not split over {size} processes: each process plays whole groups "
            f"(group baselines and DPO pairs stay within one process). Use --groups a multiple of {size}, "
            f"or launch a number of processes that divides {config.groups} ({', '.join(map(str, fits))})"
        )
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = config.device.startswith("cuda")
    index = 0
    if cuda:
        index = device_index(local_rank, torch.cuda.device_count())
        torch.cuda.set_device(index)
    joined = torch.distributed.is_initialized()
    if joined:
        chosen = "nccl" if "nccl" in str(torch.distributed.get_backend()) else "gloo"
    else:
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", str(size)))
        chosen = process_group_backend(cuda, backend, per_node, torch.cuda.device_count() if cuda else 0)
        # Process 0 evaluates while the others wait at the next collective: allow a long wait.
        torch.distributed.init_process_group(chosen, timeout=datetime.timedelta(hours=2))
    return World(
        rank=rank,
        size=size,
        local_rank=local_rank,
        cuda=cuda,
        owns_process_group=not joined,
        backend=chosen,
        device_index=index,
        communicates=True,
    )


def launched() -> bool:
    """Whether this process was started by a launcher as one of several (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def launch_processes(function: Callable[[Any], Any], argument: Any, processes: int) -> Any:
    """Run ``function(argument)`` in ``processes`` new local processes that form one process group,
    as ``torchrun --standalone --nproc_per_node processes`` would; returns process 0's result.

    ``function`` must be importable by name (the processes are spawned, not forked: a forked child
    deadlocks in torch's thread pool once the parent has used it), and ``argument`` picklable. A
    failing process stops all of them and raises torch's ``ChildFailedError`` with its traceback.
    """
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    settings = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=processes,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        start_method="spawn",
    )
    return elastic_launch(settings, function)(argument)[0]


def device_index(local_rank: int, device_count: int) -> int:
    """The CUDA device of process ``local_rank`` of a node: ``local_rank % device_count``, so
    processes beyond the number of GPUs share them round-robin."""
    if device_count < 1:
        raise RuntimeError(
            f"process {local_rank} of this node trains on CUDA but torch sees no CUDA device; check the driver and "
            "CUDA_VISIBLE_DEVICES, or train with --device cpu"
        )
    return local_rank % device_count


def process_group_backend(cuda: bool, requested: str | None, processes_per_node: int, device_count: int) -> str:
    """The torch.distributed backend: ``requested`` if given, else NCCL when every process of a node
    has a GPU of its own and Gloo otherwise (on CPU, or processes sharing a GPU)."""
    if requested is not None and requested not in BACKENDS:
        raise ValueError(f"distributed backend {requested!r}: expected one of {', '.join(BACKENDS)}")
    if requested == "nccl" and not cuda:
        raise ValueError("distributed backend 'nccl' needs --device cuda; use 'gloo' to train on CPU")
    sharing = cuda and processes_per_node > device_count
    if requested == "nccl" and sharing:
        raise ValueError(
            f"distributed backend 'nccl' with {processes_per_node} processes per node on {device_count} GPU(s): NCCL "
            "refuses two processes on one GPU; use 'gloo', or launch at most one process per GPU"
        )
    if requested is not None:
        return requested
    return "nccl" if cuda and not sharing else "gloo"


def map_location_for(device: str | torch.device) -> torch.device:
    """Where ``torch.load`` should put a checkpoint's tensors for a run on ``device``: that device,
    with a bare ``"cuda"`` meaning this process's current GPU, so a checkpoint written on one GPU
    (or on CPU) resumes on another."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def restore_generator_state(generator: torch.Generator, state: torch.Tensor) -> None:
    """Set ``generator`` to a state saved by `torch.Generator.get_state`, also from another device.

    A CPU generator's state (Mersenne Twister, 5056 bytes) and a CUDA one's (Philox seed and
    offset, 16 bytes) cannot be converted into each other. Across devices the generator is instead
    seeded from a hash of the saved state: deterministic, and still a continuation that differs for
    every saved state (samples on another device differ from the original run's anyway).
    """
    state = state.detach().cpu()
    if state.numel() == generator.get_state().numel():
        generator.set_state(state)
        return
    digest = hashlib.sha256(state.numpy().tobytes()).digest()
    generator.manual_seed(int.from_bytes(digest[:8], "little") >> 1)
