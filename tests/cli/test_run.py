"""The main job, ``python -m petlib.run`` (``make run``), on a few images of the embedded sample."""
import subprocess
import sys

import pytest

from petlib.cli.run import RUN_MODELS, fresh_folder
from petlib.training.config import SAMPLE_SETTINGS, TrainConfig


def test_fresh_folder_never_reuses_a_folder_with_a_checkpoint(tmp_path):
    base = tmp_path / "sample"
    assert fresh_folder(base, RUN_MODELS) == base
    base.mkdir()
    (base / "notes.txt").write_text("not a checkpoint")
    assert fresh_folder(base, RUN_MODELS) == base
    (base / "unet.pth").write_bytes(b"")
    assert fresh_folder(base, RUN_MODELS) == tmp_path / "sample-2"
    (tmp_path / "sample-2").mkdir()
    (tmp_path / "sample-2" / "resnet34_unet.pth").write_bytes(b"")
    assert fresh_folder(base, RUN_MODELS) == tmp_path / "sample-3"


def test_sample_settings_are_valid_configs_for_every_network():
    assert set(SAMPLE_SETTINGS) == set(RUN_MODELS)
    for name, settings in SAMPLE_SETTINGS.items():
        config = TrainConfig(model=name, **settings)
        assert config.tta  # the sample run validates and tests with flip TTA, as petlib's recipe


@pytest.fixture(scope="module")
def main_job_twice(tmp_path_factory):
    """``python -m petlib.run`` (1 epoch at 32 px, 8 images a split; the test split is scored whole) run twice
    into one folder, in a child process as ``make run`` runs it: first with ``--sample``, then with its other
    spelling, ``--quick``. (folder, first, second), each a :class:`subprocess.CompletedProcess`."""
    out = tmp_path_factory.mktemp("main-job")
    settings = ["--epochs", "1", "--image_size", "32", "--subset", "8", "--out_dir", str(out)]
    first, second = (subprocess.run([sys.executable, "-m", "petlib.run", spelling, *settings], capture_output=True,
                                    text=True, timeout=600, cwd=out) for spelling in ("--sample", "--quick"))
    return out, first, second


@pytest.mark.slow
def test_main_job_trains_both_networks_and_keeps_an_earlier_run(main_job_twice):
    tmp_path, first, second = main_job_twice
    assert first.returncode == 0, first.stderr
    assert "embedded sample" in first.stdout
    rows = {line.split()[0]: line.split() for line in first.stdout.splitlines()
            if line.startswith(tuple(f"{name} " for name in RUN_MODELS))}
    assert list(rows) == list(RUN_MODELS)
    for name, cells in rows.items():
        # model, px, epochs, val Dice, test Dice, test IoU, images, TTA, minutes
        assert cells[1:3] == ["32", "1"]
        assert all(0.0 <= float(value) <= 1.0 for value in cells[3:6]), cells
        assert cells[6] == "60" and cells[7] == "on" and float(cells[8]) >= 0  # minutes, 0.0 for a tiny run
        assert (tmp_path / "sample" / f"{name}.pth").is_file()
    assert "Traceback" not in first.stderr
    import json

    record = json.loads((tmp_path / "sample" / "run_results.json").read_text())
    assert set(record) == set(RUN_MODELS)
    for name, r in record.items():
        assert len(r["test_dice_per_image"]) == 60 and r["tta"] is True
        assert abs(sum(r["test_dice_per_image"]) / 60 - r["test_dice"]) < 1e-5
        assert r["config"]["model"] == name and r["config"]["epochs"] == 1 and r["minutes"] > 0

    assert second.returncode == 0, second.stderr
    assert "holds an earlier run, which is kept" in second.stdout
    assert all((tmp_path / "sample-2" / f"{name}.pth").is_file() for name in RUN_MODELS)


@pytest.mark.slow
def test_main_job_runs_both_networks_quickly(main_job_twice):
    _, _, second = main_job_twice  # the --quick spelling
    assert second.returncode == 0, second.stderr
    stdout = second.stdout
    assert "embedded sample" in stdout
    lines = [line for line in stdout.splitlines() if line.startswith(("unet ", "resnet34_unet "))]
    assert sorted(line.split()[0] for line in lines) == ["resnet34_unet", "unet"]  # run.py's table, in its order


@pytest.mark.slow  # end-to-end training: four 1-epoch ResNet34-UNet runs
def test_fit_never_silently_replaces_an_earlier_runs_best_checkpoint(tmp_path):
    from petlib.data import SAMPLE_ROOT
    from petlib.training.engine import fit
    from petlib.training.rundir import RunExistsError

    config = TrainConfig(model="resnet34_unet", data_path=str(SAMPLE_ROOT), image_size=32, epochs=1, batch_size=4,
                         subset=8, out_dir=str(tmp_path), device="cpu", cache=True)
    first = fit(config, progress=False, log=None)
    before = first.best_checkpoint.read_bytes()
    with pytest.raises(RunExistsError) as error:
        fit(config, progress=False, log=None)
    message = str(error.value)
    assert str(first.best_checkpoint) in message and "epoch 1" in message
    assert "--resume" in message and "--overwrite" in message and "--run_name" in message
    assert first.best_checkpoint.read_bytes() == before  # nothing was touched
    # Each way out that the message names works.
    assert fit(config, resume=True, progress=False, log=None).best_checkpoint == first.best_checkpoint
    assert fit(TrainConfig(**{**config.to_dict(), "run_name": "second"}), progress=False, log=None)
    assert fit(TrainConfig(**{**config.to_dict(), "overwrite": True}), progress=False, log=None)
