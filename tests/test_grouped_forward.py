"""grouped_forward: a functional model's outputs with feature maps as channel groups."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pynet_bokeh import build_pynet, level_model, load_tf1_checkpoint
from pynet_bokeh.models.grouped_forward import grouped_forward
from pynet_bokeh.models.pynet import INFERENCE_RECOMPUTE

L = keras.layers


def _small_model():
    """Every layer kind PyNET uses, on concatenations split at different channel offsets."""
    x = keras.Input((None, None, 3), name="x")
    a = L.Conv2D(5, 3, padding="same", name="a")(x)
    b = L.Conv2D(7, 5, padding="same", name="b")(x)
    ab = L.Concatenate(name="ab")([a, b])  # groups 5 + 7
    c = L.Conv2D(12, 3, padding="same", name="c")(ab)  # one tensor of 12
    d = L.Concatenate(name="d")([L.Conv2D(8, 1, name="d1")(x), L.Conv2D(4, 1, name="d2")(x)])
    s = L.Add(name="sum")([ab, c, d])  # 5 + 7, 12, 8 + 4: split at 5, 7 and 8
    n = L.GroupNormalization(groups=-1, epsilon=1e-3, name="instance_norm")(s)
    g = L.GroupNormalization(groups=3, name="group_norm")(s)  # not per channel: as is
    h = L.LeakyReLU(negative_slope=0.2, name="act")(L.Concatenate(name="ng")([n, g]))
    p = L.MaxPooling2D(2, strides=2, name="pool")(h)
    u = L.Conv2DTranspose(6, 3, strides=2, padding="same", name="up")(p)
    v = L.Conv2D(4, 3, strides=2, padding="same", name="strided")(L.Concatenate(name="uh")([u, h]))
    w = L.Dense(3, name="dense")(L.Concatenate(name="uv")([u, x]))  # unknown: on the whole map
    return keras.Model(x, {"out": w, "strided": v, "concat": L.Concatenate(name="end")([w, u])})


def _randomized(model, seed=0):
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.normal(0.0, 0.5, variable.shape).astype(np.float32))
    return model


def test_every_layer_kind_matches_the_keras_call():
    model = _randomized(_small_model())
    x = np.random.default_rng(1).random((2, 16, 24, 3), np.float32)
    want = model(x, training=False)
    got = tf.function(lambda t: grouped_forward(model, t, recompute=("a", "d1")))(x)
    assert sorted(got) == ["concat", "out", "strided"]
    for key in want:
        assert got[key].shape == want[key].shape, key
        scale = float(np.abs(want[key]).max())
        assert scale > 1.0, key  # values that would show a wrong sum
        assert float(np.abs(np.asarray(got[key]) - np.asarray(want[key])).max()) < 1e-5 * scale


def test_a_mixed_float16_model_matches_the_keras_call():
    """Inputs and weights in each layer's compute dtype, as Keras autocasts them."""
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = _randomized(_small_model(), seed=2)
    finally:
        keras.config.set_dtype_policy("float32")
    x = np.random.default_rng(3).random((1, 16, 24, 3), np.float32)
    want = model(x, training=False)
    got = tf.function(lambda t: grouped_forward(model, t))(x)
    for key in want:
        assert got[key].dtype == want[key].dtype == tf.float16, key
        a, b = np.asarray(got[key], np.float32), np.asarray(want[key], np.float32)
        assert float(np.abs(a - b).max()) < 1e-2 * float(np.abs(b).max()), key


def test_a_recompute_name_that_is_no_layer_is_refused():
    model = _small_model()
    with pytest.raises(ValueError, match="'nonesuch'"):
        grouped_forward(model, tf.zeros((1, 8, 8, 3)), recompute=("a", "nonesuch"))


def _graph(fn, channels=4):
    return tf.function(fn).get_concrete_function(tf.TensorSpec([1, 64, 96, channels])).graph


def test_pynet_graph_has_no_concatenation_and_runs_its_convolutions_in_order():
    net = level_model(build_pynet(), 1)
    keras_graph = _graph(lambda x: net(x, training=False))
    graph = _graph(lambda x: grouped_forward(net, x, recompute=INFERENCE_RECOMPUTE))

    def ops(g, *types):
        return [op for op in g.get_operations() if op.type in types]

    assert len(ops(keras_graph, "ConcatV2")) == 32
    assert ops(graph, "ConcatV2") == []
    convs = ops(graph, "Conv2D", "Conv2DBackpropInput")
    assert len(ops(keras_graph, "Conv2D", "Conv2DBackpropInput")) == 144
    assert len(convs) == 269  # one per input group of each layer; level 3's encoder 5 times
    # Each convolution waits for the one traced before it (a control or a data dependency).
    for before, after in zip(convs, convs[1:], strict=False):
        assert before in _ancestors(after), (before.name, after.name)


def _ancestors(op):
    """The ops `op` depends on, through its inputs and control inputs."""
    seen, stack = set(), [op]
    while stack:
        current = stack.pop()
        for parent in [t.op for t in current.inputs] + list(current.control_inputs):
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def test_pynet_outputs_match_the_tf1_reference(tf1_prefix, fixtures_dir):
    """All seven outputs of the authors' TF1 graph (seed-0 fixture) on both inputs."""
    model = load_tf1_checkpoint(build_pynet(), tf1_prefix)
    run = tf.function(lambda t: grouped_forward(model, t, recompute=INFERENCE_RECOMPUTE))
    ref = np.load(fixtures_dir / "pynet_tf1" / "reference_seed0.npz")
    for i in (0, 1):
        out = run(ref[f"input_{i}"])
        for level in range(1, 8):
            got, want = np.asarray(out[f"level{level}"]), ref[f"level{level}_{i}"]
            assert got.shape == want.shape
            assert np.abs(got - want).max() < 1e-4, (i, level)
