"""DPT port: parity with the original PyTorch DPT-Hybrid (shared/fixtures/dpt), checkpoint
import (zip and legacy .pt) with its errors, the custom layers' numerics, the tiny configs."""

import subprocess
import sys

import keras
import numpy as np
import pytest
from dpt_weights import dpt_state_dict

from pynet_bokeh.models.dpt import (
    CheckpointMismatchError,
    assign_dpt_weights,
    build_dpt,
    dpt_config,
    dpt_stage_model,
    load_dpt_checkpoint,
)
from pynet_bokeh.models.dpt_layers import BilinearUpsample, StdConv2D, bilinear_resize
from pynet_bokeh.weights.torch_file import save_torch_zip

# Stages stored in reference_seed0.npz, compared in float32 (tokens: blocks 8 and 11).
F32_STAGES = [
    "layer1", "layer2", "resnet_stage2", "tokens8", "tokens11", "layer3", "layer4",
    "layer1_rn", "layer2_rn", "layer3_rn", "layer4_rn", "path4", "path3", "head_raw", "depth",
]  # fmt: skip
F64_STAGES = ["layer2", "layer3", "head_raw"]
UNUSED = {
    "pretrained.model.norm.weight",
    "pretrained.model.norm.bias",
    "pretrained.model.head.weight",
    "pretrained.model.head.bias",
    *(f"scratch.refinenet4.resConfUnit1.conv{c}.{p}" for c in (1, 2) for p in ("weight", "bias")),
}


def rel_diff(out, ref):
    return float(np.abs(np.asarray(out, np.float64) - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module")
def dpt_dir(fixtures_dir):
    return fixtures_dir / "dpt"


@pytest.fixture(scope="module")
def reference(dpt_dir):
    with np.load(dpt_dir / "reference_seed0.npz") as ref:
        return dict(ref)


@pytest.fixture(scope="module")
def checkpoints(dpt_dir, tmp_path_factory):
    """The seed-0 checkpoint in both torch formats, written by the fixture's numpy-only script."""
    out = tmp_path_factory.mktemp("dpt_ckpt")
    paths = {"zip": out / "seed0.pt", "legacy": out / "seed0_legacy.pt"}
    for fmt, path in paths.items():
        cmd = [sys.executable, str(dpt_dir / "make_checkpoint.py"), str(path), "--seed", "0"]
        subprocess.run(
            cmd + (["--legacy"] if fmt == "legacy" else []), check=True, capture_output=True
        )
    yield paths
    for path in paths.values():
        path.unlink()


def run_stages(model, reference, j, dtype):
    outs = dpt_stage_model(model)(reference[f"s{j}_input"].astype(dtype))
    return {k: keras.ops.convert_to_numpy(v) for k, v in outs.items()}


@pytest.fixture(scope="module")
def hybrid_f32():
    return build_dpt("vitb_rn50_384", head="depth")


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_hybrid_float32_parity_stage_by_stage(hybrid_f32, checkpoints, reference, fmt):
    skipped = load_dpt_checkpoint(hybrid_f32, checkpoints[fmt])
    assert set(skipped) == UNUSED
    # every other value of the 123,146,985 in the file is a model weight, and vice versa
    assert hybrid_f32.count_params() == 123_146_985 - 770_536 - 2 * (256 * 256 * 9 + 256)
    worst = {}
    for j in (0, 1):
        outs = run_stages(hybrid_f32, reference, j, "float32")
        outs["depth"] = outs["output"]
        for stage in F32_STAGES:
            ref = reference[f"s{j}_{stage}"]
            assert outs[stage].shape == ref.shape, stage
            worst[stage] = max(worst.get(stage, 0.0), rel_diff(outs[stage], ref))
    print(f"{fmt} float32 max|d|/max|ref|:", {k: f"{v:.1e}" for k, v in worst.items()})
    bad = {k: v for k, v in worst.items() if v > 2e-4}
    assert not bad, f"stages beyond 2e-4 x max|ref|: {bad}"
    # The NYU metric-depth conversion on top of the depth head (DPT's invert branch).
    from pynet_bokeh.models.dpt_layers import NyuMetricDepth

    nyu = keras.ops.convert_to_numpy(NyuMetricDepth()(outs["depth"]))
    assert rel_diff(nyu, reference["s1_depth_nyu"]) < 2e-4


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_hybrid_float64_parity(checkpoints, reference):
    model = build_dpt("vitb_rn50_384", head="depth", dtype="float64")
    load_dpt_checkpoint(model, checkpoints["legacy"])
    for j in (0, 1):
        outs = run_stages(model, reference, j, "float64")
        assert outs["head_raw"].dtype == np.float64
        for stage in F64_STAGES:
            diff = rel_diff(outs[stage], reference[f"s{j}_{stage}_f64"].astype(np.float64))
            print(f"s{j} {stage} float64 max|d|/max|ref| = {diff:.2e}")
            assert diff < 2e-7, stage


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(1)
    return build_dpt("tiny", head="render")


def test_tiny_shapes_and_encoder_strides():
    x = np.zeros((2, 64, 96, 3), np.float32)
    for backbone in ("tiny", "tiny_hybrid"):
        outs = dpt_stage_model(build_dpt(backbone))(x)
        assert [tuple(outs[f"layer{k}_rn"].shape) for k in range(1, 5)] == [
            (2, 16, 24, 32), (2, 8, 12, 32), (2, 4, 6, 32), (2, 2, 3, 32)
        ]  # fmt: skip
        assert tuple(outs["output"].shape) == (2, 64, 96, 1)


def test_state_dict_round_trip_through_pt_file(tiny, tmp_path):
    """Keras weights -> .pt (torch layout, DPT names) -> a fresh model: identical outputs."""
    state = dpt_state_dict(tiny)
    assert state["pretrained.act_postprocess1.4.weight"].shape == (16, 16, 4, 4)  # ConvT (I,O,k,k)
    assert state["pretrained.model.blocks.0.attn.qkv.weight"].shape == (192, 64)
    assert state["pretrained.model.pos_embed"].shape == (1, 25, 64)
    path = tmp_path / "tiny.pt"
    save_torch_zip(path, state)
    keras.utils.set_random_seed(2)
    fresh = build_dpt("tiny", head="render")
    assert load_dpt_checkpoint(fresh, path) == []
    x = np.random.default_rng(0).uniform(-1, 1, (1, 64, 96, 3)).astype(np.float32)
    np.testing.assert_array_equal(tiny(x), fresh(x))


def test_checkpoint_errors_name_the_keys(tiny, tmp_path):
    state = dpt_state_dict(tiny)
    missing = dict(state)
    del missing["scratch.layer2_rn.weight"]
    with pytest.raises(
        CheckpointMismatchError, match=r"1 missing keys: scratch\.layer2_rn\.weight"
    ):
        assign_dpt_weights(tiny, missing)
    extra = dict(state, **{"pretrained.model.blocks.7.norm1.weight": np.ones(64, np.float32)})
    with pytest.raises(
        CheckpointMismatchError, match=r"unexpected keys: pretrained\.model\.blocks\.7"
    ):
        assign_dpt_weights(tiny, extra)
    wrong = dict(state, **{"scratch.output_conv.4.weight": np.ones((1, 8, 1, 1), np.float32)})
    with pytest.raises(
        CheckpointMismatchError, match=r"scratch\.output_conv\.4\.weight: file shape \(1, 8, 1, 1\)"
    ):
        assign_dpt_weights(tiny, wrong)
    with pytest.raises(FileNotFoundError, match="dpt_hybrid_nyu"):
        load_dpt_checkpoint(tiny, tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="unknown DPT config knobs"):
        dpt_config("tiny", widht=3)
    with pytest.raises(ValueError, match="backbone='vit_huge'"):
        build_dpt("vit_huge")


def test_keras_round_trip(tiny, tmp_path):
    path = tmp_path / "tiny_dpt.keras"
    tiny.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(1).uniform(-1, 1, (1, 32, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), tiny(x), atol=1e-6)


def test_bilinear_resize_conventions():
    ramp = np.arange(4, dtype=np.float64).reshape(1, 1, 4, 1)
    # half-pixel (PyTorch align_corners=False, no antialias): 4 -> 2 samples at 0.5 and 2.5
    half = bilinear_resize(ramp, (1, 2), align_corners=False)
    np.testing.assert_allclose(np.ravel(half), [0.5, 2.5])
    # 4 -> 8: source (d + 0.5) / 2 - 0.5, clamped at 0 and at the last pixel
    up = bilinear_resize(ramp, (1, 8), align_corners=False)
    np.testing.assert_allclose(np.ravel(up), [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])
    two = np.array([0.0, 3.0]).reshape(1, 2, 1, 1)
    corners = BilinearUpsample(2, align_corners=True, dtype="float64")(two)
    np.testing.assert_allclose(np.ravel(corners[:, :, 0]), [0, 1, 2, 3])


def test_std_conv_uses_timm_045_formula():
    kernel = np.arange(8, dtype=np.float64).reshape(1, 1, 8, 1)  # mean 3.5, biased std sqrt(5.25)
    conv = StdConv2D(1, 1, use_bias=False, dtype="float64")
    conv.build((1, 1, 1, 8))
    conv.kernel.assign(kernel)
    x = np.eye(8)[None, None]  # one-hot inputs read out each standardised kernel entry
    out = np.ravel(conv(x))
    np.testing.assert_allclose(out, (np.arange(8) - 3.5) / (np.sqrt(5.25) + 1e-5), rtol=1e-12)


def test_dpt_depth_sources_need_weights():
    from depth_tools.generate import MissingWeightsError, get_depth_source

    with pytest.raises(MissingWeightsError, match="dpt_hybrid_nyu-2ce69ec7.pt"):
        get_depth_source("dpt-hybrid-nyu", None)
    with pytest.raises(MissingWeightsError, match="dpt_hybrid-midas-501f0c75.pt"):
        get_depth_source("dpt-hybrid-midas", None)


def test_dpt_depth_sources_write_ebb_maps(tmp_path):
    """Tiny DPT as both sources: NYU returns metric depth 1/(0.000305 y + 0.1378); both give the
    same EBB! map (min-max removes the affine step), half size, near (large y) = bright."""
    import imageio.v3 as iio

    from depth_tools.dpt_source import dpt_depth_source
    from depth_tools.generate import generate_depth_maps

    keras.utils.set_random_seed(4)
    net = build_dpt("tiny", head="depth")
    net.get_layer("head_conv4").bias.assign(np.array([1.0], np.float32))  # y > 0 almost everywhere
    weights = tmp_path / "tiny_depth.pt"
    save_torch_zip(weights, dpt_state_dict(net))
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(5)
    small = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    iio.imwrite(photos / "a.png", np.repeat(np.repeat(small, 2, axis=0), 2, axis=1))
    rgb = (small[None] / 255.0).astype(np.float32)  # ~ what the net sees at working size 96
    y = keras.ops.convert_to_numpy(net((rgb - 0.5) / 0.5))[..., 0]
    maps = {}
    for name in ("dpt-hybrid-midas", "dpt-hybrid-nyu"):
        source = dpt_depth_source(name, weights, backbone="tiny")
        assert source.multiple == 32
        pred = source.predict(rgb)
        expected = y if name.endswith("midas") else 1.0 / (0.000305 * y + 0.1378)
        np.testing.assert_allclose(pred, expected, rtol=1e-5, atol=1e-6)
        out = tmp_path / name
        result = generate_depth_maps(
            [(photos / "a.png", out / "a.png")], source, working_long_side=96, progress=False
        )
        assert result.written == [out / "a.png"] and not result.failed
        maps[name] = iio.imread(out / "a.png")
    midas, nyu = maps["dpt-hybrid-midas"], maps["dpt-hybrid-nyu"]
    assert midas.shape == (64, 96) and midas.min() == 0 and midas.max() == 255
    assert np.abs(midas.astype(int) - nyu.astype(int)).max() <= 1
    assert np.corrcoef(midas.ravel(), y.ravel())[0, 1] > 0.9  # large inverse depth = bright
