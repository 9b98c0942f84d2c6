"""BRADCN (tiny config): shapes, backward pass, the injection equation and its ablation
switches, encoder modes, checkpoint initialisation and a .keras round trip."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from dpt_weights import dpt_state_dict

from pynet_bokeh.models.bradcn import (
    adcn_stage_model,
    bradcn_config,
    build_adcn,
    build_bradcn,
    load_bradcn_weights,
    render_stage_model,
    set_trainable,
)
from pynet_bokeh.models.dpt import build_dpt
from pynet_bokeh.models.dpt_layers import NyuMetricDepth
from pynet_bokeh.weights.torch_file import save_torch_zip

X = np.random.default_rng(0).uniform(0, 1, (2, 64, 96, 3)).astype(np.float32)


def np_(t):
    return keras.ops.convert_to_numpy(t)


def copy_weights(src, dst):
    """Copy weights by layer name, as the project moves weights between models."""
    names = {layer.name for layer in src.layers}
    for layer in dst.layers:
        if layer.weights and layer.name in names:
            layer.set_weights(src.get_layer(layer.name).get_weights())


def informative(model):
    """Untrained ReLU heads give all-zero maps: biases that make Do and De vary instead."""
    model.get_layer("depth_head_conv4").bias.assign(np.array([2000.0], np.float32))
    model.get_layer("adcn_out").bias.assign(np.array([0.5], np.float32))
    return model


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    return informative(build_bradcn("tiny"))


def test_tiny_shapes_ranges_and_frozen_adcn(tiny):
    out = tiny(X)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "bokeh": (2, 64, 96, 3), "depth": (2, 64, 96, 1), "depth_error": (2, 64, 96, 1)
    }  # fmt: skip
    depth = np_(out["depth"])  # Do_n = Do / depth_max in (0, 1]
    assert depth.min() > 0 and depth.max() <= 1.0 + 1e-6
    assert np_(out["depth_error"]).min() >= 0
    trainable_layers = {v.path.split("/")[0] for v in tiny.trainable_variables}
    assert not any(n.startswith("adcn_") for n in trainable_layers)  # stage 2: ADCN frozen
    assert {"adap_d", "adap_e", "depth_head_conv4", "render_head_conv4"} <= trainable_layers


def test_tiny_backward_reaches_render_depth_and_adap(tiny):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(render_stage_model(tiny)(X, training=True) - 0.5))
    grads = tape.gradient(loss, tiny.trainable_variables)
    assert all(g is not None and np.isfinite(np_(g)).all() for g in grads)
    norms = {
        v.path: float(np.abs(np_(g)).sum())
        for v, g in zip(tiny.trainable_variables, grads, strict=True)
    }
    for name in ("adap_d", "adap_e", "depth_head_conv4", "depth_patch_embed_proj"):
        assert norms[name + "/kernel"] > 0, name
    assert norms["render_patch_embed_proj/kernel"] > 0


def test_injection_equation_and_every_term_matters(tiny):
    """bokeh = decoder(E(x) + E(adap_d(Do_n)) + E(adap_e(De_n))), one batched encoder pass;
    dropping either term (ablation switches, same weights) gives exactly the reduced sum,
    which differs from the full output."""
    layer_out = lambda name: tiny.get_layer(name).output  # noqa: E731
    encoder = keras.Model(
        layer_out("inject_batch"), [layer_out(f"render_layer{k}_rn") for k in range(1, 5)]
    )
    decoder = keras.Model([layer_out(f"inject_sum{k}") for k in range(1, 5)], tiny.output["bokeh"])
    out = tiny(X)
    zd = tiny.get_layer("adap_d")(out["depth"])
    ze = tiny.get_layer("adap_e")(out["depth_error"])
    ex, ed, ee = encoder(X), encoder(zd), encoder(ze)
    full = decoder([a + b + c for a, b, c in zip(ex, ed, ee, strict=True)])
    np.testing.assert_allclose(np_(out["bokeh"]), np_(full), atol=1e-4)
    expected = {
        "inject_depth": decoder([a + c for a, c in zip(ex, ee, strict=True)]),
        "inject_error": decoder([a + b for a, b in zip(ex, ed, strict=True)]),
    }
    for switch, reduced in expected.items():
        ablated = build_bradcn("tiny", **{switch: False})
        copy_weights(tiny, ablated)
        got = np_(ablated(X)["bokeh"])
        np.testing.assert_allclose(got, np_(reduced), atol=1e-4)
        assert np.abs(got - np_(out["bokeh"])).max() > 1e-2, f"{switch} term has no effect"
    brvit = build_bradcn("tiny", inject_depth=False, inject_error=False)
    copy_weights(tiny, brvit)
    assert set(brvit.output) == {"bokeh"}
    assert not any(layer.name.startswith(("depth_", "adcn_", "adap_")) for layer in brvit.layers)
    np.testing.assert_allclose(np_(brvit(X)["bokeh"]), np_(decoder(ex)), atol=1e-4)


def test_separate_copies_equal_shared_and_light_mode_runs(tiny):
    separate = build_bradcn("tiny", inject_encoder="separate")
    copy_weights(tiny, separate)
    for layer in separate.layers:
        if layer.name.startswith(("render_d_", "render_e_")) and layer.weights:
            layer.set_weights(tiny.get_layer("render_" + layer.name[9:]).get_weights())
    np.testing.assert_allclose(np_(separate(X)["bokeh"]), np_(tiny(X)["bokeh"]), atol=1e-4)
    light = build_bradcn("tiny", inject_encoder="light")
    assert light.get_layer("inject_d_conv4").kernel.shape == (3, 3, 3, 32)
    assert not any(layer.name.startswith("render_d_") for layer in light.layers)
    assert tuple(light(X[:1])["bokeh"].shape) == (1, 64, 96, 3)


def test_adcn_size_and_stage_model(tiny):
    assert build_adcn(64, 4, 4).count_params() == 31_049_985  # spec: ~31 M
    stage = adcn_stage_model(tiny)
    out = np_(stage(X))
    full = tiny(X)
    assert out.shape == (2, 64, 96, 2)
    np.testing.assert_allclose(out[..., :1], np_(full["depth_error"]), atol=1e-6)
    np.testing.assert_allclose(out[..., 1:], np_(full["depth"]), atol=1e-6)
    model = build_bradcn("tiny")
    assert (
        set_trainable(model, "adcn", True) == 2 * 2 * (2 * 2 + 1) + 2 + 1
    )  # conv+bn x DC x 5 DCs, 2 ups, out
    with pytest.raises(ValueError, match="part='adcn_x'"):
        set_trainable(model, "adcn_x", True)


def test_load_bradcn_weights_from_dpt_checkpoints(tmp_path):
    keras.utils.set_random_seed(3)
    depth_dpt = build_dpt("tiny", head="depth")
    path = tmp_path / "tiny_depth.pt"
    save_torch_zip(path, dpt_state_dict(depth_dpt))
    model = build_bradcn("tiny", inject_encoder="separate")
    skipped = load_bradcn_weights(model, render=path, depth=path)
    # a 1-channel depth checkpoint initialises all of the render net but its last conv
    assert skipped == {
        "render": ["scratch.output_conv.4.bias", "scratch.output_conv.4.weight"], "depth": []
    }  # fmt: skip
    expected = NyuMetricDepth()(depth_dpt((X - 0.5) / 0.5)) * 0.1378
    np.testing.assert_allclose(np_(model(X)["depth"]), np_(expected), rtol=1e-5)
    kernel = np_(depth_dpt.get_layer("block3_attn_qkv").kernel)
    for name in ("render_block3_attn_qkv", "render_d_block3_attn_qkv", "render_e_block3_attn_qkv"):
        np.testing.assert_array_equal(np_(model.get_layer(name).kernel), kernel)
    with pytest.raises(ValueError, match="has no depth net"):
        load_bradcn_weights(
            build_bradcn("tiny", inject_depth=False, inject_error=False), depth=path
        )


def test_load_and_render_a_photo(tiny, tmp_path):
    """Trainer weights file -> load_bradcn -> the paper's test protocol on an odd-sized photo."""
    import cv2

    from pynet_bokeh.models.bradcn import load_bradcn
    from pynet_bokeh.renderers.bradcn import render_bradcn
    from pynet_bokeh.training.checkpointing import save_weights

    path = save_weights(tiny, tmp_path / "final.weights.h5")
    model = load_bradcn(path, config="tiny")
    photo = np.random.default_rng(2).uniform(0, 1, (100, 150, 3)).astype(np.float32)
    out = render_bradcn(model, photo)
    assert out.shape == (100, 150, 3) and out.min() >= 0 and out.max() <= 1
    half = cv2.resize(photo, (75, 50), interpolation=cv2.INTER_AREA)
    padded = np.pad(half, ((0, 14), (0, 21), (0, 0)), mode="reflect")[None]  # to 64 x 96
    ref = np_(tiny(padded)["bokeh"])[0, :50, :75]
    small = cv2.resize(out, (75, 50), interpolation=cv2.INTER_AREA)
    assert np.abs(small - np.clip(ref, 0, 1)).mean() < 0.05
    with pytest.raises(ValueError, match="H x W x 3"):
        render_bradcn(model, photo[..., :2])


def test_keras_round_trip(tiny, tmp_path):
    path = tmp_path / "bradcn_tiny.keras"
    tiny.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np_(loaded(X)["bokeh"]), np_(tiny(X)["bokeh"]), atol=1e-5)
    assert not loaded.get_layer("adcn_out").trainable


def test_config_errors():
    with pytest.raises(ValueError, match="inject_encoder='both'"):
        bradcn_config("tiny", inject_encoder="both")
    with pytest.raises(ValueError, match=r"unknown BRADCN config knobs \['adcn_width'\]"):
        bradcn_config("tiny", adcn_width=3)
    with pytest.raises(ValueError, match="config='huge'"):
        build_bradcn("huge")


# --- training stages (pynet_bokeh.training.bradcn_task) ---------------------------------------


def test_sun_rgbd_depth_decoding():
    from pynet_bokeh.training.bradcn_task import decode_sun_depth

    def encode(mm):  # the SUN RGB-D files store the millimetres rotated left by 3 bits
        return ((mm << 3) & 0xFFFF) | (mm >> 13)

    raw = np.array([[encode(1234), encode(9000), 0]], np.uint16)
    np.testing.assert_allclose(np_(decode_sun_depth(raw)), [[1.234, 8.0, 0.0]], rtol=1e-6)


def test_ms_ssim_matches_tf_image():
    from pynet_bokeh.training.bradcn_task import ms_ssim

    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (2, 192, 192, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1).astype(np.float32)
    ref = float(tf.reduce_mean(tf.image.ssim_multiscale(a, b, 1.0)))
    assert abs(float(ms_ssim(a, b)) - ref) < 1e-4
    assert abs(float(ms_ssim(a, a)) - 1.0) < 1e-6


def _train_stage(stage, data, model_dir, steps, **overrides):
    """Trains one stage with the project's Trainer; returns a fixed batch's loss before/after."""
    from pynet_bokeh.training.bradcn_task import BradcnTask
    from pynet_bokeh.training.trainer import TrainConfig, Trainer

    keras.utils.set_random_seed(0)
    task = BradcnTask(
        stage, data, model_dir, config="tiny", allow_untrained_depth=True, model_overrides=overrides
    )
    config = TrainConfig(
        work_dir=task.work_dir, steps=steps, learning_rate=1e-3, checkpoint_every=1000,
        eval_every=1000, eval_batches=1, verbose=False,
    )  # fmt: skip
    trainer = Trainer(task, config)
    trainer.setup()
    x, y = next(iter(task.dataset("train", seed=1, repeat=False)))

    def fixed_loss():
        out = trainer.train_model(x, training=False)
        return float(tf.add_n(list(task.loss_terms(x, y, out).values())))

    before = fixed_loss()
    assert trainer.run().end_step == steps
    return before, fixed_loss()


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory):
    from pynet_bokeh.data.synthetic import ensure_synthetic

    # no test split: the stages skip evaluation (and its graph tracing)
    return ensure_synthetic(tmp_path_factory.mktemp("data"), n_train=3, n_test=0, size=(128, 192))


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_stage_adcn_then_render_losses_fall(synthetic_set, tmp_path):
    """Stage adcn (ADCN on the synthetic true depth), then stage render (L1) starting from its
    weights; light injection and a frozen depth net keep the CPU graph small."""
    from pynet_bokeh.training.bradcn_task import BradcnTask, HandOffError

    with pytest.raises(HandOffError, match="bradcn_adcn"):
        BradcnTask("render", synthetic_set, tmp_path, config="tiny").preflight(resuming=False)
    with pytest.raises(FileNotFoundError, match="dpt_hybrid_nyu"):
        BradcnTask("adcn", synthetic_set, tmp_path, config="tiny").preflight(resuming=False)
    knobs = dict(inject_encoder="light", freeze_depth=True)
    for stage in ("adcn", "render"):
        before, after = _train_stage(stage, synthetic_set, tmp_path, 30, **knobs)
        print(stage, before, after)
        assert after < 0.8 * before, (stage, before, after)


def test_render_msssim_step_from_given_weights(synthetic_set, tmp_path):
    """One render_msssim step in the default suite: the stage starts from --init_from weights
    (no render stage run before), its loss has the MS-SSIM term, and the step writes weights
    that differ from the start."""
    from pynet_bokeh.training.bradcn_task import BradcnTask
    from pynet_bokeh.training.checkpointing import read_weights_by_name, save_weights
    from pynet_bokeh.training.trainer import TrainConfig, Trainer

    knobs = dict(inject_encoder="light", freeze_depth=True)
    keras.utils.set_random_seed(0)
    init = save_weights(build_bradcn("tiny", **knobs), tmp_path / "init.weights.h5")
    task = BradcnTask(
        "render_msssim", synthetic_set, tmp_path, config="tiny", init_from=init,
        allow_untrained_depth=True, model_overrides=knobs,
    )  # fmt: skip
    config = TrainConfig(
        work_dir=task.work_dir, steps=1, learning_rate=1e-3, checkpoint_every=1000,
        eval_every=1000, eval_batches=0, verbose=False, run_eagerly=True,
    )  # fmt: skip
    trainer = Trainer(task, config)
    trainer.setup()
    x, y = next(iter(task.dataset("train", seed=1, repeat=False)))
    terms = task.loss_terms(x, y, trainer.train_model(x, training=False))
    assert sorted(terms) == ["l1", "ms_ssim"] and 0.0 < float(terms["ms_ssim"]) <= 1.0
    result = trainer.run()
    assert result.end_step == 1 and np.isfinite(result.last_loss)
    start, end = read_weights_by_name(init), read_weights_by_name(result.final_weights)
    changed = [n for n in end if any(np.any(a != b) for a, b in zip(start[n], end[n], strict=True))]
    assert changed and not [n for n in changed if n.startswith("adcn_")]  # ADCN stays frozen


@pytest.mark.slow
def test_all_stages_paper_recipe_losses_fall(synthetic_set, tmp_path):
    """The paper's recipe on the tiny config (shared injection, depth net fine-tuned): adcn,
    render (L1), render_msssim (L1 + 1 - MS-SSIM), each from the previous stage's weights."""
    for stage, steps, factor in (
        ("adcn", 30, 0.8),
        ("render", 30, 0.8),
        ("render_msssim", 40, 0.95),
    ):
        before, after = _train_stage(stage, synthetic_set, tmp_path, steps)
        print(stage, before, after)
        assert after < factor * before, (stage, before, after)


def test_dynamic_shape_graph(tiny):
    """One traced graph serves any H, W (multiples of 32), as export and serving need."""
    fn = tf.function(lambda x: tiny(x)["bokeh"])
    concrete = fn.get_concrete_function(tf.TensorSpec([None, None, None, 3]))
    for shape in ((1, 64, 96, 3), (1, 96, 64, 3)):
        x = np.random.default_rng(1).uniform(0, 1, shape).astype(np.float32)
        np.testing.assert_allclose(np_(concrete(tf.constant(x))), np_(tiny(x)["bokeh"]), atol=1e-4)


@pytest.mark.slow
def test_tflite_export_builtin_ops(tmp_path):
    """The render view of tiny BRADCN converts with builtin ops only and matches Keras."""
    from pynet_bokeh import export

    model = render_stage_model(informative(build_bradcn("tiny")))
    export.write_saved_model(model, tmp_path / "sm", export.default_input_specs(model, 64, 96))
    tflite = export.convert_saved_model(tmp_path / "sm")
    export.check_builtin_ops(export.op_names(tflite))
    interpreter = export.make_interpreter(tflite)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], X[:1])
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    ref = np_(model(X[:1]))
    assert np.abs(out - ref).max() < 1e-4 * np.abs(ref).max()


def test_task_from_flags_schedule_and_errors(tmp_path):
    from types import SimpleNamespace

    from pynet_bokeh.errors import UsageError
    from pynet_bokeh.training.bradcn_task import task_from_flags

    flags = SimpleNamespace(
        stage="render_msssim", synthetic=False, dataset_dir=str(tmp_path), model_dir="runs/pynet",
        batch_size=None, patch_size=None, steps=None, learning_rate=None, eval_every=None,
        eval_batches=8, checkpoint_every=None, keep_checkpoints=3, init_from=None, strategy="default",
        mixed_precision=False, skip_bad=False, seed=0, run_eagerly=True, bradcn_config=None,
    )  # fmt: skip
    task, config = task_from_flags(flags)
    assert (task.config, task.patch_size, task.batch_size) == ("paper", 512, 1)
    assert (config.steps, config.learning_rate) == (30 * 4400, 5e-5)
    assert config.work_dir == "runs/bradcn/bradcn_render_msssim"
    assert config.run_eagerly  # --run_eagerly reaches every method's config
    assert config.checkpoint_every == 1000
    flags.stage, flags.steps = "adcn", 10
    task, config = task_from_flags(flags)
    assert (config.steps, config.learning_rate, task.image_hw) == (10, 1e-4, (480, 640))
    flags.stage = "depth"
    with pytest.raises(UsageError, match="stages are adcn, render, render_msssim"):
        task_from_flags(flags)
    flags.stage, flags.dataset_dir = "adcn", None
    with pytest.raises(UsageError, match="--dataset_dir"):
        task_from_flags(flags)


def test_rgbd_layout_sun_depth_pngs(tmp_path):
    """rgb/ + depth/ (16-bit, SUN RGB-D rotation) -> Dgt_n = metres / depth_max, 0 kept as
    'no depth', nearest-neighbour resize; a photo without depth is named."""
    import imageio.v3 as iio

    from pynet_bokeh.training.bradcn_task import find_rgbd_pairs, rgbd_dataset

    split = tmp_path / "train"
    (split / "rgb").mkdir(parents=True)
    (split / "depth").mkdir()
    mm = np.zeros((64, 96), np.uint16)
    mm[:, 48:] = 2000  # right half 2 m, left half no depth
    iio.imwrite(split / "rgb" / "a.png", np.full((64, 96, 3), 128, np.uint8))
    iio.imwrite(split / "depth" / "a.png", ((mm << 3) | (mm >> 13)).astype(np.uint16))
    pairs = find_rgbd_pairs(tmp_path, "train")
    rgb, depth = next(iter(rgbd_dataset(pairs, (32, 48), 7.0, 1, False, 0, False)))
    assert rgb.shape == (1, 32, 48, 3) and abs(float(rgb[0, 0, 0, 0]) - 128 / 255) < 1e-6
    np.testing.assert_allclose(np_(depth)[0, :, 24:, 0], 2.0 / 7.0, rtol=1e-6)
    assert not np_(depth)[0, :, :24].any()
    iio.imwrite(split / "rgb" / "b.png", np.zeros((64, 96, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="no depth for 1 photo.*b.png"):
        find_rgbd_pairs(tmp_path, "train")


@pytest.mark.slow
def test_paper_bradcn_depth_net_matches_original_dpt_nyu(fixtures_dir, tmp_path):
    """`paper` BRADCN with the DPT fixture checkpoint as its depth net (and render net):
    Do_n equals the original DPT-NYU output / depth_max (spec section 5)."""
    import subprocess
    import sys

    dpt_dir = fixtures_dir / "dpt"
    path = tmp_path / "seed0.pt"
    subprocess.run(
        [sys.executable, str(dpt_dir / "make_checkpoint.py"), str(path), "--seed", "0"], check=True
    )
    model = build_bradcn("paper")
    skipped = load_bradcn_weights(model, render=path, depth=path)
    assert "scratch.output_conv.4.weight" in skipped["render"]
    with np.load(dpt_dir / "reference_seed0.npz") as ref:
        rgb = ref["s0_input"] * 0.5 + 0.5  # the fixture stores (x - 0.5) / 0.5
        expected = ref["s0_depth_nyu"] * 0.1378
    out = model(rgb)
    diff = np.abs(np_(out["depth"]) - expected).max() / np.abs(expected).max()
    assert diff < 2e-4, diff
    assert tuple(out["bokeh"].shape) == (1, 64, 96, 3)
