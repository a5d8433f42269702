"""Curves without a notebook: fit's <name>_curves.png, and TensorBoard scalars, both optional."""
import sys

import numpy as np
import pytest
from PIL import Image

from petlib.training.curves import TENSORBOARD_SCALARS, CurvesPNG, TensorBoardLog, write_curves_png
from petlib.training.engine import fit

HISTORY = [
    {"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "val_dice": 0.50, "val_iou": 0.40, "lr": 1e-3, "seconds": 2.0},
    {"epoch": 2, "train_loss": 0.7, "val_loss": 0.6, "val_dice": 0.70, "val_iou": 0.55, "lr": 5e-4, "seconds": 2.1},
    {"epoch": 3, "train_loss": 0.6, "val_loss": 0.65, "val_dice": 0.65, "val_iou": 0.50, "lr": 1e-5, "seconds": 2.0},
]


def test_write_curves_png_draws_a_picture_and_leaves_pyplot_as_it_was(tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    backend, figures = matplotlib.get_backend(), plt.get_fignums()
    path = write_curves_png(HISTORY, tmp_path / "run_curves.png", "run")
    picture = np.asarray(Image.open(path).convert("RGB"))
    assert picture.shape[1] > picture.shape[0] > 200  # two panels side by side
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 10  # lines and text, not a blank canvas
    assert plt.get_fignums() == figures  # closed: a notebook does not show it under the training cell
    assert matplotlib.get_backend() == backend
    assert [p.name for p in tmp_path.iterdir()] == ["run_curves.png"]  # no temporary file left


def test_curves_are_redrawn_at_the_end_and_at_most_once_an_interval(tmp_path, monkeypatch):
    from petlib.training import curves

    drawn = []
    monkeypatch.setattr(curves, "write_curves_png", lambda history, path, label: drawn.append(len(history)) or path)
    png = CurvesPNG(tmp_path / "c.png", "run", log=print, interval=3600)
    png.update(HISTORY[:1])
    png.update(HISTORY[:2])
    assert drawn == []  # the interval has not passed
    assert png.update(HISTORY, final=True) == tmp_path / "c.png" and drawn == [3]
    png.interval = 0
    png.update(HISTORY)
    assert drawn == [3, 3]


def test_without_matplotlib_the_curves_are_skipped_once_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # `import matplotlib.pyplot` now fails
    said = []
    png = CurvesPNG(tmp_path / "c.png", "run", log=said.append, interval=0)
    assert png.update(HISTORY) is None and png.update(HISTORY, final=True) is None
    assert said == ["curves skipped: matplotlib is not installed (pip install matplotlib)"]
    assert not (tmp_path / "c.png").exists()


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory, tiny_config):
    """A 2-epoch tiny fit with --tensorboard, and what it logged."""
    pytest.importorskip("tensorboard", reason="tensorboard is not installed: pip install tensorboard")
    out = tmp_path_factory.mktemp("run")
    lines = []
    result = fit(tiny_config(out / "models"), progress=False, log=lines.append, tensorboard=out / "tb")
    return out, result, lines


def test_fit_writes_the_curves_beside_the_history(logged_run):
    out, result, lines = logged_run
    assert result.curves_file == out / "models" / "unet_curves.png" and result.curves_skipped is None
    assert result.curves_file.parent == result.history_file.parent
    assert Image.open(result.curves_file).format == "PNG"


def test_fit_logs_the_historys_numbers_to_tensorboard(logged_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, result, lines = logged_run
    assert f"tensorboard: logging to {out / 'tb' / 'unet'} (tensorboard --logdir {out / 'tb'})" in lines
    events = EventAccumulator(str(out / "tb" / "unet"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(TENSORBOARD_SCALARS.values())
    for column, tag in TENSORBOARD_SCALARS.items():
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        assert logged == [(row["epoch"], pytest.approx(row[column], rel=1e-6)) for row in result.history], tag


def test_fit_without_matplotlib_or_tensorboard_trains_and_says_what_it_skipped(tmp_path, monkeypatch, tiny_config):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    lines = []
    result = fit(tiny_config(tmp_path / "models", epochs=1), progress=False, log=lines.append,
                 tensorboard=tmp_path / "tb")
    assert result.best_checkpoint.is_file() and result.card_file.is_file()
    assert result.curves_file is None and "matplotlib is not installed" in result.curves_skipped
    assert not (tmp_path / "models" / "unet_curves.png").exists() and not (tmp_path / "tb").exists()
    assert "curves skipped: matplotlib is not installed (pip install matplotlib)" in lines
    assert any(line.startswith("tensorboard skipped: the tensorboard package is not installed") for line in lines)


def test_tensorboard_log_without_tensorboard_does_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    said = []
    board = TensorBoardLog(tmp_path / "tb", said.append)
    board.add_epoch(HISTORY[0])
    board.close()
    assert len(said) == 1 and "pip install tensorboard" in said[0] and not (tmp_path / "tb").exists()
