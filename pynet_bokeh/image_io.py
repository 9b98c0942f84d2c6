"""Reading, validating, resizing, padding and writing images in the EBB! conventions.

Photos are float32 H x W x 3 RGB in [0, 1]; EBB! depth maps are 8-bit single-channel PNGs at half
the photo's size (MegaDepth inverse depth, min-max normalised, near = bright), read as H x W
float32 in [0, 1].
"""

import os
import warnings

import imageio.v3 as iio
import numpy as np
import tensorflow as tf

from pynet_bokeh.errors import BadDataError
from pynet_bokeh.files import atomic_path


class ImageFileError(BadDataError):
    """An image file is missing, unreadable, truncated or in the wrong format."""


def _read(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageFileError(f"{path}: file not found.")
    if os.path.getsize(path) == 0:
        raise ImageFileError(f"{path}: empty file (0 bytes); re-copy or regenerate it.")
    try:
        return iio.imread(path)
    except Exception as err:  # imageio raises many types; the message is what matters
        raise ImageFileError(
            f"{path}: cannot decode the image ({type(err).__name__}: {err}); the file is "
            "truncated or not a JPEG/PNG image: re-copy or regenerate it."
        ) from err


def to_float01(image, path="image"):
    """uint8 / uint16 / float arrays to float32 in [0, 1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(image.astype(np.float32), 0.0, 1.0)
    raise ImageFileError(f"{path}: unsupported pixel type {image.dtype}.")


def read_photo(path):
    """Reads a JPEG/PNG photo as float32 H x W x 3 RGB in [0, 1].

    Grayscale is replicated to RGB and RGBA drops its alpha, each with a warning; 16-bit PNGs
    are scaled to [0, 1] with a warning.
    """
    image = _read(path)
    if image.dtype != np.uint8:
        warnings.warn(
            f"{path}: {image.dtype} photo, expected 8-bit; scaled to [0, 1].", stacklevel=2
        )
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        warnings.warn(f"{path}: grayscale photo converted to RGB.", stacklevel=2)
        image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        warnings.warn(f"{path}: RGBA photo, alpha channel dropped.", stacklevel=2)
        image = image[..., :3]
    elif image.ndim != 3 or image.shape[2] != 3:
        raise ImageFileError(f"{path}: expected an RGB photo, got array of shape {image.shape}.")
    return to_float01(image, path)


def read_depth(path):
    """Reads an EBB! depth map (8-bit single-channel PNG) as float32 H x W in [0, 1]."""
    image = _read(path)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim != 2:
        raise ImageFileError(
            f"{path}: depth map has shape {image.shape}; EBB! depth maps are 8-bit single-channel "
            "(grayscale) PNGs. Convert it to grayscale or regenerate it with depth-tools-generate."
        )
    if image.dtype != np.uint8:
        raise ImageFileError(
            f"{path}: depth map is {image.dtype}; EBB! depth maps are 8-bit (0..255, near = "
            "bright). Rescale it to 8-bit or regenerate it with depth-tools-generate."
        )
    return image.astype(np.float32) / 255.0


def resize_bicubic(image, size):
    """Bicubic resize (antialiased when shrinking, like PIL's) of H x W [x C] to `size`=(h, w)."""
    image = np.asarray(image, dtype=np.float32)
    squeeze = image.ndim == 2
    if squeeze:
        image = image[..., None]
    if tuple(image.shape[:2]) == tuple(size):
        out = image
    else:
        out = tf.image.resize(image, size, method="bicubic", antialias=True).numpy()
    return out[..., 0] if squeeze else out


def half_size(shape):
    """EBB! input size for a photo of `shape` (H, W, ...): half, rounded."""
    return int(round(shape[0] / 2)), int(round(shape[1] / 2))


def ebb_input(photo, depth, depth_name="depth map"):
    """The network input: photo downscaled x0.5 (bicubic) with the depth map as 4th channel.

    A depth map that is not half the photo's size is resized to it with a warning.
    """
    h, w = half_size(photo.shape)
    small = np.clip(resize_bicubic(photo, (h, w)), 0.0, 1.0)
    if depth.shape[:2] != (h, w):
        warnings.warn(
            f"{depth_name}: size {depth.shape[1]}x{depth.shape[0]} is not half the photo's "
            f"({w}x{h}); resized.",
            stacklevel=2,
        )
        depth = np.clip(resize_bicubic(depth, (h, w)), 0.0, 1.0)
    return np.concatenate([small, depth[..., None].astype(np.float32)], axis=-1)


def pad_to_multiple(x, multiple=32):
    """Reflection-pads H x W x C (or N x H x W x C) at the bottom and right to a multiple.

    Returns (padded, (pad_h, pad_w)). Falls back to edge padding where an image is too small
    to reflect.
    """
    h, w = x.shape[-3], x.shape[-2]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x, (0, 0)
    widths = [(0, 0)] * x.ndim
    widths[-3] = (0, pad_h)
    widths[-2] = (0, pad_w)
    mode = "reflect" if pad_h < h and pad_w < w else "edge"
    return np.pad(x, widths, mode=mode), (pad_h, pad_w)


def write_image(path, image):
    """Writes a float [0, 1] (or uint8) image as 8-bit PNG/JPEG, atomically (temp + rename)."""
    path = os.fspath(path)
    if image.dtype != np.uint8:
        image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    suffix = os.path.splitext(path)[1].lower() or ".png"
    kwargs = {"quality": 95} if suffix in (".jpg", ".jpeg") else {}
    with atomic_path(path, suffix=suffix) as tmp:
        iio.imwrite(tmp, image, extension=suffix, **kwargs)
    return path
