"""What the demo accepts from a browser: size-checked image uploads, and its own temp files.

An upload is checked from its header before any pixel is decoded, so a decompression bomb (a
small PNG that decodes to gigapixels) or a 30,000-px photo gets a one-line message instead of
exhausting memory. The demo's outputs (full-size renders for download) go to one temporary
folder that is pruned as it goes and removed when the demo closes.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from pynet_bokeh import image_io
from pynet_bokeh.errors import BadDataError

#: Largest photo the demo decodes: 40 megapixels, 12,000 px a side (a 36 MP DSLR fits).
MAX_PIXELS = 40_000_000
MAX_SIDE = 12_000
#: Largest upload in bytes (passed to Gradio's launch as max_file_size too).
MAX_FILE_BYTES = 60 * 1024 * 1024


def image_size(path, what="photo"):
    """(width, height) of an image file read from its header only; BadDataError naming `what`
    when it is not an image or is larger than MAX_PIXELS / MAX_SIDE."""
    from PIL import Image

    path = os.fspath(path)
    name = os.path.basename(path)
    if os.path.getsize(path) > MAX_FILE_BYTES:
        raise BadDataError(
            f"{what} {name}: {os.path.getsize(path) / 2**20:.0f} MB, more than the demo's "
            f"{MAX_FILE_BYTES // 2**20} MB: downscale or recompress it"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:  # reads the header only
                width, height = im.size
    except Image.DecompressionBombError:
        raise BadDataError(
            f"{what} {name} decodes to more than {Image.MAX_IMAGE_PIXELS * 2 / 1e6:.0f} MP (a "
            f"decompression bomb or a huge image); the demo takes up to {MAX_PIXELS / 1e6:.0f} "
            f"MP and {MAX_SIDE} px a side"
        ) from None
    except (OSError, ValueError) as err:
        raise BadDataError(f"{what} {name}: not a readable JPEG/PNG image ({err})") from None
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise BadDataError(
            f"{what} {name} is {width} x {height} pixels ({width * height / 1e6:.0f} MP); the "
            f"demo takes up to {MAX_PIXELS / 1e6:.0f} MP and {MAX_SIDE} px a side: downscale it"
        )
    return width, height


def read_photo_upload(path):
    """The uploaded photo as H x W x 3 float32 in [0, 1], size-checked before decoding."""
    image_size(path, "photo")
    try:
        return image_io.read_photo(path)
    except image_io.ImageFileError as err:
        raise BadDataError(f"photo: {err}") from None


def read_depth_upload(path):
    """The uploaded depth map as H x W float32 in [0, 1] (near = bright). 8-bit grayscale is
    read as is; colour or 16-bit maps are converted (mean of RGB, scaled to [0, 1])."""
    image_size(path, "depth map")
    import imageio.v3 as iio

    try:
        image = iio.imread(path)
    except Exception as err:  # imageio raises many types; the message is what matters
        raise BadDataError(f"depth map: cannot decode {os.path.basename(path)} ({err})") from None
    if image.ndim == 3:
        image = image[..., :3].mean(axis=2) if image.shape[2] >= 3 else image[..., 0]
        image = image.astype(np.float32) / (65535.0 if image.max() > 255 else 255.0)
        return np.clip(image, 0.0, 1.0)
    return image_io.to_float01(image, "depth map")


class TempFiles:
    """One temporary folder for the demo's outputs: files older than `max_age_s` are removed
    whenever a new one is made, and the folder itself on `close()` (or at exit)."""

    def __init__(self, max_age_s=3600.0, prefix="pynet_bokeh_demo_"):
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.max_age_s = max_age_s
        atexit.register(self.close)

    def new_path(self, name):
        """A fresh path in the folder ending in `name` (e.g. 'bokeh.png')."""
        self.prune()
        fd, path = tempfile.mkstemp(prefix="", suffix=f"_{name}", dir=self.root)
        os.close(fd)
        return Path(path)

    def prune(self, now=None):
        """Removes files older than max_age_s; returns how many."""
        now = time.time() if now is None else now
        removed = 0
        for path in self.root.glob("*"):
            try:
                if now - path.stat().st_mtime > self.max_age_s:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed

    def close(self):
        shutil.rmtree(self.root, ignore_errors=True)
