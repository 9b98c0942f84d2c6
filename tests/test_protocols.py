"""The published scoring protocols against scores computed by the original libraries, and the
misreadings each one is easy to fall into."""

import importlib.util
import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from pynet_bokeh import metrics
from pynet_bokeh.metrics import protocols

PSNR_TOL, SSIM_TOL = 0.01, 2e-4
NEW_PROTOCOLS = ("authors", "dmshn", "ntire2023", "bokehlicious")


@pytest.fixture(scope="module")
def ref(fixtures_dir):
    return dict(np.load(fixtures_dir / "protocols" / "reference_seed0.npz"))


@pytest.fixture(scope="module")
def pair(ref):
    return ref["s0_pred"], ref["s0_target"]


@pytest.fixture(scope="module")
def pilutil(fixtures_dir):
    """scipy.misc's pilutil (SciPy 1.2.3), as the authors' script uses it."""
    path = fixtures_dir / "authors_script" / "pilutil.py"
    spec = importlib.util.spec_from_file_location("pilutil_fixture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("protocol", NEW_PROTOCOLS)
def test_protocol_equals_the_original_libraries(protocol, ref, pair):
    scores = metrics.image_metrics(*pair, protocol=protocol)
    expected_keys = set(metrics.PROTOCOL_METRICS[protocol])
    assert expected_keys <= set(scores)
    assert scores["psnr"] == pytest.approx(float(ref[f"s0_{protocol}_psnr"]), abs=PSNR_TOL)
    assert scores["ssim"] == pytest.approx(float(ref[f"s0_{protocol}_ssim"]), abs=SSIM_TOL)
    if "ms_ssim" in expected_keys:
        assert scores["ms_ssim"] == pytest.approx(
            float(ref[f"s0_{protocol}_ms_ssim"]), abs=SSIM_TOL
        )


def test_all_protocols_in_one_call_match_one_by_one(pair):
    pair = (pair[0][:128, :160], pair[1][:128, :160])
    table = metrics.all_protocols(*pair)
    assert list(table) == metrics.protocol_columns()
    assert len(table) == 3 + 3 + 3 + 2 + 2 + 2
    for protocol in metrics.PROTOCOLS:
        one = metrics.image_metrics(*pair, protocol=protocol)
        for name in metrics.PROTOCOL_METRICS[protocol]:
            assert table[f"{protocol}/{name}"] == one[name]


def test_authors_without_bytescale_is_a_different_number(ref, pair):
    # "ebb" is the authors' protocol minus the bytescale of the target: several dB apart here
    plain = metrics.image_metrics(*pair, protocol="ebb")
    assert abs(plain["psnr"] - float(ref["s0_authors_psnr"])) > 1.0


def test_authors_without_the_border_crop_is_a_different_number(ref, pair):
    pred, target = pair
    whole = metrics.psnr(np.clip(pred, 0, 1), metrics.authors_target(target))[0]
    assert abs(whole - float(ref["s0_authors_psnr"])) > PSNR_TOL


def test_bytescale_stretches_the_range_like_scipy(pilutil):
    y = np.array([[[0.2, 0.5, 0.8]], [[0.35, 0.65, 0.2]]])
    np.testing.assert_array_equal(metrics.bytescale(y), pilutil.bytescale(y))
    assert metrics.bytescale(y).min() == 0 and metrics.bytescale(y).max() == 255
    flat = np.full((2, 2, 3), 0.4)  # max == min: the scale is 1, (x - min) * 255 = 0
    np.testing.assert_array_equal(metrics.bytescale(flat), pilutil.bytescale(flat))


@pytest.mark.parametrize("level", [1, 2, 3])
def test_authors_target_is_scipy_imresize(level, pair, pilutil):
    target = pair[1][:, :318]  # odd sizes: floored like scipy's (array(size) * f).astype(int)
    y = np.round(target * 255).astype(np.uint8) / 255.0
    expected = pilutil.imresize(y, 2.0 ** (1 - level), interp="bicubic").astype(np.float32) / 255
    ours = metrics.authors_target(target, level)
    assert (
        ours.shape == expected.shape == {1: (256, 318, 3), 2: (128, 159, 3), 3: (64, 79, 3)}[level]
    )
    np.testing.assert_array_equal(ours, expected)


def test_authors_level_2_scores_the_level_output_at_half_size(pair):
    pred, target = pair
    half = metrics.authors_target(target, 2)
    out = metrics.image_metrics(half, target, protocol="authors", level=2)
    assert out["psnr"] == math.inf and out["ssim"] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="too small for the authors' crop"):
        metrics.image_metrics(pred[:100, :100], target, protocol="authors", level=2)


def test_dmshn_with_a_gaussian_window_is_a_different_number(ref, pair):
    pred, target = pair
    p = np.clip(np.floor(pred * 255 + 0.5), 0, 255).astype(np.uint8)
    t = np.round(target * 255).astype(np.uint8)
    gaussian = structural_similarity(t, p, channel_axis=2, gaussian_weights=True, sigma=1.5)
    assert abs(gaussian - float(ref["s0_dmshn_ssim"])) > SSIM_TOL


def test_dmshn_without_the_edge_crop_is_a_different_number(ref, pair):
    pred, target = pair
    p = np.clip(np.floor(pred * 255 + 0.5), 0, 255).astype(np.uint8)
    t = np.round(target * 255).astype(np.uint8)
    _, full_map = structural_similarity(t, p, channel_axis=2, full=True)
    assert abs(full_map.mean() - float(ref["s0_dmshn_ssim"])) > SSIM_TOL


def test_dmshn_rounds_the_prediction_to_8_bits():
    target = np.full((32, 32, 3), 100 / 255, np.float32)
    pred = np.full_like(target, 100.6 / 255)  # saved as 101: MSE 1 -> 48.13 dB
    assert metrics.image_metrics(pred, target, protocol="dmshn")["psnr"] == pytest.approx(
        20 * math.log10(255), abs=1e-4
    )
    assert metrics.image_metrics(target, target, protocol="dmshn")["psnr"] == math.inf


def test_ntire2023_peak_is_the_predictions_maximum_not_255():
    target = np.full((32, 32, 3), 100 / 255, np.float32)
    pred = np.full_like(target, 110.7 / 255)  # truncated to 110: MSE 100, peak 110
    out = metrics.image_metrics(pred, target, protocol="ntire2023")
    assert out["psnr"] == pytest.approx(20 * math.log10(110 / 10), abs=1e-4)  # 20.83 dB
    assert abs(out["psnr"] - 20 * math.log10(255 / 10)) > 7.0  # 255 as the peak: 28.13 dB


def test_ntire2023_with_255_as_peak_would_differ_on_a_dim_prediction(pair):
    pred, target = pair
    dim = pred * 0.8  # its maximum 0.84 -> 214 after truncation
    out = metrics.image_metrics(dim, target, protocol="ntire2023")
    p = (np.clip(dim, 0, 1) * 255).astype(np.uint8)
    assert p.max() == 214
    mse = np.mean((p.astype(np.float64) - np.round(target * 255)) ** 2)
    assert out["psnr"] == pytest.approx(20 * math.log10(214 / math.sqrt(mse)), abs=1e-3)
    assert abs(out["psnr"] - 10 * math.log10(255**2 / mse)) > 1.0


def test_bokehlicious_with_a_uniform_window_is_a_different_number(ref, pair):
    pred, target = pair
    p = np.clip(pred, 0, 1)
    uniform = structural_similarity(
        p, target, channel_axis=2, win_size=11, data_range=1.0, use_sample_covariance=False
    )
    assert abs(uniform - float(ref["s0_bokehlicious_ssim"])) > SSIM_TOL


def test_bokehlicious_without_the_reflect_padding_is_a_different_number(ref, pair):
    pred, target = pair
    valid = metrics.ssim(np.clip(pred, 0, 1), target)[0]
    assert abs(valid - float(ref["s0_bokehlicious_ssim"])) > SSIM_TOL


def test_bokehlicious_crops_the_centre_to_multiples_of_4_rounding_up():
    img = np.arange(10 * 13 * 3, dtype=np.float32).reshape(10, 13, 3)
    # 10 -> 8 rows from ceil(1) = 1; 13 -> 12 columns from ceil(0.5) = 1 (floor would give 0)
    np.testing.assert_array_equal(protocols.crop_to_multiple(img), img[1:9, 1:13])
    target = np.full((18, 21, 3), 0.5, np.float32)
    pred = target.copy()
    pred[:, 0] = 0.0  # column 0 lies outside the crop (left = 1)
    assert metrics.image_metrics(pred, target, protocol="bokehlicious")["psnr"] == math.inf


def test_unknown_protocol_and_bad_shapes_raise():
    a = np.zeros((64, 64, 3), np.float32)
    with pytest.raises(ValueError, match="unknown protocol 'val294'"):
        metrics.image_metrics(a, a, protocol="val294")
    with pytest.raises(ValueError, match="differ in size"):
        metrics.image_metrics(a, a[:, :32], protocol="dmshn")
    with pytest.raises(ValueError, match="levels 1-3"):
        metrics.authors_target(a, 4)
