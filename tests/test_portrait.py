"""Portrait mode: each mask source (file, Otsu on depth, keras-hub DeepLabV3) through the registry."""

import cv2
import imageio.v3 as iio
import numpy as np
import pytest

from pynet_bokeh import image_io
from pynet_bokeh.cli import main
from pynet_bokeh.errors import BadDataError, UsageError
from pynet_bokeh.renderers import get_renderer


def _scene():
    """A noisy photo; the depth map's near square (rows/cols 16..47) is the subject."""
    rng = np.random.default_rng(0)
    photo = rng.uniform(0, 1, (64, 96, 3)).astype(np.float32)
    depth = np.full((32, 48), 0.2, np.float32)
    depth[8:24, 8:24] = 0.9
    return photo, depth


def _write_mask(path, value):
    iio.imwrite(path, np.full((32, 48), value, np.uint8))
    return str(path)


def test_depth_otsu_keeps_the_subject_and_blurs_the_rest():
    photo, depth = _scene()
    r = get_renderer("portrait", feather=1.0)
    out = r.render(photo, depth, blur=8.0)
    assert r.mask_source == "depth"
    np.testing.assert_allclose(out[22:42, 22:42], photo[22:42, 22:42], atol=1e-4)
    background = out[:, 60:]
    assert np.abs(background - photo[:, 60:]).mean() > 0.15
    assert background.std() < 0.5 * photo[:, 60:].std()
    with pytest.raises(BadDataError, match="depth map"):
        r.render(photo)  # no depth, no mask, no segmenter


def test_mask_file_white_and_black(tmp_path):
    photo, _ = _scene()
    white = get_renderer("portrait", mask=_write_mask(tmp_path / "w.png", 255))
    np.testing.assert_array_equal(white.render(photo, blur=10.0), photo)
    black = get_renderer("portrait", mask=_write_mask(tmp_path / "b.png", 0), feather=0)
    want = cv2.GaussianBlur(photo, (0, 0), 5.0)  # sigma = K / 2, no subject to leave out
    np.testing.assert_allclose(black.render(photo, blur=10.0), want, atol=1e-5)
    disc = get_renderer("portrait", mask=str(tmp_path / "b.png"), background_blur="disc")
    assert np.abs(disc.render(photo, blur=10.0) - want).mean() > 0.005


def test_bad_options(tmp_path):
    with pytest.raises(BadDataError, match="nope.png"):
        get_renderer("portrait", mask=str(tmp_path / "nope.png"))
    with pytest.raises(UsageError, match="not both"):
        get_renderer("portrait", mask="a.png", segmenter="b")
    with pytest.raises(UsageError, match="background_blur"):
        get_renderer("portrait", background_blur="box")
    (tmp_path / "m.png").write_bytes(b"not a png")
    r = get_renderer("portrait", mask=str(tmp_path / "m.png"))
    with pytest.raises(BadDataError, match="m.png"):
        r.render(_scene()[0])
    with pytest.raises(UsageError, match="takes no --focus"):
        r.render(_scene()[0], focus=(1, 1))


@pytest.fixture(scope="module")
def deeplab_preset(tmp_path_factory):
    keras_hub = pytest.importorskip(
        "keras_hub", reason="keras-hub (the optional extra `portrait`) is not installed"
    )
    import keras

    keras.utils.set_random_seed(0)
    encoder = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16, 16],
        stackwise_num_blocks=[1, 1, 1],
        stackwise_num_strides=[1, 2, 2],
        block_type="basic_block",
        use_pre_activation=False,
    )
    backbone = keras_hub.models.DeepLabV3Backbone(
        image_encoder=encoder,
        spatial_pyramid_pooling_key="P4",
        upsampling_size=4,
        dilation_rates=[2, 4],
        low_level_feature_key="P2",
        projection_filters=8,
    )
    converter = keras_hub.layers.DeepLabV3ImageConverter(image_size=(64, 64), scale=1 / 255)
    segmenter = keras_hub.models.DeepLabV3ImageSegmenter(
        backbone=backbone,
        num_classes=21,
        activation="softmax",
        preprocessor=keras_hub.models.DeepLabV3ImageSegmenterPreprocessor(converter),
    )
    preset = tmp_path_factory.mktemp("deeplab") / "preset"
    segmenter.save_to_preset(str(preset))
    return preset, segmenter


def test_deeplab_preset_whole_path(deeplab_preset):
    preset, segmenter = deeplab_preset
    photo, _ = _scene()
    r = get_renderer("portrait", segmenter=str(preset), feather=0)
    assert r.mask_source == "segmenter"
    mask = r.subject_mask(photo, None)
    # The person channel of the saved network at its 64 x 64 input, resized to the photo.
    x = cv2.resize(photo, (64, 64), interpolation=cv2.INTER_AREA)[None] * 255.0
    person = np.asarray(segmenter.predict(x, verbose=0))[0, ..., 15]
    np.testing.assert_allclose(mask, cv2.resize(person, (96, 64)), atol=1e-5)
    assert 0.0 < mask.min() and mask.max() < 1.0
    out = r.render(photo, blur=6.0)
    assert out.shape == photo.shape and 0.0 <= out.min() and out.max() <= 1.0
    blurred = cv2.GaussianBlur(photo, (0, 0), 3.0)
    # A soft mask mixes photo and background: every pixel lies between them.
    lo, hi = np.minimum(photo, blurred) - 0.05, np.maximum(photo, blurred) + 0.05
    assert ((out >= lo) & (out <= hi)).mean() > 0.95
    with pytest.raises(UsageError, match="person_class"):
        get_renderer("portrait", segmenter=str(preset), person_class=40).render(photo)


def test_segmenter_folder_without_preset(tmp_path):
    with pytest.raises(UsageError, match="preset"):
        get_renderer("portrait", segmenter=str(tmp_path))


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    (root / "original").mkdir()
    (root / "original_depth").mkdir()
    photo, depth = _scene()
    image_io.write_image(root / "original" / "a.png", photo)
    image_io.write_image(root / "original_depth" / "a.png", depth)
    return root


def _render_command(photo_dir, out, *extra):
    argv = ["render", str(photo_dir / "original"), "--method", "portrait"]
    assert main([*argv, "--output_dir", str(out), "--blur", "8", *extra]) == 0
    return image_io.read_photo(out / "a.png")


def test_render_command_depth_and_mask_sources(photo_dir, tmp_path):
    photo = image_io.read_photo(photo_dir / "original" / "a.png")
    by_depth = _render_command(photo_dir, tmp_path / "depth", "--feather", "1")
    np.testing.assert_allclose(by_depth[22:42, 22:42], photo[22:42, 22:42], atol=2 / 255)
    assert np.abs(by_depth[:, 60:] - photo[:, 60:]).mean() > 0.15
    mask = _write_mask(tmp_path / "all.png", 255)
    by_mask = _render_command(photo_dir, tmp_path / "mask", "--mask", mask)
    np.testing.assert_allclose(by_mask, photo, atol=1 / 255)  # all subject: the photo
    argv = ["render", str(photo_dir / "original"), "--method", "classical", "--mask", mask]
    assert main([*argv, "--output_dir", str(tmp_path / "x")]) == 2


@pytest.mark.slow  # a second DeepLabV3 load and trace; the path is covered above
def test_render_command_segmenter_source(photo_dir, deeplab_preset, tmp_path):
    preset, _ = deeplab_preset
    out = _render_command(photo_dir, tmp_path / "seg", "--segmenter", str(preset))
    direct = get_renderer("portrait", segmenter=str(preset)).render(
        image_io.read_photo(photo_dir / "original" / "a.png"), blur=8.0
    )
    np.testing.assert_allclose(out, direct, atol=1 / 255)
