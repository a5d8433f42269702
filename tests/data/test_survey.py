"""petlib.data.survey: the counts and file statistics notebook 01 shows, on the embedded sample."""
import numpy as np

from petlib.data import SAMPLE_ROOT, SplitEntry, read_split
from petlib.data.survey import count_table, foreground_fractions, odd_images, read_example, read_splits, survey_images


def test_split_and_species_counts_of_the_sample():
    splits = read_splits(SAMPLE_ROOT)
    assert {mode: len(entries) for mode, entries in splits.items()} == {"train": 216, "valid": 24, "test": 60}
    rows = count_table(splits, "species")
    assert [row["species"] for row in rows] == ["cat", "dog"]
    assert sum(row["total"] for row in rows) == 300
    assert {row["species"]: row["total"] for row in rows} == {"cat": 200, "dog": 100}
    breeds = {row["breed"]: row for row in count_table(splits, "breed")}
    assert breeds["Bengal"]["species"] == "cat" and breeds["Bengal"]["total"] == 100


def test_survey_finds_the_gif_named_jpg_and_its_empty_trimap():
    infos = survey_images(SAMPLE_ROOT)
    assert len(infos) == 302  # 300 listed + the two files the release lists in no split
    assert sorted(i.name for i in infos if not i.listed) == ["Abyssinian_34", "Abyssinian_82"]
    odd = odd_images(infos)
    assert ("Abyssinian_34", "GIF", False) in [(i.name, i.format, i.listed) for i in odd]
    entries = read_split(SAMPLE_ROOT, "train")[:20]
    fractions = foreground_fractions(SAMPLE_ROOT, entries)
    assert fractions.shape == (len(entries),) and ((0 < fractions) & (fractions < 1)).all()
    assert foreground_fractions(SAMPLE_ROOT, [SplitEntry("Abyssinian_34", 1, "cat", "Abyssinian")])[0] == 0
    image, trimap = read_example(SAMPLE_ROOT, "Abyssinian_34")
    assert image.dtype == np.uint8 and image.shape[2] == 3 and trimap.shape == image.shape[:2]
