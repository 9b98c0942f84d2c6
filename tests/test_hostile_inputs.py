"""Issue 11: inputs a hostile or careless user gives (CMYK JPEGs, wrong-shaped depth maps,
unwritable folders, stale temporaries, bad flags). Each asserts the message names the file or
flag and that no input changed."""

import hashlib
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pynet_bokeh import image_io

# Ink blocks (C, M, Y, K) and the RGB they are: (255 - C)(255 - K) / 255 per channel.
INKS = {
    "red": ([0, 255, 255, 0], [255, 0, 0]),
    "cyan": ([255, 0, 0, 0], [0, 255, 255]),
    "gray": ([0, 0, 0, 128], [127, 127, 127]),
    "white": ([0, 0, 0, 0], [255, 255, 255]),
}


def checksums(*paths):
    """sha256 of every file under `paths` (files or folders), by path."""
    out = {}
    for root in map(Path, paths):
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _ink_image():
    inks = np.zeros((32, 16 * len(INKS), 4), np.uint8)
    for i, (ink, _) in enumerate(INKS.values()):
        inks[:, 16 * i : 16 * (i + 1)] = ink
    return inks


def _strip_app14(data):
    """The JPEG without its Adobe APP14 segment (so decoders read plain, non-inverted CMYK)."""
    out, i = bytearray(data[:2]), 2
    while data[i] == 0xFF and data[i + 1] != 0xDA:
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if data[i + 1] != 0xEE:
            out += data[i : i + 2 + length]
        i += 2 + length
    return bytes(out + data[i:])


def make_cmyk_jpeg(path, adobe=True):
    """A CMYK JPEG of the INKS blocks, by Pillow's encoder: Adobe-inverted (what Pillow and
    Photoshop write) or, without the Adobe marker, plain CMYK."""
    inks = _ink_image()
    if adobe:
        Image.fromarray(inks, "CMYK").save(path, quality=95)
    else:
        # Pillow stores 255 - ink under an Adobe marker; without the marker, those bytes are
        # read as the inks themselves: so encode 255 - ink and drop the marker.
        Image.fromarray(255 - inks, "CMYK").save(path, quality=95)
        data = Path(path).read_bytes()
        Path(path).write_bytes(_strip_app14(data))
        assert b"Adobe" not in Path(path).read_bytes()
    return path


def test_cmyk_jpeg_is_converted_to_true_colours(tmp_path):
    path = make_cmyk_jpeg(tmp_path / "cmyk.jpg")
    assert Image.open(path).mode == "CMYK"
    before = checksums(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        photo = image_io.read_photo(path)
    messages = [str(w.message) for w in caught]
    assert messages == [f"{path}: CMYK JPEG converted to RGB."]
    assert photo.shape == (32, 64, 3) and photo.dtype == np.float32
    for i, (name, (_, rgb)) in enumerate(INKS.items()):
        block = photo[8:24, 16 * i + 4 : 16 * i + 12] * 255
        np.testing.assert_allclose(block.mean(axis=(0, 1)), rgb, atol=4, err_msg=name)
    assert checksums(path) == before


def test_cmyk_jpeg_without_adobe_marker_is_refused_naming_it(tmp_path):
    """Plain or inverted inks cannot be told apart without the marker: never guess."""
    path = make_cmyk_jpeg(tmp_path / "plain.jpg", adobe=False)
    before = checksums(path)
    with pytest.raises(image_io.ImageFileError, match=r"plain\.jpg: CMYK JPEG without an Adobe"):
        image_io.read_photo(path)
    assert checksums(path) == before


def test_cmyk_jpeg_as_depth_map_is_refused_naming_it(tmp_path):
    path = make_cmyk_jpeg(tmp_path / "depth.jpg")
    with (
        pytest.warns(UserWarning),
        pytest.raises(image_io.ImageFileError, match=r"depth\.jpg.*single-channel"),
    ):
        image_io.read_depth(path)
