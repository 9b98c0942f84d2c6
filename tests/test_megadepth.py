"""Tests for depth_tools.megadepth (Keras hourglass) and depth_tools.convert (.pth -> .h5)."""

import numpy as np
import pytest
from absl import flags

from depth_tools import build_megadepth, convert, load_megadepth_weights
from depth_tools.megadepth import torch_key
from pynet_bokeh.weights.torch_file import (
    UnsafeTorchFileError,
    _Call,
    _Global,
    load_torch_file,
    save_torch_zip,
)


@pytest.fixture(scope="module")
def pth(fixtures_dir):
    return fixtures_dir / "megadepth" / "megadepth_seed0_net_G.pth"


@pytest.fixture(scope="module")
def reference(fixtures_dir):
    return dict(np.load(fixtures_dir / "megadepth" / "reference_seed0.npz"))


@pytest.fixture(scope="module")
def state(pth):
    return load_torch_file(pth)


@pytest.fixture(scope="module")
def net(pth):
    return load_megadepth_weights(build_megadepth(), pth)


@pytest.fixture(scope="module")
def fresh_net():
    """A second model for loading other files into (never the one `net` is checked with)."""
    return build_megadepth()


def _count(model, cls):
    import keras

    return sum(isinstance(layer, getattr(keras.layers, cls)) for layer in model.layers)


def test_architecture_matches_the_spec(net):
    assert sum(int(np.prod(w.shape)) for w in net.trainable_weights) == 5_357_153
    assert sum(int(np.prod(w.shape)) for w in net.weights) == 5_371_297
    assert _count(net, "Conv2D") == 156
    assert _count(net, "BatchNormalization") == 155
    assert _count(net, "Concatenate") == 22  # inception modules
    bns = [layer for layer in net.layers if layer.__class__.__name__ == "BatchNormalization"]
    assert {bn.epsilon for bn in bns} == {1e-5}
    assert [bn.name for bn in bns if bn.scale or bn.center] == ["bn1"]
    pools = [layer.__class__.__name__ for layer in net.layers if layer.name.endswith("pool")]
    assert pools == ["MaxPooling2D", "MaxPooling2D", "AveragePooling2D", "AveragePooling2D"]
    assert [u.interpolation for u in net.layers if u.name.endswith("_up")] == ["nearest"] * 4
    assert net.input_shape == (None, None, None, 3)
    assert net.output_shape == (None, None, None, 1)


def test_torch_keys_follow_the_state_dict_layout(net, state):
    assert torch_key("conv1") == "module.0"
    assert torch_key("c4_pool_inc1_b2_conv2") == "module.3.0.0.1.2.3"  # (32, 32, 5, 5)
    assert torch_key("c4_plain_inc0_b0_bn1") == "module.3.0.1.0.0.1"
    assert torch_key("c2_plain_inc1_b3_conv1") == "module.3.0.0.3.0.0.3.0.0.1.3.0"
    assert torch_key("c1_pool_inc3_b1_bn2") == "module.3.0.0.3.0.0.3.0.1.3.0.1.3.1.4"
    assert torch_key("c4_pool_maxpool") is None
    prefixes = {torch_key(layer.name) for layer in net.layers if layer.weights}
    assert prefixes == {k.rsplit(".", 1)[0] for k in state}


def test_parity_with_pytorch_reference(net, reference):
    for i in (0, 1):
        x, ref = reference[f"input_{i}"], reference[f"log_depth_{i}"]
        out = np.asarray(net(x, training=False))
        assert out.shape == ref.shape
        err = np.abs(out - ref) / (1.0 + np.abs(ref))
        assert err.max() <= 1e-4, f"input_{i}: max scaled diff {err.max():.2e}"
        assert np.ptp(ref) > 5  # the reference is not trivially flat


def test_zip_format_without_module_prefix_loads_the_same(net, fresh_net, state, tmp_path):
    path = save_torch_zip(tmp_path / "net.pth", {k[len("module.") :]: v for k, v in state.items()})
    load_megadepth_weights(fresh_net, path)
    for a, b in zip(net.weights, fresh_net.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)


def _expect_unchanged(model, fn):
    before = [np.asarray(w).copy() for w in model.weights[:4]]
    fn()
    for a, w in zip(before, model.weights[:4], strict=True):
        np.testing.assert_array_equal(a, np.asarray(w))


@pytest.mark.parametrize("fault", ["missing", "extra", "shape"])
def test_bad_state_dict_names_the_key(fresh_net, state, tmp_path, fault):
    bad = dict(state)
    if fault == "missing":
        del bad["module.3.0.0.1.2.3.weight"]
        err, match = KeyError, r"missing tensor 'module\.3\.0\.0\.1\.2\.3\.weight'"
    elif fault == "extra":
        bad["module.5.weight"] = np.zeros(3, np.float32)
        err, match = KeyError, r"1 tensor\(s\) not used.*'module\.5\.weight'"
    else:
        bad["module.4.weight"] = np.zeros((1, 32, 3, 3), np.float32)
        err, match = ValueError, r"'module\.4\.weight' has shape \(1, 32, 3, 3\).*head_conv"
    path = save_torch_zip(tmp_path / f"{fault}.pth", bad)

    def load():
        with pytest.raises(err, match=match):
            load_megadepth_weights(fresh_net, path)

    _expect_unchanged(fresh_net, load)


def test_refuses_pth_with_non_allow_listed_global(fresh_net, tmp_path):
    # A zip .pth whose data.pkl calls builtins.eval: refused before anything runs.
    import zipfile

    from pynet_bokeh.weights.torch_file import _dumps

    with zipfile.ZipFile(tmp_path / "evil.pth", "w") as zf:
        zf.writestr("archive/data.pkl", _dumps({"x": _Call(_Global("builtins", "eval"), ("1",))}))
    with pytest.raises(UnsafeTorchFileError, match=r"evil\.pth.*'builtins\.eval'"):
        load_megadepth_weights(fresh_net, tmp_path / "evil.pth")


def test_missing_weights_file_says_where_to_get_it(fresh_net, tmp_path):
    with pytest.raises(FileNotFoundError, match="best_generalization_net_G.pth"):
        load_megadepth_weights(fresh_net, tmp_path / "nope.pth")


def test_convert_cli_writes_weights_h5_that_reload_exactly(
    net, fresh_net, pth, tmp_path, monkeypatch
):
    # The CLI builds its model: hand it fresh_net instead, to spare a build.
    monkeypatch.setattr("depth_tools.megadepth.build_megadepth", lambda: fresh_net)
    fv = flags.FlagValues()
    convert.define_flags(fv)
    out = tmp_path / "mega.weights.h5"
    fv(["depth-tools-convert", f"--pth={pth}", f"--output={out}"])
    convert.main(["depth-tools-convert"], fv)
    assert out.is_file() and not list(tmp_path.glob(".*"))
    fresh_net.set_weights([np.zeros(w.shape, w.dtype) for w in fresh_net.weights])
    load_megadepth_weights(fresh_net, out)
    for a, b in zip(net.weights, fresh_net.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    with pytest.raises(SystemExit, match="exists: pass --overwrite"):
        convert.main(["depth-tools-convert"], fv)
    with pytest.raises(ValueError, match="must end in .weights.h5"):
        convert.convert_pth(pth, tmp_path / "mega.h5")
    assert convert.default_output("/a/net_G.pth").as_posix() == "/a/net_G.weights.h5"


@pytest.mark.slow
def test_keras_file_round_trip(net, reference, tmp_path):
    import keras

    net.save(tmp_path / "megadepth.keras")
    back = keras.saving.load_model(tmp_path / "megadepth.keras")
    x = reference["input_0"]
    np.testing.assert_allclose(np.asarray(back(x)), np.asarray(net(x)), rtol=0, atol=1e-5)
