"""LPIPS v0.1 (AlexNet) in Keras against the original implementation's outputs, without torch."""

import sys

import numpy as np
import pytest

from pynet_bokeh import metrics
from pynet_bokeh.errors import WeightsMismatchError
from pynet_bokeh.weights.torch_file import save_torch_zip

REL = 1e-3


@pytest.fixture(scope="module")
def lpips_dir(fixtures_dir):
    return fixtures_dir / "lpips"


@pytest.fixture(scope="module")
def lpips(lpips_dir):
    return metrics.build_lpips(
        "alex",
        trunk_weights=lpips_dir / "alexnet_seed0.pth",
        lin_weights=lpips_dir / "lpips_alex_v0.1.pth",
    )


@pytest.fixture(scope="module")
def ref(lpips_dir):
    return dict(np.load(lpips_dir / "reference_seed0.npz"))


@pytest.mark.parametrize("shape", ["s0", "s1"])
def test_distance_and_each_layer_match_the_lpips_package(lpips, ref, shape):
    total, layers = lpips(ref[f"{shape}_x0"], ref[f"{shape}_x1"], per_layer=True)
    assert total.shape == (3,) and layers.shape == (3, 5)
    np.testing.assert_allclose(total, ref[f"{shape}_lpips"], rtol=REL)
    np.testing.assert_allclose(layers, ref[f"{shape}_layers"], rtol=REL)
    # blur, noise and a mirrored copy are told apart (the distances differ by > 2x)
    assert ref[f"{shape}_lpips"].max() > 2 * ref[f"{shape}_lpips"].min()


@pytest.mark.parametrize("shape", ["s0", "s1"])
def test_spatial_map_matches(lpips, ref, shape):
    maps = lpips(ref[f"{shape}_x0"], ref[f"{shape}_x1"], spatial=True)
    expected = ref[f"{shape}_spatial"]
    assert maps.shape == expected.shape
    scale = np.abs(expected).max(axis=(1, 2), keepdims=True)
    assert np.abs(maps - expected).max() / scale.min() < REL


def test_signed_inputs_without_normalize_give_the_same_numbers(lpips, ref):
    # dmshn feeds [-1, 1] without normalize, Bokehlicious [0, 1] with it
    x0, x1 = ref["s0_x0"], ref["s0_x1"]
    unit = lpips(x0, x1, normalize=True)
    signed = lpips(2 * x0 - 1, 2 * x1 - 1, normalize=False)
    np.testing.assert_allclose(signed, unit, rtol=1e-5)
    np.testing.assert_allclose(unit, ref["s0_lpips"], rtol=REL)
    assert np.all(lpips(x0, x0) == 0.0)


class _RecordTorchImports:
    """A meta-path finder that records (and refuses) every attempt to import torch."""

    def __init__(self):
        self.attempts = []

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith(("torch.", "torchvision")):
            self.attempts.append(name)
            raise ImportError(f"{name} must not be imported")
        return None


def test_torch_is_never_imported(lpips_dir, ref, monkeypatch):
    recorder = _RecordTorchImports()
    monkeypatch.setattr(sys, "meta_path", [recorder, *sys.meta_path])
    for name in [m for m in sys.modules if m == "torch" or m.startswith("torch.")]:
        monkeypatch.delitem(sys.modules, name)
    lpips = metrics.build_lpips(
        "alex", lpips_dir / "alexnet_seed0.pth", lpips_dir / "lpips_alex_v0.1.pth"
    )
    np.testing.assert_allclose(lpips(ref["s0_x0"], ref["s0_x1"]), ref["s0_lpips"], rtol=REL)
    assert recorder.attempts == []
    assert "torch" not in sys.modules


def test_wrong_weight_files_say_what_they_hold(lpips_dir, tmp_path):
    lin = lpips_dir / "lpips_alex_v0.1.pth"
    trunk = lpips_dir / "alexnet_seed0.pth"
    with pytest.raises(WeightsMismatchError, match="features.0.weight"):
        metrics.build_lpips("alex", trunk_weights=lin, lin_weights=lin)
    bad = tmp_path / "lin_vgg.pth"
    save_torch_zip(
        bad, {f"lin{i}.model.1.weight": np.zeros((1, 8, 1, 1), np.float32) for i in range(5)}
    )
    with pytest.raises(WeightsMismatchError, match=r"lin0.model.1.weight is \(1, 8, 1, 1\)"):
        metrics.build_lpips("alex", trunk_weights=trunk, lin_weights=bad)
    with pytest.raises(ValueError, match="vgg"):
        metrics.build_lpips("vgg", trunk_weights=trunk, lin_weights=lin)


def test_scorer_adds_an_lpips_column(lpips, ref):
    scorer = metrics.Scorer(("dmshn",), lpips=lpips)
    assert scorer.columns == ["psnr", "ssim", "lpips"]
    row = scorer.score(ref["s1_x0"][1], ref["s1_x1"][1])
    assert row["lpips"] == pytest.approx(float(ref["s1_lpips"][1]), rel=REL)
    assert any("normalize" in note for note in scorer.notes())
