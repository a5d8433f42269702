"""The cross-validation protocol: folds, records, paired summaries, and the command on a tiny setting."""
import json
import math

import pytest

from petlib.data import SAMPLE_ROOT, evenly_spaced, read_split
from petlib.research import crossval
from petlib.research.crossval import fold_root, format_summary, parse_candidate, summarise
from petlib.research.experiments import main


def test_folds_partition_trainval_and_never_touch_the_test_split(tmp_path):
    trainval = {e.name for e in read_split(SAMPLE_ROOT, "train")} | {e.name for e in read_split(SAMPLE_ROOT, "valid")}
    test = {e.name for e in read_split(SAMPLE_ROOT, "test")}
    held_out = []
    for fold in range(4):
        root = fold_root(SAMPLE_ROOT, 4, fold, tmp_path)
        scored = {e.name for e in read_split(root, "test")}
        trained = {e.name for e in read_split(root, "train")} | {e.name for e in read_split(root, "valid")}
        assert scored.isdisjoint(trained) and scored | trained == trainval
        held_out.append(scored)
    assert sorted(n for s in held_out for n in s) == sorted(trainval)  # each image held out exactly once
    assert all(len(s) == len(trainval) // 4 for s in held_out)
    assert not test & trainval


def test_candidates_parse_by_name_or_by_fields():
    assert parse_candidate("default") == ("default", {})
    assert parse_candidate("x:rotation=15,ignore_border=true,amp=on") == (
        "x", {"rotation": 15, "ignore_border": True, "amp": "on"})
    with pytest.raises(ValueError, match="unknown candidate"):
        parse_candidate("nonsense")
    with pytest.raises(ValueError, match="TrainConfig field"):
        parse_candidate("x:not_a_field=1")


def record(candidate, fold, dice, seed=0):
    return {"candidate": candidate, "seed": seed, "fold": fold, "heldout_dice": dice, "minutes": 1.0,
            "per_image_dice": {f"img{fold}": dice}}


def test_summary_pairs_runs_and_calls_only_differences_beyond_the_noise():
    base = [0.70, 0.80, 0.75, 0.72]
    records = {
        "default": [record("default", i, d) for i, d in enumerate(base)],
        # Always 0.02 better: a tiny but consistent gain is called, the fold spread cancels in the pairs.
        "steady": [record("steady", i, d + 0.02 + 0.001 * (i % 2)) for i, d in enumerate(base)],
        # Better on average by more, but up and down: no difference.
        "noisy": [record("noisy", i, d + s) for i, (d, s) in enumerate(zip(base, [0.10, -0.06, 0.09, -0.05]))],
        "worse": [record("worse", i, d - 0.05 - 0.002 * i) for i, d in enumerate(base)],
    }
    by_name = {s.candidate: s for s in summarise(records)}
    assert by_name["default"].verdict == "baseline"
    assert by_name["steady"].verdict == "better"
    assert by_name["steady"].diff == pytest.approx(0.0205)
    assert by_name["noisy"].verdict == "no difference"
    assert by_name["worse"].verdict == "worse"
    assert by_name["default"].mean == pytest.approx(sum(base) / 4)
    table = format_summary(list(by_name.values()))
    assert "steady" in table and "better" in table and "[+0.0" in table


def test_a_single_pair_is_not_enough_to_call_anything():
    s = summarise({"default": [record("default", 0, 0.7)], "b": [record("b", 0, 0.9)]})
    assert {x.candidate: x.verdict for x in s}["b"] == "too few runs"
    assert math.isnan(s[0].se)


@pytest.mark.slow  # end-to-end training: 2 candidates x 2 folds
def test_cv_command_on_a_tiny_setting_writes_records_and_resumes(tmp_path, capsys):
    args = ["cv", "--model", "unet", "--folds", "2", "--epochs", "1", "--image_size", "16", "--batch_size", "4",
            "--candidates", "default", "b:ignore_border=true", "--out", str(tmp_path),
            "--set", "subset=4", "model_kwargs={\"base_channels\": 4}", "device=cpu", "--no_progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| default | 2 |" in out and "| b | 2 |" in out
    records = crossval.load_records(next(tmp_path.iterdir()))
    assert sorted(records) == ["b", "default"] and all(len(r) == 2 for r in records.values())
    first = records["default"][0]
    assert 0 <= first["heldout_dice"] <= 1 and first["heldout_images"] == 4
    fold0 = next(tmp_path.iterdir()) / "folds" / "k2-f0"
    assert set(first["per_image_dice"]) == {e.name for e in evenly_spaced(read_split(fold0, "test"), 4)}
    assert json.loads(json.dumps(first))["config"]["ignore_border"] is False
    assert not list(tmp_path.rglob("*.pth"))  # checkpoints are deleted once scored
    # Run again: everything is on record, nothing trains.
    assert main(args + ["--report"]) == 0 and "| b | 2 |" in capsys.readouterr().out


def test_the_last_epoch_can_be_scored_instead_and_runs_without_it_are_left_out():
    def with_last(r, last):
        return {**r, "heldout_dice_last": last, "per_image_dice_last": {"x": last}}

    records = {
        "default": [with_last(record("default", 0, 0.70), 0.80), with_last(record("default", 1, 0.72), 0.81),
                    record("default", 2, 0.9)],  # recorded before last-epoch scores existed
        "b": [with_last(record("b", 0, 0.71), 0.82), with_last(record("b", 1, 0.73), 0.84)],
    }
    best = {s.candidate: s for s in summarise(records, score="best")}
    last = {s.candidate: s for s in summarise(records, score="last")}
    assert best["default"].runs == 3 and last["default"].runs == 2
    assert last["default"].mean == pytest.approx(0.805) and last["b"].diff == pytest.approx(0.025)
    assert best["b"].diff == pytest.approx(0.01)


def test_the_same_fold_can_be_prepared_again_and_from_several_threads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        roots = list(pool.map(lambda _: fold_root(SAMPLE_ROOT, 4, 1, tmp_path), range(8)))
    root = roots[0]
    assert all(r == root for r in roots)
    assert len(read_split(root, "test")) == 60 and len(read_split(root, "train")) + len(read_split(root, "valid")) == 180
    assert not list((root / "annotations").glob(".*.tmp"))  # no temporary file left behind
