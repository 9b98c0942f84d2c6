"""image_io and inference: reading/validation, EBB! input, reflection padding, full-size render."""

import os
import warnings

import imageio.v3 as iio
import numpy as np
import pytest

from pynet_bokeh import build_pynet, image_io
from pynet_bokeh.errors import UsageError
from pynet_bokeh.inference import (
    DepthMapMissingError,
    find_depth_map,
    predict_padded,
    render_bokeh,
)


@pytest.fixture(scope="module")
def model():
    return build_pynet()


def _photo(h, w, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def test_read_photo_conversions(tmp_path):
    rgb = _photo(10, 12)
    iio.imwrite(tmp_path / "rgb.png", rgb)
    np.testing.assert_allclose(image_io.read_photo(tmp_path / "rgb.png"), rgb / 255.0, atol=1e-7)
    iio.imwrite(tmp_path / "gray.png", rgb[..., 0])
    with pytest.warns(UserWarning, match="grayscale"):
        gray = image_io.read_photo(tmp_path / "gray.png")
    assert gray.shape == (10, 12, 3)
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
    rgba = np.concatenate([rgb, np.full((10, 12, 1), 7, np.uint8)], axis=2)
    iio.imwrite(tmp_path / "rgba.png", rgba)
    with pytest.warns(UserWarning, match="alpha"):
        np.testing.assert_allclose(image_io.read_photo(tmp_path / "rgba.png"), rgb / 255.0)


def test_bad_files_are_named(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(image_io.ImageFileError, match="empty.jpg: empty file"):
        image_io.read_photo(tmp_path / "empty.jpg")
    iio.imwrite(tmp_path / "ok.jpg", _photo(64, 64))
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(image_io.ImageFileError, match="cut.jpg: cannot decode"):
        image_io.read_photo(tmp_path / "cut.jpg")
    iio.imwrite(tmp_path / "d16.png", np.zeros((8, 8), np.uint16))
    with pytest.raises(image_io.ImageFileError, match="d16.png: depth map is uint16"):
        image_io.read_depth(tmp_path / "d16.png")
    iio.imwrite(tmp_path / "drgb.png", _photo(8, 8))
    with pytest.raises(image_io.ImageFileError, match="drgb.png: depth map has shape"):
        image_io.read_depth(tmp_path / "drgb.png")


def test_ebb_input_and_depth_resize(monkeypatch):
    monkeypatch.setattr(image_io, "_resize_said", False)  # said once per process
    photo = np.random.default_rng(0).random((64, 96, 3)).astype(np.float32)
    depth = np.linspace(0, 1, 32 * 48, dtype=np.float32).reshape(32, 48)
    x = image_io.ebb_input(photo, depth)
    assert x.shape == (32, 48, 4)
    np.testing.assert_array_equal(x[..., 3], depth)
    # A constant photo stays constant after the bicubic downscale.
    flat = image_io.ebb_input(np.full((64, 96, 3), 0.25, np.float32), depth)
    np.testing.assert_allclose(flat[..., :3], 0.25, atol=1e-6)
    with pytest.warns(UserWarning, match="not half the photo"):
        assert image_io.ebb_input(photo, depth[:31]).shape == (32, 48, 4)


def test_pad_to_multiple_reflects():
    x = np.arange(5 * 7, dtype=np.float32).reshape(1, 5, 7, 1)
    padded, pad = image_io.pad_to_multiple(x, 4)
    assert pad == (3, 1) and padded.shape == (1, 8, 8, 1)
    np.testing.assert_array_equal(padded[0, 5, :7, 0], x[0, 3, :, 0])  # reflection, not edge
    np.testing.assert_array_equal(padded[0, :5, 7, 0], x[0, :, 5, 0])
    same, pad = image_io.pad_to_multiple(np.zeros((32, 64, 3)), 32)
    assert pad == (0, 0) and same.shape == (32, 64, 3)


def test_predict_padded_crops_back():
    x = np.random.default_rng(0).random((45, 70, 4)).astype(np.float32)

    def upsample(batch):  # nearest x2 of the first three channels
        assert batch.shape[1] % 32 == 0 and batch.shape[2] % 32 == 0
        return np.repeat(np.repeat(batch[..., :3], 2, axis=1), 2, axis=2)

    y = predict_padded(upsample, x, 2.0)
    assert y.shape == (90, 140, 3)
    np.testing.assert_array_equal(y[::2, ::2], x[..., :3])


def test_write_image_atomic(tmp_path):
    img = np.random.default_rng(0).random((6, 5, 3)).astype(np.float32)
    image_io.write_image(tmp_path / "a.png", img)
    back = iio.imread(tmp_path / "a.png")
    np.testing.assert_array_equal(back, np.round(img * 255).astype(np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temp files left
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


@pytest.mark.slow  # heavy: the default suite keeps under 15 min on 2 cores
def test_render_real_photo_full_size(model, ebb_samples):
    photo = image_io.read_photo(ebb_samples / "images" / "1.jpg")
    depth = image_io.read_depth(ebb_samples / "depth_maps" / "1.png")
    out = render_bokeh(model, photo[:256, :416], depth[:128, :208], level=1)
    assert out.shape == (256, 416, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    coarse = render_bokeh(model, photo, depth, level=7)
    assert coarse.shape == photo.shape  # 1024 x 1600: 800 is not a multiple of 32


def test_render_files_odd_width(model, tmp_path):
    """A photo whose width is no multiple of 32 comes back at its exact size; inputs untouched."""
    from pynet_bokeh.cli.render import render_files
    from pynet_bokeh.renderers.pynet import PyNetRenderer

    level2 = PyNetRenderer(model=model, level=2)
    photos = tmp_path / "original"
    depths = tmp_path / "original_depth"
    photos.mkdir()
    depths.mkdir()
    iio.imwrite(photos / "a.jpg", _photo(100, 150))
    iio.imwrite(
        depths / "a.png", (np.random.default_rng(1).random((50, 75)) * 255).astype(np.uint8)
    )
    iio.imwrite(photos / "b.jpg", _photo(64, 64, seed=2))  # no depth map: reported, others go on
    before = (photos / "a.jpg").read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        written, failures = render_files(level2, [photos], tmp_path / "out")
    assert [p.name for p in written] == ["a.png"]
    assert iio.imread(tmp_path / "out" / "a.png").shape == (100, 150, 3)
    assert len(failures) == 1 and "b.jpg" in str(failures[0][0])
    assert "depth-tools-generate" in failures[0][1]
    assert (photos / "a.jpg").read_bytes() == before
    # Rerun: the existing output is skipped, not redone.
    written, _ = render_files(level2, [photos / "a.jpg"], tmp_path / "out")
    assert written == []
    # An input folder as the output folder is refused before anything is rendered.
    iio.imwrite(photos / "c.png", _photo(64, 64))
    iio.imwrite(depths / "c.png", np.zeros((32, 32), np.uint8))
    level7 = PyNetRenderer(model=model, level=7)
    for folder in (photos, depths):
        with pytest.raises(UsageError, match=f"--output_dir {folder} is an input folder"):
            render_files(level7, [photos / "c.png"], folder, suffix=".png")


def test_find_depth_map_message(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"")
    with pytest.raises(DepthMapMissingError, match="depth-tools-generate"):
        find_depth_map(tmp_path / "x.jpg")
    (tmp_path / "depth").mkdir()
    (tmp_path / "depth" / "x.png").write_bytes(b"")
    assert find_depth_map(tmp_path / "x.jpg", tmp_path / "depth") == tmp_path / "depth" / "x.png"


def test_cli_render_requires_weights(tmp_path, capsys):
    from pynet_bokeh.cli import main

    assert main(["render", str(tmp_path), "--output_dir", str(tmp_path / "o")]) == 2
    assert "error: --method pynet needs --weights" in capsys.readouterr().err


@pytest.mark.parametrize("size", [(30, 45), (20, 30), (45, 67), (120, 180)])
def test_resize_bicubic_equals_pil(size):
    """image_io.resize_bicubic is PIL's bicubic (antialiased when shrinking), float to float."""
    from PIL import Image

    img = np.random.default_rng(0).random((60, 90, 3)).astype(np.float32)
    ours = image_io.resize_bicubic(img, size)
    pil = np.stack(
        [
            np.asarray(Image.fromarray(img[..., c], mode="F").resize(size[::-1], Image.BICUBIC))
            for c in range(3)
        ],
        axis=-1,
    )
    assert ours.shape == (*size, 3)
    assert np.abs(ours - pil).max() < 1e-5
    if size[0] < 60:  # shrinking without antialiasing (a plausible slip) is far from PIL
        import tensorflow as tf

        plain = tf.image.resize(img, size, method="bicubic", antialias=False).numpy()
        assert np.abs(plain - pil).max() > 1e-2
