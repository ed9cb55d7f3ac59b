"""Tests for common.report: layout, missing values, Markdown content and the CSV round trip."""

import math

import pytest

from common.report import MISSING, Table, format_value
from common import report


def _table():
    t = Table("Table III: CelebA", ["PSNR", "SSIM"], formats={"PSNR": ".2f", "SSIM": ".3f"},
              notes=["ours: 40 steps on data/sample, not the paper's data"])
    t.add("UMSN", ours=[25.1234, 0.88149], paper=[25.90, 0.906])
    t.add("Nah et al. [7]", paper={"PSNR": 22.43, "SSIM": 0.832})
    t.add("blurred", ours={"PSNR": 21.5}, paper=None)
    return t


def test_text_layout_pairs_ours_and_paper():
    text = str(_table())
    lines = text.splitlines()
    assert lines[0] == "Table III: CelebA"
    assert "PSNR" in lines[1] and "SSIM" in lines[1]
    assert lines[2].startswith("Method") and lines[2].count("ours") == 2 and lines[2].count("paper") == 2
    umsn = next(line for line in lines if line.startswith("UMSN"))
    assert umsn.split() == ["UMSN", "|", "25.12", "25.90", "|", "0.881", "0.906"]
    nah = next(line for line in lines if line.startswith("Nah"))
    assert nah.split()[-5:] == [MISSING, "22.43", "|", MISSING, "0.832"]
    blurred = next(line for line in lines if line.startswith("blurred"))
    assert blurred.split()[-5:] == ["21.50", MISSING, "|", MISSING, MISSING]
    # every row of the table body has the same width (aligned columns)
    body = lines[2:6]
    assert len({len(line) for line in body}) == 1, body
    assert lines[-1].startswith("ours: 40 steps")


def test_markdown_content():
    md = _table().to_markdown()
    lines = md.strip().splitlines()
    assert lines[0] == "**Table III: CelebA**"
    assert lines[2] == "| Method | PSNR (ours) | PSNR (paper) | SSIM (ours) | SSIM (paper) |"
    assert lines[3] == "|:---|---:|---:|---:|---:|"
    assert lines[4] == "| UMSN | 25.12 | 25.90 | 0.881 | 0.906 |"
    assert lines[5] == f"| Nah et al. [7] | {MISSING} | 22.43 | {MISSING} | 0.832 |"
    assert lines[-1] == "ours: 40 steps on data/sample, not the paper's data"


def test_csv_round_trip(tmp_path):
    t = Table("verification", ["acc", "auc", "n"], formats=".3f")
    t.add("ours", ours=[(0.91234567, 0.0123), 0.1 + 0.2, 17], paper=[(0.95, 0.01), float("nan"), None])
    t.add("oracle", ours=[None, float("inf"), 3], paper=["n/a", 0.827, None])
    path = t.to_csv(tmp_path / "sub" / "table8.csv")
    back = Table.from_csv(path)
    assert back.title == "table8" and back.columns == ["acc", "auc", "n"]
    assert back.value("ours", "acc") == (0.91234567, 0.0123)
    assert back.value("ours", "auc") == 0.1 + 0.2  # full precision survives
    assert back.value("ours", "n") == 17 and isinstance(back.value("ours", "n"), int)
    assert back.value("ours", "auc", "paper") is None  # NaN is stored as missing
    assert back.value("oracle", "auc") == math.inf and back.value("oracle", "acc", "paper") == "n/a"
    assert Table.from_csv(path, title=t.title, formats=".3f").to_text() == t.to_text()
    assert not list((tmp_path / "sub").glob("*.tmp*"))  # atomic write left no temp file


def test_format_value_and_errors(tmp_path):
    assert format_value(None) == MISSING and format_value(float("nan")) == MISSING
    assert format_value(27.314) == "27.31" and format_value(0.94501) == "0.9450"
    assert format_value((0.9123, 0.0101), ".3f") == "0.912 ± 0.010"
    assert format_value(float("inf")) == "inf" and format_value(3) == "3"
    with pytest.raises(ValueError, match="3 values for 2 columns"):
        Table("t", ["a", "b"]).add("x", ours=[1, 2, 3])
    with pytest.raises(ValueError, match="unknown columns"):
        Table("t", ["a", "b"]).add("x", paper={"c": 1})
    bad = tmp_path / "bad.csv"
    bad.write_text("name,a\nx,1\n")
    with pytest.raises(ValueError, match="bad.csv"):
        Table.from_csv(bad)


def test_progress_yields_everything_and_reports_counts():
    import io  # pylint: disable=import-outside-toplevel
    stream = io.StringIO()
    assert list(report.progress(range(4), desc="batches", stream=stream, every_seconds=0)) == \
        [0, 1, 2, 3]
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("batches: [") and "1/4 (25%)" in lines[0]
    assert "4/4 (100%)" in lines[-1] and "ETA 0 s" in lines[-1]
    stream = io.StringIO()
    assert list(report.progress(iter("ab"), desc="n", stream=stream)) == ["a", "b"]
    assert stream.getvalue() == "n: 2 done, 0 s\n"   # unknown total: a count
