"""bench/published/*.csv are verbatim copies of the csv blocks of ../shared/reference/paper-tables.md."""
import re
from pathlib import Path

import pytest

from bench.published import FOLDER, authors_class_weights

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "paper-tables.md"
NAMES = ["table1", "table2", "table3", "table4", "table5", "table6", "camvid_class_weights", "camvid_anchors"]


def test_published_files_equal_the_reference_blocks():
    if not REFERENCE.is_file():
        pytest.skip("../shared/reference/paper-tables.md not found")
    blocks = re.findall(r"^```csv\n(.*?)^```$", REFERENCE.read_text(), flags=re.S | re.M)
    assert len(blocks) == len(NAMES)
    for name, block in zip(NAMES, blocks):
        assert (FOLDER / f"{name}.csv").read_text() == block, name


def test_authors_class_weights_are_eleven_positive_numbers():
    w = authors_class_weights()
    assert len(w) == 11 and all(x > 0 for x in w)
