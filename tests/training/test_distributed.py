"""`torchrun --nproc_per_node=2 -m petlib.train` on the CPU (gloo) on the shipped sample.

Both processes must end with identical weights (BatchNorm statistics included), only rank 0
may write files, the logged validation numbers must cover every validation image, and
``--resume`` must continue the run. This file is also the worker torchrun starts: it runs
``petlib.cli.train.main`` unchanged and only records what ``fit`` returned and saved.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from petlib.data import SAMPLE_ROOT
from petlib.training.checkpoint import load_checkpoint
from petlib.training.config import TrainConfig

# 5 images a split: the 5 validation images are shards of 3 and 2, not an even split.
TRAIN_ARGS = ["--model", "resnet34_unet", "--data_path", str(SAMPLE_ROOT), "--image_size", "32",
              "--batch_size", "2", "--subset", "5", "--validate", "--no-progress", "--device", "cpu"]


def _torchrun(out_dir: Path, record_dir: Path, *extra: str, stop_after_epoch: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PETLIB_TEST_RECORD": str(record_dir), "OMP_NUM_THREADS": "1",
           "PETLIB_TEST_STOP_AFTER_EPOCH": str(stop_after_epoch)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               __file__, *TRAIN_ARGS, "--out_dir", str(out_dir), *extra]
    # A session of its own, killed as a whole in the end: torchrun's workers never outlive the test.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=300)
    finally:
        _kill_session(process)
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    assert result.returncode == 0, f"torchrun failed:\n{result.stdout}\n{result.stderr}"
    return result


def _kill_session(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


def test_cuda_means_this_process_gpu_under_torchrun(monkeypatch):
    from petlib.training.device import pick_device

    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # also on a one-GPU machine
    assert pick_device("cuda") == torch.device("cuda", 1)
    assert pick_device("cuda:0") == torch.device("cuda", 0)  # an explicit index is kept
    assert pick_device("cpu") == torch.device("cpu")


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch):
    from petlib.training.device import pick_device

    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(RuntimeError, match="nproc_per_node=1"):
        pick_device()


@pytest.mark.parametrize("device, backend", [("cuda:1", "nccl"), ("cpu", "gloo")])
def test_process_group_backend_follows_the_device(monkeypatch, device, backend):
    import petlib.distributed as pdist

    calls = {}
    monkeypatch.setattr(pdist.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(pdist.dist, "rendezvous", lambda url, timeout: iter([(pdist.dist.HashStore(), 1, 2)]))
    monkeypatch.setattr(pdist.dist, "init_process_group",
                        lambda backend, **kwargs: calls.update(backend=backend, **kwargs))
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.setdefault("cuda_device", d))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert pdist.init_from_env(torch.device(device)) is False and calls == {}  # a notebook: one process
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert pdist.init_from_env(torch.device(device)) is True
    assert calls["backend"] == backend
    assert calls.get("cuda_device") == (torch.device(device) if backend == "nccl" else None)
    assert calls["rank"] == 1 and calls["world_size"] == 2 and calls["timeout"] == pdist.DEFAULT_TIMEOUT


# ----------------------------------------------------------------------------- restarts, timeouts, errors


def test_the_timeout_comes_from_the_environment(monkeypatch):
    import petlib.distributed as pdist

    monkeypatch.delenv(pdist.TIMEOUT_ENV, raising=False)
    assert pdist.timeout_from_env() == timedelta(minutes=10)
    monkeypatch.setenv(pdist.TIMEOUT_ENV, "90")
    assert pdist.timeout_from_env() == timedelta(seconds=90)
    for wrong in ("0", "-5", "ten"):
        monkeypatch.setenv(pdist.TIMEOUT_ENV, wrong)
        with pytest.raises(ValueError, match="PETLIB_DIST_TIMEOUT"):
            pdist.timeout_from_env()


def _store_server():
    from torch.distributed import TCPStore

    return TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=30))


def _client(server):
    """A connection of its own to ``server``, as each process of a group has."""
    from torch.distributed import TCPStore

    return TCPStore("127.0.0.1", server.port, is_master=False, timeout=timedelta(seconds=30))


def _join(server, size: int, timeout: float = 20.0) -> list:
    """Each rank of a group of ``size`` agrees on a namespace of ``server``'s store, each in a thread."""
    import petlib.distributed as pdist

    namespaces: list = [None] * size
    errors: list = []
    clients = [_client(server) for _ in range(size)]

    def join(rank: int) -> None:
        try:
            namespaces[rank] = pdist._fresh_namespace(clients[rank], rank, size, timedelta(seconds=timeout))
        except Exception as err:  # noqa: BLE001 -- reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=join, args=(rank,)) for rank in reversed(range(size))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 10)
    assert not errors and all(n is not None for n in namespaces), errors
    return namespaces


def test_a_restarted_group_forms_where_the_dead_one_left_nothing():
    """torchrun keeps one store for the job: a restarted group must not read the keys of the dead one
    (gloo would connect to a dead process's address, or wait for it)."""
    server = _store_server()
    first = _join(server, 3)
    first[0].set("rank_0", "address of the first group's rank 0")
    assert first[2].get("rank_0") == b"address of the first group's rank 0"  # one namespace for the group
    # The first group died without cleaning up; its processes' keys stay in the store.
    second = _join(server, 3)
    assert not any(namespace.check(["rank_0"]) for namespace in second)
    second[0].set("rank_0", "address of the second group's rank 0")
    assert [n.get("rank_0") for n in second] == [b"address of the second group's rank 0"] * 3
    assert first[1].get("rank_0") == b"address of the first group's rank 0"


def test_a_group_that_does_not_form_stops_within_the_timeout():
    import petlib.distributed as pdist

    server = _store_server()
    store = _client(server)
    start = time.monotonic()
    with pytest.raises(pdist.GroupError, match=r"process 0 of 2: only 1 process\(es\) joined .* 1 s"):
        pdist._fresh_namespace(store, 0, 2, timedelta(seconds=1))
    with pytest.raises(pdist.GroupError, match="process 1 of 2: process 0 did not answer within 1 s"):
        pdist._fresh_namespace(store, 1, 2, timedelta(seconds=1))
    assert time.monotonic() - start < 10


def test_a_broken_group_is_one_line():
    import petlib.distributed as pdist

    gloo = RuntimeError("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error "
                        "[127.0.0.1]:28585: Connection reset by peer. This is typically caused by a remote worker "
                        "hanging or bugs in the application. Check the logs of the remote worker before reporting "
                        "an error. GLHF!\nmore")
    error = pdist.group_error(gloo)
    assert isinstance(error, ConnectionError) and "\n" not in str(error) and "pair.cc" not in str(error)
    assert "Read error [127.0.0.1]:28585: Connection reset by peer)" in str(error) and "--resume" in str(error)
    assert pdist.group_error(torch.distributed.DistBackendError("NCCL error: unhandled system error")) is not None
    assert pdist.group_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) is None
    assert pdist.group_error(ValueError("gloo")) is None


def test_a_sigterm_waits_until_the_files_are_written():
    import petlib.distributed as pdist

    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        with pdist.sigterm_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # a handler runs between bytecodes: had it run, it would have by now
            assert received == []
        assert received == [signal.SIGTERM]  # then acted on as before the block
        assert signal.getsignal(signal.SIGTERM) is not None and received == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_one_process_agrees_with_itself():
    import petlib.distributed as pdist

    pdist.check_same(3, "anything")  # no group: nothing to compare, nothing waited for


# ----------------------------------------------------------------------------- validation shards


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_evaluation_shards_hold_every_validation_image_once(monkeypatch, world_size):
    # 5 images over 2, 3 or 4 processes: shards of unequal length, never padded.
    import petlib.distributed as pdist
    from petlib.training.engine import make_loaders

    config = TrainConfig(data_path=str(SAMPLE_ROOT), image_size=16, subset=5, batch_size=1, cache=True,
                         num_workers=0, device="cpu")
    monkeypatch.setattr(pdist, "world_size", lambda: world_size)
    shards = []
    for rank in range(world_size):
        monkeypatch.setattr(pdist, "rank", lambda rank=rank: rank)
        loader = make_loaders(config, torch.device("cpu"), modes=("valid",))["valid"]
        shards.append([int(i) for batch in loader for i in batch["index"]])
    assert sorted(i for shard in shards for i in shard) == list(range(5))
    assert [len(shard) for shard in shards] == [len(range(rank, 5, world_size)) for rank in range(world_size)]


class BrightIsPet(torch.nn.Module):
    """A stub network with known logits: pet wherever the image is brighter than mid-grey (a
    different Dice on every image, so that a missing or repeated image changes the mean)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return 40 * (images.mean(1, keepdim=True) - 0.5)


def _validation_config() -> TrainConfig:
    # Evaluation batches of 2: 5 images on 2 processes are shards of 3 (2 + 1) and 2.
    return TrainConfig(data_path=str(SAMPLE_ROOT), image_size=16, subset=5, batch_size=1, cache=True, num_workers=0,
                       device="cpu")


def _evaluate_on_rank(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    """A process of a gloo group: evaluate its shard as fit does, and save what it got."""
    import torch.distributed

    from petlib.losses import build_loss
    from petlib.training.engine import evaluate, make_loaders

    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        loader = make_loaders(_validation_config(), torch.device("cpu"), modes=("valid",))["valid"]
        result = evaluate(BrightIsPet(), loader, torch.device("cpu"), build_loss("bce"))
        torch.save({"result": result, "indices": list(loader.sampler)}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_validation_over_uneven_shards_is_the_one_process_score(tmp_path):
    # A real two-process gloo group: each process scores its shard, the sums are reduced, and
    # both must report the numbers one process gets on all 5 images.
    import torch.multiprocessing as mp

    from petlib.losses import build_loss
    from petlib.training.engine import evaluate, make_loaders

    mp.spawn(_evaluate_on_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=False) for rank in (0, 1)]
    loader = make_loaders(_validation_config(), torch.device("cpu"), modes=("valid",))["valid"]
    single = evaluate(BrightIsPet(), loader, torch.device("cpu"), build_loss("bce"), per_image=True)
    assert single["dice_per_image"].std() > 0.05  # images score differently: a miscount shows
    assert [r["indices"] for r in ranks] == [[0, 2, 4], [1, 3]]
    for r in ranks:
        assert r["result"]["count"] == 5
        for key in ("dice", "iou", "loss"):
            assert r["result"][key] == pytest.approx(single[key], rel=1e-6), key


def _records(record_dir: Path) -> list[dict]:
    return [torch.load(record_dir / f"rank{rank}.pt", weights_only=False) for rank in (0, 1)]


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"differ between ranks: {different[:5]}"


def _history(out_dir: Path) -> list[dict[str, str]]:
    with (out_dir / "resnet34_unet_history.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    start = time.perf_counter()
    result = _torchrun(out / "models", out / "records1", "--epochs", "2")
    return out, result, time.perf_counter() - start


@pytest.mark.slow
def test_two_processes_end_with_identical_weights_and_rank0_writes_once(two_epochs):
    out, result, seconds = two_epochs
    rank0, rank1 = _records(out / "records1")
    _assert_same_state(rank0["state"], rank1["state"])
    last = load_checkpoint(out / "models" / "resnet34_unet_last.pth")
    _assert_same_state(rank0["state"], last["model_state"])
    # One set of files, all from rank 0: a last checkpoint per epoch, a best one when Dice improved.
    names = [Path(p).name for p in rank0["saved"]]
    assert rank1["saved"] == [] and names.count("resnet34_unet_last.pth") == 2 and "resnet34_unet.pth" in names
    assert sorted(p.name for p in (out / "models").iterdir()) == [
        "resnet34_unet.pth", "resnet34_unet_card.json", "resnet34_unet_card.md", "resnet34_unet_config.json",
        "resnet34_unet_curves.png", "resnet34_unet_history.csv", "resnet34_unet_last.pth"]
    assert result.stdout.count("epoch   2/2") == 1 and "2 process(es), batch 2 per process" in result.stdout
    print(f"torchrun, 2 processes, 2 epochs: {seconds:.1f} s")


@pytest.mark.slow
def test_validation_covers_every_image(two_epochs):
    """The logged validation loss and Dice are those of the final weights on *all* validation
    images (3 on rank 0, 2 on rank 1 here), as one process computes them."""
    from petlib.losses import build_loss
    from petlib.models import build_model
    from petlib.training.engine import evaluate, make_loaders

    out, _, _ = two_epochs
    state = _records(out / "records1")[0]["state"]
    model = build_model("resnet34_unet")
    model.load_state_dict(state)
    config = TrainConfig(data_path=str(SAMPLE_ROOT), image_size=32, batch_size=2, subset=5, cache=True, num_workers=0)
    loader = make_loaders(config, torch.device("cpu"), modes=("valid",))["valid"]
    single = evaluate(model, loader, torch.device("cpu"), build_loss(config.loss), tta=config.tta)
    assert single["count"] == 5
    logged = _history(out / "models")[-1]
    assert float(logged["val_loss"]) == pytest.approx(single["loss"], rel=1e-5)
    assert float(logged["val_dice"]) == pytest.approx(single["dice"], rel=1e-5, abs=1e-7)


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_weights(two_epochs, tmp_path):
    full, _, _ = two_epochs
    _torchrun(tmp_path / "models", tmp_path / "records1", "--epochs", "2", stop_after_epoch=1)
    assert [row["epoch"] for row in _history(tmp_path / "models")] == ["1"]
    result = _torchrun(tmp_path / "models", tmp_path / "records2", "--epochs", "2", "--resume")
    assert "resuming" in result.stdout and "epoch   2/2" in result.stdout and "epoch   1/2" not in result.stdout
    assert [row["epoch"] for row in _history(tmp_path / "models")] == ["1", "2"]
    rank0, rank1 = _records(tmp_path / "records2")
    _assert_same_state(rank0["state"], rank1["state"])
    _assert_same_state(rank0["state"], _records(full / "records1")[0]["state"])


class _Interrupt(Exception):
    pass


def _worker() -> int:
    """Under torchrun: ``python -m petlib.train`` as is, recording each rank's final weights and
    saves; with ``PETLIB_TEST_STOP_AFTER_EPOCH=n`` every rank stops after epoch n, like a crash."""
    import petlib.cli.train
    import petlib.training.engine
    import petlib.training.rundir

    saved: list[str] = []
    kept: dict[str, dict[str, torch.Tensor]] = {}
    real_fit, real_save = petlib.cli.train.fit, petlib.training.rundir.save_checkpoint
    real_train_one_epoch = petlib.training.engine.train_one_epoch
    stop_after, epochs_started = int(os.environ.get("PETLIB_TEST_STOP_AFTER_EPOCH", "0")), []

    def train_one_epoch(*args, **kwargs):
        if stop_after and len(epochs_started) == stop_after:
            raise _Interrupt  # on every rank at the same point, before any collective
        epochs_started.append(1)
        return real_train_one_epoch(*args, **kwargs)

    def save_checkpoint(checkpoint, path):
        saved.append(str(path))
        return real_save(checkpoint, path)

    def fit(*args, **kwargs):
        result = real_fit(*args, **kwargs)
        kept["state"] = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
        return result

    petlib.training.rundir.save_checkpoint = save_checkpoint
    petlib.training.engine.train_one_epoch = train_one_epoch
    petlib.cli.train.fit = fit
    try:
        code = petlib.cli.train.main(sys.argv[1:])
    except _Interrupt:
        return 0
    record_dir = Path(os.environ["PETLIB_TEST_RECORD"])
    record_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"state": kept["state"], "saved": saved}, record_dir / f"rank{os.environ['RANK']}.pt")
    return code


if __name__ == "__main__":
    sys.exit(_worker())
