"""pynet_bokeh.data.ebb: pairing by stem, validation errors, tf.data shapes, alignment, augmentation."""

import logging
import re
import shutil

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

from pynet_bokeh import image_io
from pynet_bokeh.data import ebb, synthetic

PATCH = 32
SIZE = (128, 192)  # full-resolution photo; the input is 64 x 96


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return synthetic.generate_dataset(tmp_path_factory.mktemp("synth"), 4, 1, size=SIZE, seed=3)


def _write_pair(split_dir, stem, photo, depth, bokeh=None):
    image_io.write_image(split_dir / "original" / f"{stem}.jpg", photo)
    image_io.write_image(split_dir / "original_depth" / f"{stem}.png", depth)
    image_io.write_image(split_dir / "bokeh" / f"{stem}.jpg", photo if bokeh is None else bokeh)


def _random_photo(rng, h, w):
    # Smooth enough for JPEG, textured enough that a one-pixel shift shows.
    small = rng.random((h // 4, w // 4, 3)).astype(np.float32)
    return np.clip(image_io.resize_bicubic(small, (h, w)), 0, 1)


@pytest.fixture(scope="module")
def mirror_root(tmp_path_factory):
    """bokeh = the photo itself, depth = the half-size photo's gray: alignment is checkable."""
    root = tmp_path_factory.mktemp("mirror")
    rng = np.random.default_rng(0)
    for stem in range(3):
        photo = _random_photo(rng, *SIZE)
        depth = image_io.resize_bicubic(photo, (SIZE[0] // 2, SIZE[1] // 2)).mean(axis=-1)
        _write_pair(root / "train", stem, photo, depth)
    return root


# ------------------------------------------------------------------------------ pairing


def test_pairs_are_matched_by_stem_not_listing_order(tmp_path):
    rng = np.random.default_rng(1)
    split = tmp_path / "train"
    for stem in ("1", "2", "10", "11"):
        photo = _random_photo(rng, 64, 64)
        _write_pair(split, stem, photo, photo[::2, ::2, 0])
    # Stem "2" has no depth map: pairing by order would shift every later depth map by one.
    (split / "original_depth" / "2.png").unlink()
    (split / "original_depth" / "7.png").write_bytes(b"")  # depth map without a photo

    pairs = ebb.find_pairs(tmp_path, "train")
    assert [p.stem for p in pairs] == ["1", "2", "7", "10", "11"]  # natural order
    for p in pairs:
        for path in (p.photo, p.depth, p.bokeh):
            assert path is None or path.stem == p.stem
    by_stem = {p.stem: p for p in pairs}
    assert by_stem["2"].depth is None and by_stem["2"].photo.name == "2.jpg"
    assert by_stem["7"].photo is None and by_stem["7"].depth.name == "7.png"
    assert by_stem["10"].depth.name == "10.png"


def test_find_pairs_names_the_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"test.*EBB! layout"):
        ebb.find_pairs(tmp_path, "test")


# --------------------------------------------------------------------------- validation


@pytest.fixture(scope="module")
def bad_root(tmp_path_factory):
    """One good pair and one pair for each kind of bad file."""
    root = tmp_path_factory.mktemp("bad")
    split = root / "train"
    rng = np.random.default_rng(2)
    h, w = 64, 96
    for stem in ("good", "trunc", "nodepth", "smalldepth", "rgba", "deep", "empty"):
        photo = _random_photo(rng, h, w)
        _write_pair(split, stem, photo, photo[::2, ::2, 0])
    data = (split / "original" / "trunc.jpg").read_bytes()
    (split / "original" / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (split / "original_depth" / "nodepth.png").unlink()
    image_io.write_image(split / "original_depth" / "smalldepth.png", np.zeros((16, 24)))
    rgba = np.full((h // 2, w // 2, 4), 128, np.uint8)
    iio.imwrite(split / "original_depth" / "rgba.png", rgba)
    iio.imwrite(split / "original_depth" / "deep.png", np.full((h // 2, w // 2), 4000, np.uint16))
    (split / "bokeh" / "empty.jpg").write_bytes(b"")
    return root


EXPECTED_PROBLEMS = {
    "original/trunc.jpg": r"truncated or corrupt",
    "original_depth/nodepth.png": r"missing depth map",
    "original_depth/smalldepth.png": r"depth map is 16x24 \(HxW\); expected half the photo's size 32x48",
    "original_depth/rgba.png": r"8-bit RGBA PNG.*8-bit single-channel",
    "original_depth/deep.png": r"16-bit grayscale PNG.*8-bit single-channel",
    "bokeh/empty.jpg": r"empty file \(0 bytes\)",
}


def test_validation_reports_every_bad_file_with_its_path(bad_root):
    pairs = ebb.find_pairs(bad_root, "train")
    with pytest.raises(ebb.EbbValidationError, match=r"6 of 7 pairs have problems") as info:
        ebb.validate_pairs(pairs)
    message = str(info.value)
    assert "--skip_bad" in message and "other 1 pairs" in message
    problems = {str(path): what for path, what in info.value.problems}
    assert len(problems) == len(EXPECTED_PROBLEMS)
    for suffix, pattern in EXPECTED_PROBLEMS.items():
        path = str(bad_root / "train" / suffix)
        assert path in problems, f"{suffix} not reported"
        assert re.search(pattern, problems[path]), (suffix, problems[path])
        assert re.search(re.escape(path) + r": .*" + pattern, message), suffix


@pytest.mark.parametrize("suffix", sorted(EXPECTED_PROBLEMS))
def test_each_bad_file_alone_raises_naming_it(bad_root, suffix):
    stem = suffix.split("/")[-1].split(".")[0]
    pairs = [p for p in ebb.find_pairs(bad_root, "train") if p.stem == stem]
    path = bad_root / "train" / suffix
    with pytest.raises(
        ebb.EbbValidationError, match=re.escape(str(path)) + ": .*" + EXPECTED_PROBLEMS[suffix]
    ):
        ebb.validate_pairs(pairs)


def test_skip_bad_keeps_the_rest_and_says_how_many(bad_root, caplog):
    with caplog.at_level(logging.WARNING):
        good = ebb.validate_pairs(ebb.find_pairs(bad_root, "train"), skip_bad=True)
    assert [p.stem for p in good] == ["good"]
    assert good[0].photo_size == (64, 96)
    assert "Skipping 6 of 7 pairs" in caplog.text and "on the other 1" in caplog.text


def test_rgba_photo_and_duplicate_stem_are_reported(tmp_path):
    split = tmp_path / "train"
    photo = _random_photo(np.random.default_rng(3), 64, 64)
    _write_pair(split, "a", photo, photo[::2, ::2, 0])
    rgba = np.concatenate([photo, np.ones_like(photo[..., :1])], axis=-1)
    iio.imwrite(split / "original" / "a.png", (rgba * 255).astype(np.uint8))
    _write_pair(split, "b", photo, photo[::2, ::2, 0])
    (split / "original" / "b.jpg").unlink()
    iio.imwrite(split / "original" / "b.png", (rgba * 255).astype(np.uint8))
    with pytest.raises(ebb.EbbValidationError) as info:
        ebb.validate_pairs(ebb.find_pairs(tmp_path, "train"))
    problems = {path.name: what for path, what in info.value.problems}
    assert "same stem 'a'" in problems["a.png"]
    assert "alpha channel (RGBA)" in problems["b.png"]


def test_depth_off_by_rounding_is_resized_with_a_warning(tmp_path):
    rng = np.random.default_rng(4)
    photo = _random_photo(rng, 128, 192)
    depth = np.tile(np.linspace(0, 1, 97, dtype=np.float32), (65, 1))  # 65 x 97, not 64 x 96
    _write_pair(tmp_path / "train", "0", photo, depth)
    with pytest.warns(UserWarning, match=r"off by rounding.*0\.png: 65x97, expected 64x96"):
        pairs = ebb.validate_pairs(ebb.find_pairs(tmp_path, "train"))
    x, y = next(iter(ebb.ebb_eval_dataset(tmp_path, "train", pairs=pairs)))
    assert x.shape == (1, 64, 96, 4) and y.shape == (1, 128, 192, 3)
    expected = image_io.resize_bicubic(np.round(depth * 255) / 255, (64, 96))
    np.testing.assert_allclose(x[0, ..., 3], np.clip(expected, 0, 1), atol=1e-5)


# ------------------------------------------------------------------------------ tf.data


@pytest.mark.parametrize("level", [1, 2, 3, 5, 7])
def test_batch_shapes_per_level(synth_root, level):
    ds = ebb.ebb_dataset(synth_root, level=level, patch_size=PATCH, batch_size=3, seed=0)
    t = 2 * PATCH // 2 ** (level - 1)
    assert ds.element_spec[0].shape.as_list() == [3, PATCH, PATCH, 4]
    assert ds.element_spec[1].shape.as_list() == [3, t, t, 3]
    for x, y in ds.take(2):
        assert x.shape == (3, PATCH, PATCH, 4) and y.shape == (3, t, t, 3)
        assert x.dtype == tf.float32 and y.dtype == tf.float32
        assert 0.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
        assert 0.0 <= float(tf.reduce_min(y)) and float(tf.reduce_max(y)) <= 1.0


def test_bad_arguments_name_the_flag(synth_root):
    with pytest.raises(ValueError, match="patch_size must be a positive multiple of 32"):
        ebb.ebb_dataset(synth_root, patch_size=48)
    with pytest.raises(ValueError, match="level must be 1..7"):
        ebb.ebb_dataset(synth_root, level=8, patch_size=32)
    with pytest.raises(ValueError, match=r"0\.jpg: 128x192 gives a 64x96 input.*--patch_size"):
        ebb.ebb_dataset(synth_root, patch_size=96)


def _dihedral(a, k, flip):
    a = np.rot90(a, k, axes=(0, 1))
    return a[:, ::-1] if flip else a


def _locate(patch, image):
    """(y, x) where `patch` sits in `image` (best match)."""
    p = patch.shape[0]
    best, where = np.inf, None
    for y in range(image.shape[0] - p + 1):
        for x in range(image.shape[1] - p + 1):
            err = np.abs(image[y : y + p, x : x + p] - patch).max()
            if err < best:
                best, where = err, (y, x)
    return where, best


def test_crop_is_aligned_with_the_full_resolution_target(mirror_root):
    pairs = ebb.validate_pairs(ebb.find_pairs(mirror_root, "train"))
    ds = ebb.ebb_dataset(
        None, level=1, patch_size=PATCH, batch_size=1, augment=False, seed=5, pairs=pairs
    )
    decoded = {
        p.stem: tf.image.convert_image_dtype(
            tf.io.decode_jpeg(tf.io.read_file(str(p.photo)), dct_method="INTEGER_ACCURATE"),
            tf.float32,
        ).numpy()
        for p in pairs
    }
    halves = {s: np.clip(image_io.resize_bicubic(ph, (64, 96)), 0, 1) for s, ph in decoded.items()}
    seen = set()
    for x, y in ds.take(6):
        x, y = x[0].numpy(), y[0].numpy()
        # The input patch is exactly a window of the downscaled photo (as image_io.ebb_input).
        matches = [(s, *_locate(x[..., :3], half)) for s, half in halves.items()]
        stem, (cy, cx), err = min(matches, key=lambda m: m[2])
        assert err < 1e-5
        seen.add((stem, cy, cx))
        # The target is the full-resolution window at twice the offset (bokeh = photo here).
        np.testing.assert_allclose(
            y, decoded[stem][2 * cy : 2 * cy + 64, 2 * cx : 2 * cx + 64], atol=1e-6
        )
        # The depth channel is cropped at the same place.
        depth = image_io.read_depth(mirror_root / "train" / "original_depth" / f"{stem}.png")
        np.testing.assert_allclose(x[..., 3], depth[cy : cy + PATCH, cx : cx + PATCH], atol=1e-6)
        # And the upsampled input agrees with the target up to the lost detail.
        up = image_io.resize_bicubic(x[..., :3], (64, 64))
        assert np.abs(up - y).mean() < 0.02
    assert len(seen) >= 4  # the crops do move


def test_training_input_matches_inference_preprocessing(mirror_root):
    pair = ebb.validate_pairs(ebb.find_pairs(mirror_root, "train"))[0]
    x, y = next(iter(ebb.ebb_eval_dataset(None, pairs=[pair], level=2)))
    ref = image_io.ebb_input(image_io.read_photo(pair.photo), image_io.read_depth(pair.depth))
    # Same decoder output, resize and depth: training sees what inference feeds the model.
    np.testing.assert_allclose(x[0].numpy(), ref, atol=1e-5)
    assert y.shape == (1, 64, 96, 3)  # level 2: the input's size


def test_rotation_and_flip_are_applied_jointly(mirror_root):
    kwargs = dict(level=2, patch_size=PATCH, batch_size=1, seed=11)
    plain = ebb.ebb_dataset(mirror_root, augment=False, **kwargs)
    aug = ebb.ebb_dataset(mirror_root, augment=True, **kwargs)
    used = set()
    for (x0, y0), (x1, y1) in zip(plain.take(16), aug.take(16), strict=True):
        x0, y0, x1, y1 = (a[0].numpy() for a in (x0, y0, x1, y1))
        found = [
            (k, f) for k in range(4) for f in (False, True) if np.allclose(_dihedral(x0, k, f), x1)
        ]
        assert found, "augmented input is not a rotation/flip of the plain crop"
        k, f = found[0]
        np.testing.assert_allclose(_dihedral(y0, k, f), y1, atol=1e-6)
        used.add((k, f))
    assert len(used) >= 4


def test_seed_makes_the_stream_reproducible_and_skip_batches_resumes(synth_root):
    kwargs = dict(level=3, patch_size=PATCH, batch_size=2)
    a = [x.numpy() for x, _ in ebb.ebb_dataset(synth_root, seed=7, **kwargs).take(5)]
    b = [x.numpy() for x, _ in ebb.ebb_dataset(synth_root, seed=7, **kwargs).take(5)]
    c = [x.numpy() for x, _ in ebb.ebb_dataset(synth_root, seed=8, **kwargs).take(5)]
    resumed = next(iter(ebb.ebb_dataset(synth_root, seed=7, skip_batches=3, **kwargs)))[0]
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert any(not np.array_equal(u, v) for u, v in zip(a, c, strict=True))
    np.testing.assert_array_equal(resumed.numpy(), a[3])


def test_one_pass_without_repeat_visits_every_pair_once(synth_root):
    ds = ebb.ebb_dataset(
        synth_root, level=7, patch_size=PATCH, batch_size=1, repeat=False, augment=False, seed=0
    )
    assert sum(1 for _ in ds) == 4


def test_eval_dataset_gives_whole_images_cropped_to_32(tmp_path, synth_root):
    shutil.copytree(synth_root / "test", tmp_path / "test")
    x, y = next(iter(ebb.ebb_eval_dataset(tmp_path, level=3)))
    assert x.shape == (1, 64, 96, 4) and y.shape == (1, 32, 48, 3)


def test_odd_sized_photo_matches_inference_preprocessing(tmp_path):
    photo = _random_photo(np.random.default_rng(6), 132, 196)[:129, :193]  # 129 x 193
    depth = image_io.resize_bicubic(photo, image_io.half_size(photo.shape)).mean(axis=-1)
    _write_pair(tmp_path / "train", "odd", photo, depth)
    pairs = ebb.validate_pairs(ebb.find_pairs(tmp_path, "train"))
    x, y = next(iter(ebb.ebb_eval_dataset(None, pairs=pairs, level=1)))
    ref = image_io.ebb_input(
        image_io.read_photo(pairs[0].photo), image_io.read_depth(pairs[0].depth)
    )
    assert ref.shape == (64, 96, 4) and x.shape == (1, 64, 96, 4) and y.shape == (1, 128, 192, 3)
    np.testing.assert_allclose(x[0].numpy(), ref, atol=1e-5)
    bokeh = image_io.read_photo(pairs[0].bokeh)
    np.testing.assert_allclose(y[0].numpy(), bokeh[:128, :192], atol=1e-6)


def test_validation_cache_skips_unchanged_files_and_rechecks_changed_ones(
    tmp_path, synth_root, monkeypatch
):
    root = tmp_path / "set"
    shutil.copytree(synth_root / "train", root / "train")
    cache = tmp_path / "model" / "ebb_validation.json"
    first = ebb.validate_pairs(ebb.find_pairs(root, "train"), cache=cache)
    assert cache.exists() and len(first) == 4

    def no_decoding(path, kind):
        raise AssertionError(f"{path} decoded again")

    monkeypatch.setattr(ebb, "_check_image", no_decoding)
    again = ebb.validate_pairs(ebb.find_pairs(root, "train"), cache=cache)
    assert again == first
    monkeypatch.undo()
    photo = root / "train" / "original" / "2.jpg"
    photo.write_bytes(photo.read_bytes()[:500])  # truncated after it was cached
    with pytest.raises(ebb.EbbValidationError, match=re.escape(str(photo)) + ": .*truncated"):
        ebb.validate_pairs(ebb.find_pairs(root, "train"), cache=cache)
