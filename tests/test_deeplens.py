"""DeepLens port vs the original TF1 graph (fixtures/deeplens, seed-0 checkpoint), and its errors.

Tolerances are those of fixtures/deeplens/README.md.
"""

import importlib.util

import numpy as np
import pytest
import tensorflow as tf
from deeplens_weights import save_deeplens_checkpoint

from pynet_bokeh.models.deeplens import (
    DeepLensCheckpointError,
    build_deeplens,
    checkpoint_variables,
    deeplens_forward,
    deeplens_pyramid,
    load_deeplens_checkpoint,
    render_deeplens,
)


def _save(prefix, tensors):
    names = sorted(tensors)
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(tensors[n]) for n in names],
    )
    return str(prefix)


@pytest.fixture(scope="module")
def fixture(fixtures_dir):
    folder = fixtures_dir / "deeplens"
    spec = importlib.util.spec_from_file_location(
        "deeplens_make_checkpoint", folder / "make_checkpoint.py"
    )
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    return {"ref": np.load(folder / "reference_seed0.npz"), "maker": maker}


@pytest.fixture(scope="module")
def tensors(fixture):
    return fixture["maker"].tensors_for(0, extra_slots=True)


@pytest.fixture(scope="module")
def checkpoints(tensors, tmp_path_factory):
    folder = tmp_path_factory.mktemp("deeplens_ckpt")
    plain = {k: v for k, v in tensors.items() if k.startswith("Network/") and "/Adam" not in k}
    assert len(plain) == 488
    return {"plain": _save(folder / "seed0", plain), "slots": _save(folder / "slots", tensors)}


@pytest.fixture(scope="module")
def model(checkpoints):
    return load_deeplens_checkpoint(build_deeplens(), checkpoints["plain"])


def _maxdiff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ----------------------------------------------------------------------------- module by module
@pytest.mark.parametrize("i", [0, 1])
def test_depth_module(model, fixture, i):
    z = fixture["ref"]
    out = model.depth_net(z[f"image_320_{i}"])
    ref = z[f"depth_raw_{i}"]
    assert out["depth_raw"].shape == (1, 320, 320, 1)
    assert _maxdiff(out["depth_raw"], ref) <= 1e-4 * np.abs(ref).max()
    assert out["depth"].shape == z[f"depth_{i}"].shape
    assert _maxdiff(out["depth"], z[f"depth_{i}"]) <= 1e-5


@pytest.mark.parametrize("i", [0, 1])
def test_lensblur_and_feature_modules(model, fixture, i):
    z = fixture["ref"]
    kernel = model.lensblur_net([z[f"image_320_{i}"], z[f"depth_signed_{i}"]])
    features = model.feature_net(z[f"image_320_{i}"])
    assert kernel.shape[-1] == 31 and features.shape[-1] == 93
    if i == 1:
        assert _maxdiff(kernel, z["lensblur_kernel_1"]) <= 1e-5
        assert _maxdiff(features, z["lensblur_features_1"]) <= 1e-5
    assert _maxdiff(model.combine([kernel, features]), z[f"dof_320_{i}"]) <= 1e-5


@pytest.mark.parametrize(
    "i, lo, dof, signed, hi, out",
    [
        (0, "image_320", "dof_320", "depth_signed", "image_640", "640"),
        (1, "image_320", "dof_320", "depth_signed", "image_640", "640"),
        (1, "image_640", "dof_640", "depth_signed_640", "image_1280", "1280"),
    ],
)
def test_sr_module(model, fixture, i, lo, dof, signed, hi, out):
    z = fixture["ref"]
    res = model.sr_net([z[f"{lo}_{i}"], z[f"{dof}_{i}"], z[f"{signed}_{i}"], z[f"{hi}_{i}"]])
    if out == "640":
        u8 = np.floor(np.clip(z[f"dof_320_{i}"] * np.float32(255), 0, 255)).astype(np.uint8)
        np.testing.assert_array_equal(u8, z[f"dof_320_u8_{i}"])
    assert _maxdiff(res["dof_up"], z[f"sr_dof_up_{out}_{i}"]) <= 1e-6
    if (i, out) == (1, "640"):
        assert _maxdiff(res["weights"], z["sr_weights_640_1"]) <= 1e-5
    assert res["dof"].shape == z[f"dof_{out}_{i}"].shape
    assert _maxdiff(res["dof"], z[f"dof_{out}_{i}"]) <= 1e-5


# ----------------------------------------------------------------------------- end to end
def _rgb(z, key):
    return None if key not in z.files else z[key][..., ::-1]


def _end_to_end(model, z, i):
    out = deeplens_forward(
        model,
        _rgb(z, f"image_320_{i}"),
        (int(z[f"focal_x_{i}"]), int(z[f"focal_y_{i}"])),
        float(z[f"aperture_{i}"]),
        image_640=_rgb(z, f"image_640_{i}"),
        image_1280=_rgb(z, f"image_1280_{i}"),
    )
    for key in ("depth", "depth_signed"):
        assert _maxdiff(out[key], z[f"{key}_{i}"]) <= 1e-4
    assert _maxdiff(out["focal_depth"], z[f"focal_depth_{i}"]) <= 1e-4
    dof320 = out["dof_320"].numpy()[..., ::-1]  # RGB out: back to the fixture's BGR
    assert _maxdiff(dof320, z[f"dof_320_{i}"]) <= 1e-4
    u8 = np.floor(np.clip(dof320 * np.float32(255), 0, 255)).astype(np.int16)
    flips = np.abs(u8 - z[f"dof_320_u8_{i}"].astype(np.int16))
    assert flips.max() <= 1 and (flips > 0).mean() <= 1e-3
    final = "dof_640" if int(z[f"scale_{i}"]) == 2 else "dof_1280"
    diff = np.abs(out[final].numpy()[..., ::-1] - z[f"{final}_{i}"])
    assert diff.shape == z[f"{final}_{i}"].shape
    assert diff.max() <= 5e-3 and (diff <= 1e-4).mean() >= 0.99
    return out


def test_end_to_end_2x(model, fixture):
    out = _end_to_end(model, fixture["ref"], 0)
    assert set(out) == {"depth_raw", "depth", "depth_signed", "focal_depth", "dof_320", "dof_640"}


@pytest.mark.slow
def test_end_to_end_4x(model, fixture):
    _end_to_end(model, fixture["ref"], 1)


def test_checkpoint_with_optimizer_slots(model, checkpoints, fixture):
    other = load_deeplens_checkpoint(build_deeplens(), checkpoints["slots"])
    mine, theirs = checkpoint_variables(model), checkpoint_variables(other)
    assert len(mine) == 488
    for name, var in mine.items():
        np.testing.assert_array_equal(var.numpy(), theirs[name].numpy(), err_msg=name)
    # And the 4x path end to end from the slots checkpoint (odd sizes, SR used twice).
    _end_to_end(other, fixture["ref"], 1)


def test_every_variable_consumed(model, fixture):
    spec = fixture["maker"].load_spec()
    wanted = checkpoint_variables(model)
    assert sorted(wanted) == sorted(s["name"] for s in spec)
    for s in spec:
        assert list(wanted[s["name"]].shape) == s["shape"], s["name"]


def test_save_checkpoint_round_trip(model, tmp_path):
    prefix = save_deeplens_checkpoint(model, tmp_path / "copy" / "model")
    reader = tf.train.load_checkpoint(prefix)
    for name, var in checkpoint_variables(model).items():
        np.testing.assert_array_equal(reader.get_tensor(name), var.numpy(), err_msg=name)
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == [
        "model.data-00000-of-00001",
        "model.index",
    ]


# ----------------------------------------------------------------------------- errors
@pytest.fixture(scope="module")
def fresh():
    return build_deeplens()


def test_missing_checkpoint(fresh, tmp_path):
    with pytest.raises(FileNotFoundError, match="DeepLens checkpoint not found.*model_end2end"):
        load_deeplens_checkpoint(fresh, tmp_path / "nothing")


def test_missing_variable_is_named(fresh, tensors, tmp_path):
    gone = "Network/Network/SR/pre1_5/biases"
    part = {k: v for k, v in tensors.items() if k != gone}
    before = fresh.sr_net.get_layer("fea1").weights[0].numpy().copy()
    with pytest.raises(DeepLensCheckpointError, match=f"'{gone}' is missing"):
        load_deeplens_checkpoint(fresh, _save(tmp_path / "m", part))
    # Nothing is assigned from a checkpoint that does not fit.
    np.testing.assert_array_equal(fresh.sr_net.get_layer("fea1").weights[0].numpy(), before)


def test_wrong_shape_is_named(fresh, tensors, tmp_path):
    bad = dict(tensors)
    name = "Network/Network/Lensblur/output/weights"
    bad[name] = np.zeros((1, 1, 256, 30), np.float32)
    with pytest.raises(
        DeepLensCheckpointError, match=rf"'{name}'.*\[1, 1, 256, 30\].*\[1, 1, 256, 31\]"
    ):
        load_deeplens_checkpoint(fresh, _save(tmp_path / "m", bad))


def test_not_a_deeplens_checkpoint(fresh, tmp_path):
    prefix = _save(tmp_path / "m", {"generator/Variable": np.zeros(3, np.float32)})
    with pytest.raises(DeepLensCheckpointError, match="none of the 488 DeepLens variables"):
        load_deeplens_checkpoint(fresh, prefix)


def test_forward_input_errors(fresh):
    im = np.zeros((16, 20, 3), np.float32)
    depth = np.zeros((16, 20), np.float32)
    with pytest.raises(ValueError, match=r"focus_xy \[\[20, 3\]\] lies outside the 20 x 16"):
        deeplens_forward(fresh, im, (20, 3), 0.5, depth=depth)
    with pytest.raises(ValueError, match="image_320 must be an H x W x 3"):
        deeplens_forward(fresh, im[..., :2], (1, 1), 0.5, depth=depth)
    with pytest.raises(ValueError, match="image_320 height must be half of image_640"):
        deeplens_forward(fresh, im, (1, 1), 0.5, np.zeros((34, 40, 3)), depth=depth)
    with pytest.raises(ValueError, match="image_1280 needs image_640"):
        deeplens_forward(fresh, im, (1, 1), 0.5, image_1280=np.zeros((64, 80, 3)))
    with pytest.raises(ValueError, match="depth has shape"):
        deeplens_forward(fresh, im, (1, 1), 0.5, depth=depth[:8])
    with pytest.raises(ValueError, match="focus_xy .* or focus_depth"):
        deeplens_forward(fresh, im, None, 0.5, depth=depth)
    with pytest.raises(ValueError, match="outside the photo"):
        render_deeplens(fresh, im, focus_xy=(25, 2), depth=depth)


# ----------------------------------------------------------------------------- preprocessing
@pytest.mark.parametrize(
    "shape, scale, sizes",
    [
        ((100, 60), 1, [(100, 60)]),
        ((480, 641), 2, [(240, 320), (480, 641)]),
        # long side 2000 -> 1280, other side 1333 * 1280 // 2000 = 853 (not 852)
        ((1333, 2000), 4, [(213, 320), (426, 640), (853, 1280)]),
        # 1281 x 7 -> 1280 x 6 -> 640 x 3 -> 320 x 1: too thin
        ((1281, 7), 4, None),
    ],
)
def test_pyramid(shape, scale, sizes):
    photo = np.random.default_rng(0).random((*shape, 3)).astype(np.float32)
    if sizes is None:
        with pytest.raises(ValueError, match="too small for DeepLens"):
            deeplens_pyramid(photo)
        return
    capped, levels, got = deeplens_pyramid(photo)
    assert got == scale
    assert [lv.shape[:2] for lv in levels] == sizes
    assert capped.shape[:2] == sizes[-1]


def test_pyramid_even_halving_is_box_mean():
    photo = np.arange(5 * 7 * 3, dtype=np.float32).reshape(5, 7, 3) / 105.0
    photo = np.tile(photo, (130, 100, 1))[:650, :700]  # 650 x 700: scale 2
    _, (lo, hi), _ = deeplens_pyramid(photo)
    assert lo.shape == (325, 350, 3)
    # INTER_AREA on an exact 2x box is the 2x2 mean.
    np.testing.assert_allclose(lo, hi.reshape(325, 2, 350, 2, 3).mean(axis=(1, 3)), atol=1e-6)
