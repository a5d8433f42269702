"""The few pieces of ``torch.distributed`` the training loop needs.

A single-process run never initialises a process group, and every helper here then
does the single-process thing, so the same code path serves ``python -m petlib.train``,
a notebook, and ``torchrun --nproc_per_node=N -m petlib.train``.

Under torchrun workers die and come back: a killed or pre-empted process makes torchrun
(``--max_restarts N``) stop the others and start the whole group again, with the same
arguments. :func:`init_from_env` makes such a restarted group form reliably and bounds every
wait (``PETLIB_DIST_TIMEOUT``); :func:`group_error` turns a broken group into one line;
:func:`check_same` stops a group whose processes see different files; and
:func:`sigterm_deferred` lets the main process finish writing a set of files before
torchrun's SIGTERM ends it. docs/distributed.md has the commands.
"""
from __future__ import annotations

import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = [
    "ShardSampler", "init_from_env", "is_distributed", "rank", "world_size", "is_main", "all_reduce_sum",
    "broadcast_buffers", "barrier", "cleanup", "TIMEOUT_ENV", "DEFAULT_TIMEOUT", "timeout_from_env",
    "restart_count", "GroupError", "group_error", "check_same", "sigterm_deferred",
]

#: Environment variable: how many seconds a process waits for the others, to form the group and in
#: each collective, before it gives up with a :class:`GroupError` (default :data:`DEFAULT_TIMEOUT`).
TIMEOUT_ENV = "PETLIB_DIST_TIMEOUT"
#: torch's default for NCCL (gloo's is 30 minutes): longer than anything one process does alone
#: between two collectives (the main process writing a checkpoint, the curves and the card).
DEFAULT_TIMEOUT = timedelta(minutes=10)


class GroupError(ConnectionError):
    """The process group broke: a process died, stopped answering, or sees other files."""


def timeout_from_env() -> timedelta:
    """``PETLIB_DIST_TIMEOUT`` seconds, or :data:`DEFAULT_TIMEOUT`."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{TIMEOUT_ENV}={text!r}: expected a number of seconds > 0, e.g. {TIMEOUT_ENV}=600")
    return timedelta(seconds=seconds)


def restart_count() -> int:
    """How many times torchrun has restarted this node's workers (``TORCHELASTIC_RESTART_COUNT``).

    For messages only: each node counts its own restarts, so two nodes may disagree.
    """
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def init_from_env(device: torch.device, timeout: timedelta | None = None) -> bool:
    """Join the process group if launched by torchrun (``WORLD_SIZE`` > 1 in the environment).

    Uses NCCL on CUDA and gloo otherwise; ``timeout`` (default :func:`timeout_from_env`) bounds
    forming the group and every collective. Returns whether this is a distributed run.

    torchrun's agent keeps one key-value store for the whole job, restarts included, and a
    restarted group that forms in it reads the addresses the dead processes left there: it
    fails to connect ("connectFullMesh ... Connection refused") or waits on a process that is
    gone. So each incarnation of the group first agrees on a fresh namespace of that store
    (:func:`_fresh_namespace`) and forms there.
    """
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    timeout = timeout if timeout is not None else timeout_from_env()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    store, group_rank, size = next(dist.rendezvous("env://", timeout=timeout))
    store.set_timeout(timeout)
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        store = _fresh_namespace(store, group_rank, size, timeout)
    dist.init_process_group(backend=backend, store=store, rank=group_rank, world_size=size, timeout=timeout)
    return True


def _fresh_namespace(store: dist.Store, group_rank: int, size: int, timeout: timedelta) -> dist.Store:
    """A prefix of ``store`` that this incarnation of the group alone uses, agreed by handshake.

    Rank 0 names the namespace (a new UUID). Every other rank posts a new token of its own
    under ``hello/<rank>`` and waits for ``reply/<token>``, which only this incarnation's rank 0
    can write: whatever an earlier incarnation left in the store is never taken for an answer.
    Rank 0 answers every token it sees until all ranks have joined under the new name.
    """
    deadline = time.monotonic() + timeout.total_seconds()
    if group_rank == 0:
        name = uuid.uuid4().hex
        joined, answered = f"petlib/{name}/joined", {}
        while store.add(joined, 0) < size - 1:
            for other in range(1, size):
                key = f"petlib/hello/{other}"
                token = store.get(key).decode() if store.check([key]) else None
                if token is not None and answered.get(other) != token:
                    store.set(f"petlib/reply/{token}", name)
                    answered[other] = token
            if time.monotonic() > deadline:
                raise GroupError(f"process 0 of {size}: only {store.add(joined, 0) + 1} process(es) joined the group "
                                 f"within {timeout.total_seconds():g} s ({TIMEOUT_ENV})")
            time.sleep(0.02)
    else:
        token = uuid.uuid4().hex
        store.set(f"petlib/hello/{group_rank}", token)
        try:
            store.wait([f"petlib/reply/{token}"], timeout)
        except RuntimeError as err:  # DistStoreError: a timeout
            raise GroupError(f"process {group_rank} of {size}: process 0 did not answer within "
                             f"{timeout.total_seconds():g} s ({TIMEOUT_ENV})") from err
        name = store.get(f"petlib/reply/{token}").decode()
        store.add(f"petlib/{name}/joined", 1)
    return dist.PrefixStore(f"petlib/{name}/", store)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on the process that writes checkpoints, logs and progress bars."""
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes (in place); a no-op in a single process."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


@torch.no_grad()
def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Copy ``module``'s buffers (e.g. BatchNorm running statistics) from rank ``src`` to all."""
    if is_distributed():
        for buffer in module.buffers():
            dist.broadcast(buffer, src)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def group_error(err: BaseException) -> GroupError | None:
    """``err`` as a one-line :class:`GroupError` if the process group broke, else None.

    Another process dying shows here as gloo's "Connection closed by peer" or "Connection reset
    by peer" (a RuntimeError whose text is a C++ source position and advice), NCCL's or the
    store's errors as ``torch.distributed.DistError``. The line keeps the gist and says what
    happens next.
    """
    if isinstance(err, GroupError):
        return err
    text = str(err)
    if not (isinstance(err, dist.DistError) or (isinstance(err, RuntimeError) and "gloo" in text.lower())):
        return None
    gist = re.sub(r"\[[^\]\s]*\.(?:cc|cpp|h|hpp):\d+\]\s*", "", text.strip().splitlines()[0] if text.strip() else "")
    gist = gist.split(". ")[0].strip()[:200] or type(err).__name__
    where = f"process {rank()} of {world_size()}" if is_distributed() else "this process"
    return GroupError(f"{where} lost the process group ({gist}): another process died or stopped answering; "
                      "under torchrun --max_restarts the group starts again (with --resume from the last completed "
                      "epoch)")


def check_same(value: int, what: str) -> None:
    """Raise the same :class:`GroupError` on every process unless all hold the same ``value``.

    For a decision each process makes from what it reads (e.g. whether there is a run to
    resume): processes that decided differently would wait on each other forever.
    """
    if not is_distributed():
        return
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    bounds = torch.tensor([value, -value], dtype=torch.float64, device=device)  # one all-reduce: max, and -min
    dist.all_reduce(bounds, op=dist.ReduceOp.MAX)
    if bounds[0] != -bounds[1]:
        raise GroupError(f"the {world_size()} processes disagree on {what}")


@contextmanager
def sigterm_deferred() -> Iterator[None]:
    """Hold a SIGTERM that arrives in the block until the block ends, then act on it as before.

    torchrun stops the surviving workers of a broken group with SIGTERM, as SLURM does a
    pre-empted job: the main process finishes the set of files it is writing (a best and a
    last checkpoint agree) and ends then. Does nothing outside the main thread, where Python
    cannot set signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        if received:
            signal.raise_signal(signal.SIGTERM)


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank``: an evaluation shard with no padding.

    ``DistributedSampler`` pads shards to equal length by repeating images, which
    would count them twice in a validation mean; evaluation needs no equal shards.
    In one process this is every index in order.
    """

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, length, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
