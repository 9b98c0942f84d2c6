"""Control checks on a synthetic set with known controls: identity, classical, the maths."""

import math

import numpy as np
import pytest

from pynet_bokeh import control_checks as cc
from pynet_bokeh.data.synthetic import generate_dataset
from pynet_bokeh.renderers import get_renderer


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    return generate_dataset(
        root, 0, 2, size=(96, 128), seed=5, variants=2, aperture_range=(0.08, 0.15)
    )


def test_laplacian_variance_and_monotonic():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, (40, 40)).astype(np.float32)
    mask = np.ones((40, 40), bool)
    assert cc.laplacian_variance(np.zeros((40, 40), np.float32), mask) == 0.0
    assert cc.laplacian_variance(noise, mask) > 10 * cc.laplacian_variance(noise * 0.3, mask)
    assert math.isnan(cc.laplacian_variance(noise, np.zeros((40, 40), bool)))
    assert cc.monotonic([1.0, 0.5, 0.5, 0.2]) and not cc.monotonic([1.0, 0.5, 0.7])


def test_report_identity_classical(synthetic):
    renderers = {"identity": get_renderer("identity"), "classical": get_renderer("classical")}
    report = cc.control_report(renderers, synthetic, sweep=(0.0, 8.0, 24.0))
    # The photo itself: no selective blur, a gain of exactly 1.
    assert report["identity"]["refocus"]["median"] == pytest.approx(1.0, abs=1e-6)
    assert report["identity"]["monotonic"] is None
    # The classical renderer with the true controls: the focus sharper, blur monotonic,
    # closer to the target than the photo in every bucket.
    classical = report["classical"]
    assert classical["refocus"]["median"] > 1.5
    assert report["target"]["refocus"]["median"] > 1.5
    assert classical["monotonic"]["fraction"] == 1.0
    assert classical["monotonic"]["mean_detail"][0] == pytest.approx(1.0, abs=1e-6)
    for bucket, scores in classical["buckets"].items():
        assert scores["psnr"] > report["identity"]["buckets"][bucket]["psnr"] + 1.0
    table = cc.format_table(report)
    assert table.count("\n") == 4 and "| classical |" in table


def test_needs_known_controls(tmp_path):
    root = generate_dataset(tmp_path, 0, 1, size=(64, 64), seed=0)
    for path in (root / "test" / "params").glob("*.json"):
        path.unlink()
    with pytest.raises(cc.BadDataError, match="params"):
        cc.control_report({"classical": get_renderer("classical")}, root)


def test_below_the_ssim_window_psnr_is_scored_and_ssim_is_nan(synthetic):
    # 96 x 128 at 1/16: 6 x 8, the size of a PyNET level-5 output of that photo.
    report = cc.control_report({"identity": get_renderer("identity")}, synthetic, downscale=16)
    scores = list(report["identity"]["buckets"].values())
    assert scores and all(math.isnan(s["ssim"]) for s in scores)
    assert all(math.isfinite(s["psnr"]) and s["psnr"] > 10 for s in scores)
    assert "nan" in cc.format_table(report)
