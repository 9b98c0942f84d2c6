"""Controllable PyNET (5 input channels): at load it renders exactly the authors' output."""

import keras
import numpy as np
import pytest

from pynet_bokeh import build_pynet
from pynet_bokeh.errors import UsageError, WeightsMismatchError
from pynet_bokeh.render.controls import signed_defocus
from pynet_bokeh.renderers import get_renderer, renderer_class
from pynet_bokeh.weights.tf1 import expand_input_kernel

INPUT_LAYER = "level3_enc_conv3a"


@pytest.fixture(scope="module")
def renderer(tf1_prefix):
    """The registry's method, loading the authors' checkpoint prefix (as --weights does)."""
    keras.utils.set_random_seed(0)
    return get_renderer("pynet-controllable", weights=str(tf1_prefix))


@pytest.fixture(scope="module")
def loaded(renderer):
    return renderer.model


@pytest.fixture(scope="module")
def reference(fixtures_dir):
    return np.load(fixtures_dir / "pynet_tf1" / "reference_seed0.npz")


def _with_control(x, seed):
    """The reference input with a random control map: uniform noise and a real defocus map."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-1, 1, x.shape[:3] + (1,)).astype(np.float32)
    real = signed_defocus(x[..., 3:4], rng.uniform(), rng.uniform(0, 200), 64.0)
    return np.concatenate([x, noise if seed % 2 else real], axis=-1)


def _max_errors(model, reference, inputs=(0, 1)):
    errors = {}
    for i in inputs:
        out = model(_with_control(reference[f"input_{i}"], i + 1))
        for level in range(1, 8):
            got = np.asarray(out[f"level{level}"])
            want = reference[f"level{level}_{i}"]
            assert got.shape == want.shape
            errors[(i, level)] = float(np.abs(got - want).max())
    return errors


def test_loaded_model_matches_authors_whatever_the_control(loaded, reference):
    errors = _max_errors(loaded, reference)
    print("parity max error", max(errors.values()), errors)
    assert max(errors.values()) <= 1e-4, errors
    assert loaded.get_config()["defocus_k_max"] == 64.0
    kernel = loaded.get_layer(INPUT_LAYER).kernel.numpy()
    assert kernel.shape == (3, 3, 20, 32)
    # The fifth channel of each of the 4 space_to_depth positions reads nothing ...
    np.testing.assert_array_equal(kernel[:, :, 4::5], 0.0)
    # ... and the others are the authors' kernel at the new stride.
    assert np.abs(kernel[:, :, 3::5]).max() > 0


def _misplaced(kernel16, how):
    """Wrong ways to widen a 16-channel input kernel to 20 channels."""
    k = np.zeros(kernel16.shape[:2] + (20,) + kernel16.shape[3:], np.float32)
    if how == "appended":  # ignores space_to_depth's interleaving
        k[:, :, :16] = kernel16
    else:  # the zero slice on the depth channel, depth moved to slot 4
        grouped = kernel16.reshape(3, 3, 4, 4, -1)
        wide = k.reshape(3, 3, 4, 5, -1)
        wide[:, :, :, :3] = grouped[:, :, :, :3]
        wide[:, :, :, 4] = grouped[:, :, :, 3]
    return k


@pytest.mark.parametrize("how", ["appended", "wrong_slot"])
def test_misplaced_fifth_channel_fails_the_comparison(loaded, reference, how):
    layer = loaded.get_layer(INPUT_LAYER)
    right, bias = (w.numpy() for w in layer.weights)
    kernel16 = np.delete(right, np.s_[4::5], axis=2)
    np.testing.assert_array_equal(expand_input_kernel(kernel16, 5), right)
    try:
        layer.set_weights([_misplaced(kernel16, how), bias])
        errors = _max_errors(loaded, reference, inputs=(0,))
    finally:
        layer.set_weights([right, bias])
    assert max(errors.values()) > 1e-2, errors


def test_expand_input_kernel_checks_its_input():
    with pytest.raises(WeightsMismatchError, match="16"):
        expand_input_kernel(np.zeros((3, 3, 12, 8), np.float32), 5)


def test_k_max_only_for_five_channels():
    with pytest.raises(ValueError, match="defocus_k_max"):
        build_pynet(input_channels=4, defocus_k_max=32.0)


def test_signed_defocus_values():
    d = np.array([0.0, 0.25, 0.5, 1.0], np.float32)
    np.testing.assert_allclose(signed_defocus(d, 0.5, 32.0, 64.0), [-0.25, -0.125, 0.0, 0.25])
    np.testing.assert_allclose(signed_defocus(d, 0.0, 256.0, 64.0), [0.0, 1.0, 1.0, 1.0])


def test_renderer_takes_focus_and_blur_and_is_the_authors_at_load(loaded):
    cls = renderer_class("pynet-controllable")
    renderer = cls(model=loaded, level=5)  # a coarse level: a small graph to trace
    assert (cls.takes_focus, cls.takes_blur, cls.needs_depth) == (True, True, True)
    assert cls.training_task == "pynet_bokeh.training.controllable_task"
    rng = np.random.default_rng(0)
    photo = rng.uniform(0, 1, (64, 96, 3)).astype(np.float32)
    depth = np.tile(np.linspace(0, 1, 48, dtype=np.float32), (32, 1))
    a = renderer.render(photo, depth, focus=(10, 10), blur=0.0)
    b = renderer.render(photo, depth, focus_disparity=0.9, blur=60.0)
    assert a.shape == photo.shape
    np.testing.assert_allclose(a, b, atol=1e-5)  # untrained: the control changes nothing yet
    assert np.abs(a - photo).mean() > 0.05
    with pytest.raises(UsageError, match="--blur"):
        renderer.render(photo, depth, blur=-1)


def test_renderer_needs_weights():
    with pytest.raises(UsageError, match="needs --weights"):
        get_renderer("pynet-controllable")
