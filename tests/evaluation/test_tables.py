"""petlib.evaluation.tables.format_table: the one table printer (plain text for notebooks and run, Markdown for the benchmark)."""
import math

import pytest

from petlib.evaluation.tables import format_cell, format_table


def test_cells_are_formatted_by_type():
    assert [format_cell(v) for v in (0.5, 31031745, None, math.nan, True, "x")] == [
        "0.5000", "31,031,745", "-", "-", "True", "x"]


def test_plain_rows_from_dicts_align_first_left_then_right():
    text = format_table([{"model": "UNet", "dice": 0.5}, {"model": "ResNet34-UNet", "dice": 0.75}])
    lines = text.splitlines()
    assert lines[0].split() == ["model", "dice"] and set(lines[1]) <= {"-", " "}
    assert lines[2].startswith("UNet ") and lines[2].endswith("0.5000")
    assert len({len(line) for line in lines}) == 1  # aligned: every line as wide


def test_markdown_rows_from_sequences():
    text = format_table([["unet", 32, "1.20x"]], ["network", "px", "ratio"], markdown=True)
    assert text.splitlines() == ["| network | px | ratio |", "|---|---|---|", "| unet | 32 | 1.20x |"]


def test_sequence_rows_need_columns_of_their_length():
    with pytest.raises(ValueError, match="columns"):
        format_table([["a", 1]])
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        format_table([["a", 1]], ["x", "y", "z"])
