"""Focus and aperture semantics of DeepLens rendering, on a synthetic scene with known depth.

The released weights are not here and the fixture checkpoint is untrained (its output is noise
whatever the aperture), so these tests use `init_layered_blur`: hand-set Lensblur / Feature / SR
weights with a known answer (candidate box blurs picked by |depth_signed|). What is tested is the
port's pipeline around them: focus point -> focal depth (photo pixels -> working pixels, the 2x
SR path), aperture scaling of the signed defocus, kernel normalisation and combination, SR's
blend at full resolution, and the given-depth path (`depth=`) that skips the depth network.
"""

import numpy as np
import pytest
from deeplens_weights import init_layered_blur

from pynet_bokeh.models.deeplens import build_deeplens, render_deeplens

NEAR, FAR = 1.0, 0.6  # inverse depth (larger = nearer)


def scene(h, w, seed=0):
    """Random texture; columns < 0.6 w are near (the centre is near), the rest far."""
    rng = np.random.default_rng(seed)
    photo = rng.random((h, w, 3)).astype(np.float32)
    depth = np.full((h, w), FAR, np.float32)
    depth[:, : int(0.6 * w)] = NEAR
    return photo, depth


def regions(w, margin):
    split = int(0.6 * w)
    return {
        "near": np.s_[margin:-margin, margin : split - margin],
        "far": np.s_[margin:-margin, split + margin : -margin],
    }


def energy(img):
    return float((np.diff(img, axis=0) ** 2).mean() + (np.diff(img, axis=1) ** 2).mean())


@pytest.fixture(scope="module")
def model():
    return init_layered_blur(build_deeplens())


@pytest.mark.parametrize("shape", [(48, 96), (40, 640)])  # scale 1; scale 2 (SR path)
def test_aperture_zero_returns_the_photo(model, shape):
    photo, depth = scene(*shape)
    out, d = render_deeplens(model, photo, aperture=0.0, depth=depth)
    assert out.shape == photo.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, photo, atol=1e-6)
    assert d.shape == (
        shape[0] // (1 if shape[1] < 640 else 2),
        shape[1] // (1 if shape[1] < 640 else 2),
    )


@pytest.mark.parametrize("shape", [(48, 96), (40, 640)])
def test_focus_plane_sharp_other_plane_blurs_with_aperture(model, shape):
    photo, depth = scene(*shape)
    r = regions(shape[1], 8)
    ref = {k: energy(photo[s]) for k, s in r.items()}
    far = []
    for aperture in (0.1, 0.25, 0.5, 1.0):
        out, _ = render_deeplens(model, photo, aperture=aperture, depth=depth)  # centre: near
        np.testing.assert_allclose(out[r["near"]], photo[r["near"]], atol=1e-6)
        far.append(energy(out[r["far"]]) / ref["far"])
    # strictly less gradient energy as the aperture opens, and clearly blurred at the widest
    assert all(a > b for a, b in zip(far, far[1:], strict=False)), far
    assert far[0] < 0.9 and far[-1] < 0.05, far


def test_focus_point_and_focus_depth_choose_the_sharp_plane(model):
    photo, depth = scene(40, 640)
    r = regions(640, 8)
    by_point, _ = render_deeplens(model, photo, focus_xy=(600, 20), aperture=0.5, depth=depth)
    by_depth, _ = render_deeplens(model, photo, focus_depth=FAR, aperture=0.5, depth=depth)
    for out in (by_point, by_depth):
        np.testing.assert_allclose(out[r["far"]], photo[r["far"]], atol=1e-6)
        assert energy(out[r["near"]]) < 0.5 * energy(photo[r["near"]])
    np.testing.assert_allclose(by_point, by_depth, atol=1e-6)


def test_long_side_capped_at_1280(model):
    photo = np.random.default_rng(1).random((20, 1500, 3)).astype(np.float32)
    photo = np.repeat(photo, 2, axis=0)  # 40 x 1500 -> 34 x 1280, scale 4
    depth = np.full(photo.shape[:2], 0.5, np.float32)
    out, d = render_deeplens(model, photo, focus_xy=(1499, 39), aperture=1.0, depth=depth)
    assert out.shape == (34, 1280, 3) and d.shape == (8, 320)


def test_compiled_modules_equal_eager(model):
    from pynet_bokeh.models.deeplens import deeplens_forward

    photo, depth = scene(40, 640)
    lo = photo.reshape(20, 2, 320, 2, 3).mean(axis=(1, 3))
    d = depth[::2, ::2]
    args = dict(focus_xy=(300, 10), aperture=0.6, image_640=photo, depth=d)
    eager = deeplens_forward(model, lo, compiled=False, **args)
    graph = deeplens_forward(model, lo, compiled=True, **args)
    np.testing.assert_allclose(graph["dof_640"].numpy(), eager["dof_640"].numpy(), atol=1e-6)


def test_batched_forward_gathers_focus_per_sample(model):
    from pynet_bokeh.models.deeplens import deeplens_forward

    photo, depth = scene(48, 96)
    batch = np.stack([photo, photo[:, ::-1]])
    depths = np.stack([depth, depth[:, ::-1]])[..., None]
    out = deeplens_forward(model, batch, [(5, 5), (5, 5)], [0.5, 1.0], depth=depths)
    np.testing.assert_allclose(out["focal_depth"].numpy(), [NEAR, FAR])
    assert out["dof_320"].shape == (2, 48, 96, 3)
    # sample 0 focuses near (left), sample 1 far (its left is the mirrored far plane)
    np.testing.assert_allclose(out["dof_320"][0, :, :50].numpy(), photo[:, :50], atol=1e-6)
    np.testing.assert_allclose(out["dof_320"][1, :, :30].numpy(), batch[1, :, :30], atol=1e-6)
    single = deeplens_forward(model, batch[1], (5, 5), 1.0, depth=depths[1])
    np.testing.assert_allclose(out["dof_320"][1].numpy(), single["dof_320"].numpy(), atol=1e-6)
