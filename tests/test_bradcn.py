"""BRADCN (tiny config): shapes, backward pass, the injection equation and its ablation
switches, encoder modes, checkpoint initialisation and a .keras round trip."""

import keras
import numpy as np
import pytest

from depth_tools.torch_file import save_torch_zip
from pynet_bokeh.models.bradcn import (
    adcn_stage_model,
    bradcn_config,
    build_adcn,
    build_bradcn,
    load_bradcn_weights,
)
from pynet_bokeh.models.dpt import build_dpt, dpt_state_dict

X = np.random.default_rng(0).uniform(0, 1, (2, 64, 96, 3)).astype(np.float32)


def np_(t):
    return keras.ops.convert_to_numpy(t)


def copy_weights(src, dst):
    """Copy weights by layer name (nested models by their own layer names)."""
    src_names = {layer.name for layer in src.layers}
    for layer in dst.layers:
        if layer.name not in src_names:
            continue
        if isinstance(layer, keras.Model):
            copy_weights(src.get_layer(layer.name), layer)
        elif layer.weights:
            layer.set_weights(src.get_layer(layer.name).get_weights())


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    model = build_bradcn("tiny")
    # Untrained heads give zero depth after ReLU; non-zero biases make every map informative.
    for name in ("depth_net", "adcn"):
        sub = model.get_layer(name)
        last = sub.get_layer("head_conv4" if name == "depth_net" else "adcn_out")
        last.bias.assign(np.full(last.bias.shape, 0.5 if name == "adcn" else 2000.0, np.float32))
    return model


def test_tiny_shapes_ranges_and_frozen_adcn(tiny):
    out = tiny(X)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "bokeh": (2, 64, 96, 3), "depth": (2, 64, 96, 1), "depth_error": (2, 64, 96, 1)
    }  # fmt: skip
    depth = np_(out["depth"])  # Do_n = Do / depth_max in (0, 1]
    assert depth.min() > 0 and depth.max() <= 1.0 + 1e-6
    assert np_(out["depth_error"]).min() >= 0
    adcn_ids = {id(v) for v in tiny.get_layer("adcn").weights}
    assert adcn_ids and not adcn_ids & {id(v) for v in tiny.trainable_variables}
    assert not tiny.get_layer("adcn").trainable and tiny.get_layer("depth_net").trainable


def test_tiny_backward_reaches_render_depth_and_adap(tiny):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(tiny(X, training=True)["bokeh"] - 0.5))
    grads = tape.gradient(loss, tiny.trainable_variables)
    names = [v.path for v in tiny.trainable_variables]
    assert all(g is not None and np.isfinite(np_(g)).all() for g in grads)
    assert (
        len(names)
        == len(tiny.get_layer("render_encoder").trainable_variables)
        + len(tiny.get_layer("render_decoder").trainable_variables)
        + len(tiny.get_layer("depth_net").trainable_variables)
        + 4
    )  # adap_d, adap_e kernel + bias
    norms = {n: float(np.abs(np_(g)).sum()) for n, g in zip(names, grads, strict=True)}
    for part in ("adap_d/kernel", "adap_e/kernel", "head_conv4/kernel", "patch_embed_proj/kernel"):
        assert any(norms[n] > 0 for n in norms if n.endswith(part)), part


def test_injection_equation_and_every_term_matters(tiny):
    """bokeh = decoder(E(x) + E(adap_d(Do_n)) + E(adap_e(De_n))); dropping either term (ablation
    switches, same weights) gives exactly the reduced sum, which differs from the full output."""
    out = tiny(X)
    enc, dec = tiny.get_layer("render_encoder"), tiny.get_layer("render_decoder")
    zd = tiny.get_layer("adap_d")(out["depth"])
    ze = tiny.get_layer("adap_e")(out["depth_error"])
    ex, ed, ee = enc(X), enc(zd), enc(ze)
    full = dec([a + b + c for a, b, c in zip(ex, ed, ee, strict=True)])
    np.testing.assert_allclose(np_(out["bokeh"]), np_(full), atol=1e-4)
    expected = {
        "inject_depth": dec([a + c for a, c in zip(ex, ee, strict=True)]),
        "inject_error": dec([a + b for a, b in zip(ex, ed, strict=True)]),
    }
    for switch, reduced in expected.items():
        ablated = build_bradcn("tiny", **{switch: False})
        copy_weights(tiny, ablated)
        got = np_(ablated(X)["bokeh"])
        np.testing.assert_allclose(got, np_(reduced), atol=1e-4)
        assert np.abs(got - np_(out["bokeh"])).max() > 1e-3, f"{switch} term has no effect"
    brvit = build_bradcn("tiny", inject_depth=False, inject_error=False)
    copy_weights(tiny, brvit)
    assert set(brvit.output) == {"bokeh"}
    np.testing.assert_allclose(np_(brvit(X)["bokeh"]), np_(dec(ex)), atol=1e-4)


def test_separate_copies_equal_shared_and_light_mode_runs(tiny):
    separate = build_bradcn("tiny", inject_encoder="separate")
    copy_weights(tiny, separate)
    for tag in ("d", "e"):
        separate.get_layer(f"render_encoder_{tag}").set_weights(
            tiny.get_layer("render_encoder").get_weights()
        )
    np.testing.assert_allclose(np_(separate(X)["bokeh"]), np_(tiny(X)["bokeh"]), atol=1e-4)
    light = build_bradcn("tiny", inject_encoder="light")
    assert light.get_layer("inject_d_conv4").kernel.shape == (3, 3, 3, 32)
    assert tuple(light(X[:1])["bokeh"].shape) == (1, 64, 96, 3)


def test_adcn_sizes_and_stage_model(tiny):
    assert build_adcn(64, 4, 4).count_params() == 31_049_985  # spec: ~31 M
    stage = adcn_stage_model(tiny)
    out = stage(X)
    np.testing.assert_allclose(np_(out["depth_error"]), np_(tiny(X)["depth_error"]), atol=1e-6)


def test_load_bradcn_weights_from_dpt_checkpoints(tiny, tmp_path):
    keras.utils.set_random_seed(3)
    depth_dpt = build_dpt("tiny", head="depth")
    path = tmp_path / "tiny_depth.pt"
    save_torch_zip(path, dpt_state_dict(depth_dpt))
    model = build_bradcn("tiny")
    skipped = load_bradcn_weights(model, render=path, depth=path)
    # a 1-channel depth checkpoint initialises everything of the render net but its last conv
    assert skipped == {
        "render": ["scratch.output_conv.4.bias", "scratch.output_conv.4.weight"], "depth": []
    }  # fmt: skip
    x = (X[:1] - 0.5) / 0.5
    np.testing.assert_allclose(np_(model.get_layer("depth_net")(x)), np_(depth_dpt(x)), atol=1e-6)
    np.testing.assert_array_equal(
        np_(model.get_layer("render_encoder").get_layer("block3_attn_qkv").kernel),
        np_(depth_dpt.get_layer("block3_attn_qkv").kernel),
    )
    with pytest.raises(ValueError, match="no depth_net"):
        load_bradcn_weights(
            build_bradcn("tiny", inject_depth=False, inject_error=False), depth=path
        )


def test_keras_round_trip(tiny, tmp_path):
    path = tmp_path / "bradcn_tiny.keras"
    tiny.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np_(loaded(X)["bokeh"]), np_(tiny(X)["bokeh"]), atol=1e-4)
    assert not loaded.get_layer("adcn").trainable


def test_config_errors():
    with pytest.raises(ValueError, match="inject_encoder='both'"):
        bradcn_config("tiny", inject_encoder="both")
    with pytest.raises(ValueError, match=r"unknown BRADCN config knobs \['adcn_width'\]"):
        bradcn_config("tiny", adcn_width=3)
    with pytest.raises(ValueError, match="config='huge'"):
        build_bradcn("huge")
