"""PyNET architecture: parameter count, shapes, level models, serialization, TF1 import parity."""

import subprocess
import sys

import keras
import numpy as np
import pytest

from pynet_bokeh import build_pynet, level_model, load_tf1_checkpoint
from pynet_bokeh.convert.tf1 import CheckpointMismatchError, convert_tf1_checkpoint


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_pynet()


@pytest.fixture(scope="module")
def slots_prefix(fixtures_dir, tmp_path_factory):
    """The seed-0 checkpoint written by the fixture's own script, with Adam slots."""
    out = tmp_path_factory.mktemp("tf1") / "pynet_bokeh_level_0"
    script = fixtures_dir / "pynet_tf1" / "make_checkpoint.py"
    subprocess.run(
        [sys.executable, str(script), str(out), "--seed", "0", "--extra-slots"],
        check=True,
        capture_output=True,
    )
    return out


def test_parameter_count(model):
    assert model.count_params() == 47_551_791
    assert len(model.weights) == 440
    assert len(model.tf1_order) == len([x for x in model.layers if x.weights]) == 225


@pytest.mark.parametrize("h, w", [(32, 64), (96, 64)])
def test_output_shapes_batch_two(model, h, w):
    out = model(np.random.default_rng(0).random((2, h, w, 4), dtype=np.float32))
    assert sorted(out) == [f"level{i}" for i in range(1, 8)]
    for level in range(1, 8):
        scale = 2.0 / 2 ** (level - 1)
        assert tuple(out[f"level{level}"].shape) == (2, int(h * scale), int(w * scale), 3)
    # Outputs lie in tanh's range 0.5 +- 0.58.
    y = np.asarray(out["level1"])
    assert y.min() >= 0.5 - 0.58 and y.max() <= 0.5 + 0.58


def test_instance_norm_is_per_sample(model):
    """A sample's output does not depend on the other samples in the batch."""
    rng = np.random.default_rng(1)
    a = rng.random((1, 64, 64, 4), dtype=np.float32)
    b = rng.random((1, 64, 64, 4), dtype=np.float32) * 0.2
    alone = np.asarray(model(a)["level3"])
    together = np.asarray(model(np.concatenate([a, b]))["level3"])[:1]
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_initialisation_as_authors(model):
    kernel, bias = model.get_layer("level5_mb2_conv5b").get_weights()
    assert abs(float(kernel.std()) - 0.0088) < 0.001  # truncated normal std 0.01 (cut at 2 sigma)
    assert np.abs(kernel).max() <= 0.02 + 1e-6
    np.testing.assert_array_equal(bias, np.full_like(bias, 0.01))
    gamma, beta = model.get_layer("level5_mb2_norm5b").get_weights()
    np.testing.assert_array_equal(gamma, 1.0)
    np.testing.assert_array_equal(beta, 0.0)


def test_options_change_the_graph():
    plain = build_pynet(input_channels=3, instance_norm=False)
    assert plain.input_shape == (None, None, None, 3)
    assert not any(isinstance(x, keras.layers.GroupNormalization) for x in plain.layers)
    nl1 = build_pynet(instance_norm_level_1=True)
    assert "level3_mb3_norm9a" in {x.name for x in nl1.layers}


def test_level_model_shares_weights(model):
    m7 = level_model(model, 7)
    assert m7.output.shape[-1] == 3
    assert m7.get_layer("level7_logits") is model.get_layer("level7_logits")
    # Level 7 needs only the encoder and level 7's layers.
    assert "level6_mb1_conv3a" not in {x.name for x in m7.layers}
    layer = model.get_layer("level7_mb1_conv3a")
    old = layer.get_weights()
    try:
        layer.set_weights([w + 1.0 for w in old])
        np.testing.assert_array_equal(
            m7.get_layer("level7_mb1_conv3a").get_weights()[1], old[1] + 1.0
        )
    finally:
        layer.set_weights(old)
    with pytest.raises(ValueError, match="level must be one of"):
        level_model(model, 8)


def test_keras_round_trip_exact(model, tmp_path):
    x = np.random.default_rng(2).random((1, 64, 96, 4), dtype=np.float32)
    path = tmp_path / "pynet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config() == model.get_config()
    assert loaded.tf1_order == model.tf1_order
    for key in ("level1", "level4", "level7"):
        np.testing.assert_array_equal(np.asarray(loaded(x)[key]), np.asarray(model(x)[key]))


def test_tf1_checkpoint_parity(model, slots_prefix, fixtures_dir):
    """Seven outputs of the original TF1 graph on both reference inputs, to 1e-4."""
    load_tf1_checkpoint(model, slots_prefix)
    ref = np.load(fixtures_dir / "pynet_tf1" / "reference_seed0.npz")
    for i in (0, 1):
        out = model(ref[f"input_{i}"])
        for level in range(1, 8):
            got = np.asarray(out[f"level{level}"])
            want = ref[f"level{level}_{i}"]
            assert got.shape == want.shape
            assert np.abs(got - want).max() < 1e-4, (i, level)


def test_tf1_checkpoint_without_slots(model, tf1_prefix, fixtures_dir):
    load_tf1_checkpoint(model, str(tf1_prefix) + ".index")  # the .index path is accepted too
    ref = np.load(fixtures_dir / "pynet_tf1" / "reference_seed0.npz")
    got = np.asarray(model(ref["input_1"])["level1"])
    assert np.abs(got - ref["level1_1"]).max() < 1e-4


def _write_checkpoint(prefix, tensors):
    import tensorflow as tf

    names = sorted(tensors)
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(tensors[n]) for n in names],
    )


def _checkpoint_tensors(fixtures_dir):
    import json

    spec = json.loads((fixtures_dir / "pynet_tf1" / "variables.json").read_text())
    return {s["name"]: np.zeros(s["shape"], np.float32) for s in spec}


def test_missing_variable_is_named(model, fixtures_dir, tmp_path):
    tensors = _checkpoint_tensors(fixtures_dir)
    del tensors["generator/Variable_123"]
    _write_checkpoint(tmp_path / "ck", tensors)
    before = model.get_layer("level3_enc_conv3a").get_weights()[0].copy()
    with pytest.raises(CheckpointMismatchError, match="'generator/Variable_123'.*missing"):
        load_tf1_checkpoint(model, tmp_path / "ck")
    # Nothing was assigned.
    np.testing.assert_array_equal(model.get_layer("level3_enc_conv3a").get_weights()[0], before)


def test_wrong_shape_is_named(model, fixtures_dir, tmp_path):
    tensors = _checkpoint_tensors(fixtures_dir)
    tensors["generator/Variable_2"] = np.zeros((3, 3, 32, 16), np.float32)
    _write_checkpoint(tmp_path / "ck", tensors)
    with pytest.raises(CheckpointMismatchError, match=r"Variable_2.*\(3, 3, 32, 16\).*level3_enc"):
        load_tf1_checkpoint(model, tmp_path / "ck")


def test_other_options_refused(slots_prefix):
    with pytest.raises(CheckpointMismatchError, match="instance_norm.*defaults"):
        load_tf1_checkpoint(build_pynet(instance_norm=False), slots_prefix)


def test_missing_checkpoint_and_wrong_model(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.index"):
        load_tf1_checkpoint(model, tmp_path / "nope")
    with pytest.raises(TypeError, match="full model from build_pynet"):
        load_tf1_checkpoint(level_model(model, 7), tmp_path / "nope")


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_convert_cli_writes_loadable_weights(slots_prefix, fixtures_dir, tmp_path):
    from pynet_bokeh.cli import main

    out = tmp_path / "authors.weights.h5"
    assert main(["convert-tf1", str(slots_prefix), str(out)]) == 0
    fresh = build_pynet()
    fresh.load_weights(out)
    ref = np.load(fixtures_dir / "pynet_tf1" / "reference_seed0.npz")
    got = np.asarray(fresh(ref["input_0"])["level2"])
    assert np.abs(got - ref["level2_0"]).max() < 1e-4
    with pytest.raises(ValueError, match="must end with .weights.h5"):
        convert_tf1_checkpoint(slots_prefix, tmp_path / "x.h5")
