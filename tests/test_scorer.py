"""Scorer (several protocols on one decoded image) and the report's protocol x metric table."""

import math

import numpy as np
import pytest

from pynet_bokeh import metrics, report


@pytest.fixture(scope="module")
def offset_pair():
    # targets k / 255 (k = 40..140), prediction 25.3 levels above: every answer is known
    k = np.tile(np.arange(40, 141, dtype=np.float32), (96, 2))[:, :192]
    target = np.repeat(k[..., None], 3, axis=2) / 255
    return target + np.float32(25.3 / 255), target


def test_one_protocol_keeps_todays_columns():
    scorer = metrics.Scorer(("ebb",), border=16)
    assert scorer.columns == ["psnr", "ssim", "ms_ssim"]
    assert scorer.csv_columns == ["psnr", "ssim", "ms_ssim", "ms_ssim_scales"]
    assert scorer.settings() == {"protocol": "ebb", "border": 16}
    assert metrics.Scorer(("dmshn",)).columns == ["psnr", "ssim"]


def test_several_protocols_give_known_answers_on_a_constant_offset(offset_pair):
    protocols = ("ebb", "aim2020", "dmshn", "ntire2023", "bokehlicious")
    scorer = metrics.Scorer(protocols, border=16, crop_size=(64, 64))
    row = scorer.score(*offset_pair)
    assert list(row) == scorer.columns
    assert scorer.columns[:4] == ["ebb/psnr", "ebb/ssim", "ebb/ms_ssim", "aim2020/psnr"]
    for p in ("ebb", "aim2020", "bokehlicious"):
        assert row[f"{p}/psnr"] == pytest.approx(20 * math.log10(255 / 25.3), abs=1e-3)
    # saved as a PNG: k + 25.3 + 0.5 floored = k + 25 -> 20 log10(255 / 25)
    assert row["dmshn/psnr"] == pytest.approx(20 * math.log10(255 / 25), abs=1e-4)
    # truncated: k + 25; the peak is the prediction's maximum, 140 + 25, not 255
    assert row["ntire2023/psnr"] == pytest.approx(20 * math.log10(165 / 25), abs=1e-3)
    means = scorer.means([row, row])
    assert means == pytest.approx(row)
    assert scorer.settings()["protocol"] == "all" and scorer.settings()["border"] == 16


def test_unknown_protocol_is_named():
    with pytest.raises(ValueError, match=r"unknown protocol\(s\) \['val294'\]"):
        metrics.Scorer(("ebb", "val294"))


def test_report_table_has_a_column_per_protocol_and_metric():
    summary = {
        "source": "synthetic (test)",
        "has_targets": True,
        "count": 2,
        "settings": {"protocol": "all"},
        "columns": ["ebb/psnr", "dmshn/ssim", "lpips"],
        "methods": {
            "identity": {"ebb/psnr": 20.0, "dmshn/ssim": 0.8, "lpips": 0.30, "seconds": 0.0},
            "classical": {"ebb/psnr": 22.5, "dmshn/ssim": 0.7, "lpips": 0.20, "seconds": 1.0},
        },
        "notes": ["dmshn: scikit-image"],
        "failures": [],
    }
    text = report.markdown_report(summary)
    assert "| method | ebb PSNR (dB) | dmshn SSIM | LPIPS | s / image |" in text
    assert "| identity | 20.00 | **0.8000** | 0.3000 | 0.00 |" in text
    assert "| classical | **22.50** | 0.7000 | **0.2000** | 1.00 |" in text  # LPIPS: lowest
    assert "## Notes\n\n- dmshn: scikit-image" in text
