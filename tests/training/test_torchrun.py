"""petlib under torchrun as a cluster runs it: two nodes, and a worker killed mid-epoch.

Every run here trains the same tiny network (a 4-channel UNet, 16 px, 8 images a split, one
image per process and step: four steps an epoch) for 2 epochs in 2 processes (gloo, the CPU),
all through ``python -m petlib.train``'s ``main``:

- the reference: ``torchrun --standalone --nproc_per_node 2``;
- two launchers, ``--nnodes 2 --node_rank 0/1 --nproc_per_node 1`` on 127.0.0.1 (c10d rendezvous);
- ``--max_restarts 3``, with rank 1 SIGKILLed in the middle of epoch 2 of the first attempt.

Each must leave the reference's files: the same history and the same weights. This file is also
the script torchrun starts (see :func:`_worker`): the command unchanged, plus a record of which
process wrote what and, with ``PETLIB_TEST_KILL_AT=rank:epoch:step``, the kill.
"""
from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

from petlib.data import SAMPLE_ROOT
from petlib.training.checkpoint import load_checkpoint

TRAIN_ARGS = ["--model", "unet", "--model_kwargs", '{"base_channels": 4}', "--data_path", str(SAMPLE_ROOT),
              "--subset", "8", "--image_size", "16", "--batch_size", "1", "--epochs", "2", "--validate",
              "--amp", "off", "--device", "cpu", "--no-progress"]
RUN_FILES = ["unet.pth", "unet_card.json", "unet_card.md", "unet_config.json", "unet_curves.png", "unet_history.csv",
             "unet_last.pth"]
KILL_ENV = "PETLIB_TEST_KILL_AT"  # "rank:epoch:step": that process SIGKILLs itself there, first attempt only
TIMEOUT = 240  # seconds for one torchrun command; each takes well under a minute


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(torchrun_args: list[str], out_dir: Path, record_dir: Path, *extra: str, **env: str) -> subprocess.Popen:
    """``torchrun <torchrun_args> this-file <TRAIN_ARGS> --out_dir out_dir <extra>`` in a session of its own."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PETLIB_TEST_RECORD": str(record_dir), "PETLIB_DIST_TIMEOUT": "120",
           **env}
    command = [sys.executable, "-m", "torch.distributed.run", *torchrun_args, __file__, *TRAIN_ARGS,
               "--out_dir", str(out_dir), *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)


def _finish(*processes: subprocess.Popen) -> list[tuple[int, str]]:
    """Each launcher's exit status and output; whatever is left of them and their workers is killed."""
    results = []
    try:
        deadline = time.monotonic() + TIMEOUT
        for process in processes:
            output, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append((process.returncode, output))
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # torchrun and every worker it started
            except ProcessLookupError:
                pass
            process.wait(timeout=30)
    return results


def _standalone(out_dir: Path, record_dir: Path, *extra: str, max_restarts: int = 0, **env: str) -> tuple[int, str]:
    args = ["--standalone", "--nproc_per_node", "2", "--max_restarts", str(max_restarts)]
    return _finish(_start(args, out_dir, record_dir, *extra, **env))[0]


def _history(out_dir: Path) -> list[dict[str, str]]:
    with (out_dir / "unet_history.csv").open() as f:
        return list(csv.DictReader(f))


def _writes(record_dir: Path, rank: int) -> list[str]:
    path = record_dir / f"writes-rank{rank}.txt"
    return path.read_text().split() if path.exists() else []


def _assert_same_run(out_dir: Path, reference: Path) -> None:
    """The same history (to float tolerance; the time of each epoch aside) and the same weights."""
    rows, expected = _history(out_dir), _history(reference)
    assert [row["epoch"] for row in rows] == [row["epoch"] for row in expected] == ["1", "2"]  # each epoch once
    for row, want in zip(rows, expected, strict=True):
        for key in ("train_loss", "val_loss", "val_dice", "val_iou", "lr"):
            assert float(row[key]) == pytest.approx(float(want[key]), rel=1e-6, abs=1e-9), (row["epoch"], key)
    for name in ("unet_last.pth", "unet.pth"):
        state, want = (load_checkpoint(folder / name)["model_state"] for folder in (out_dir, reference))
        assert state.keys() == want.keys()
        for key in state:
            torch.testing.assert_close(state[key], want[key], rtol=1e-6, atol=1e-7, msg=f"{name}: {key}")
    assert sorted(p.name for p in out_dir.iterdir()) == RUN_FILES  # no temporary file left half-written


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The run on one node: ``torchrun --standalone --nproc_per_node 2``."""
    out = tmp_path_factory.mktemp("reference")
    code, output = _standalone(out / "models", out / "records")
    assert code == 0, output
    return out / "models"


@pytest.mark.slow
def test_two_nodes_train_the_one_node_run_and_one_process_writes(reference, tmp_path):
    port, run_id = _free_port(), f"petlib-test-{uuid.uuid4().hex[:8]}"
    launchers = [
        _start(["--nnodes", "2", "--node_rank", str(node), "--nproc_per_node", "1", "--rdzv_backend", "c10d",
                "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", run_id, "--local_addr", "127.0.0.1"],
               tmp_path / "models", tmp_path / "records")
        for node in (0, 1)
    ]
    (code0, output0), (code1, output1) = _finish(*launchers)
    assert code0 == 0 and code1 == 0, output0 + output1
    # Rank 0 alone logs and writes the run's files; the other node trains in silence. (The c10d
    # rendezvous numbers the nodes in its own order, whatever --node_rank says.)
    logged = [output for output in (output0, output1) if "epoch   2/2" in output]
    assert len(logged) == 1 and logged[0].count("epoch   2/2") == 1, output0 + output1
    assert "2 process(es), batch 1 per process" in logged[0]
    assert _writes(tmp_path / "records", 1) == []
    assert _writes(tmp_path / "records", 0).count("unet_last.pth") == 2
    _assert_same_run(tmp_path / "models", reference)


@pytest.mark.slow
def test_a_killed_worker_costs_its_epoch_not_the_run(reference, tmp_path):
    # Rank 1 dies before step 3 of epoch 2: the group has taken two steps of epoch 2 together, so
    # rank 0 has written epoch 1's files (DDP's gradient exchange waits for them).
    code, output = _standalone(tmp_path / "models", tmp_path / "records", "--resume", max_restarts=3,
                               **{KILL_ENV: "1:2:3"})
    assert code == 0, output
    assert (tmp_path / "records" / "killed-rank1").exists()
    # torchrun restarted the group once; it continued after epoch 1 and trained epoch 2 again.
    assert output.count("resuming") == 1 and f"resuming {tmp_path / 'models' / 'unet_last.pth'} after epoch 1" in output
    assert output.count("epoch   1/2") == 1 and output.count("epoch   2/2") == 1
    assert "Traceback" not in output.split("resuming")[0]  # the survivor's error: one line
    assert _writes(tmp_path / "records", 1) == []
    _assert_same_run(tmp_path / "models", reference)


@pytest.mark.slow
def test_a_restart_that_cannot_continue_ends_with_one_line_on_every_rank(tmp_path):
    # Without --resume the restarted group would train from epoch 1 over the first attempt's best
    # checkpoint: every process refuses with the same line, and torchrun, out of restarts, ends.
    start = time.monotonic()
    code, output = _standalone(tmp_path / "models", tmp_path / "records", max_restarts=1, **{KILL_ENV: "1:2:3"})
    assert code != 0 and time.monotonic() - start < TIMEOUT
    lines = [line for line in output.splitlines() if line.startswith("error: torchrun restarted the workers")]
    assert len(lines) == 2 and lines[0] == lines[1] and "--resume" in lines[0], output
    assert "[rank0]: Traceback" not in output and "[rank1]: Traceback" not in output
    assert [row["epoch"] for row in _history(tmp_path / "models")] == ["1"]  # the first attempt's epoch is kept


# ----------------------------------------------------------------------------- the worker


def _worker() -> None:
    """Under torchrun: ``python -m petlib.train`` as is, recording the files each process writes
    and, as ``PETLIB_TEST_KILL_AT`` says, SIGKILLing one process mid-epoch in the first attempt."""
    import petlib.cli.train
    import petlib.training.engine as engine
    import petlib.training.rundir as rundir
    from petlib.cli.common import run_main

    record_dir, rank = Path(os.environ["PETLIB_TEST_RECORD"]), int(os.environ["RANK"])
    record_dir.mkdir(parents=True, exist_ok=True)

    def recorded(write):
        def wrapper(what, path, *args, **kwargs):
            with (record_dir / f"writes-rank{rank}.txt").open("a") as f:
                f.write(f"{Path(path).name}\n")
            return write(what, path, *args, **kwargs)
        return wrapper

    rundir.save_checkpoint = recorded(rundir.save_checkpoint)
    rundir.write_history = recorded(rundir.write_history)

    kill_at = os.environ.get(KILL_ENV, "")
    if kill_at and os.environ.get("TORCHELASTIC_RESTART_COUNT") == "0":
        kill_rank, kill_epoch, kill_step = (int(part) for part in kill_at.split(":"))
        real_train_one_epoch, epochs = engine.train_one_epoch, []

        def train_one_epoch(model, loader, *args, **kwargs):
            epochs.append(1)
            if rank == kill_rank and len(epochs) == kill_epoch:
                loader = _KilledAt(loader, kill_step, record_dir / f"killed-rank{rank}")
            return real_train_one_epoch(model, loader, *args, **kwargs)

        engine.train_one_epoch = train_one_epoch
    run_main(petlib.cli.train.main)


class _KilledAt:
    """``loader``, except that the process SIGKILLs itself when about to yield batch ``step`` (from 1)."""

    def __init__(self, loader, step: int, marker: Path) -> None:
        self.loader, self.step, self.marker = loader, step, marker

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for step, batch in enumerate(self.loader, 1):
            if step == self.step:
                self.marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)
            yield batch


if __name__ == "__main__":
    _worker()
