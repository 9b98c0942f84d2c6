"""Portrait mode, the segmentation + blur baseline ("Synthetic Defocus Generation using Deep
Learning": a subject mask from DeepLab / Mask R-CNN / an Xception depth map, then a Gaussian blur
of the background): subject masks, the background blur and the feathered composite.
"""

from __future__ import annotations

import cv2
import numpy as np

from pynet_bokeh.render.classical import disc_kernel, linear_to_srgb, srgb_to_linear

__all__ = [
    "BACKGROUND_BLURS",
    "PASCAL_VOC_PERSON",
    "blur_background",
    "depth_mask",
    "feather",
    "portrait",
    "segmenter_mask",
]

BACKGROUND_BLURS = ("gaussian", "disc")
#: The person class of Pascal VOC segmenters (0 is the background), as DeepLabV3's preset.
PASCAL_VOC_PERSON = 15


def depth_mask(depth):
    """The subject: depth map pixels nearer (brighter) than Otsu's threshold of the map."""
    from skimage.filters import threshold_otsu

    depth = np.asarray(depth, np.float32)
    if float(depth.max() - depth.min()) < 1e-6:
        return np.ones(depth.shape, np.float32)  # a flat map has no subject to separate
    return (depth > threshold_otsu(depth)).astype(np.float32)


def segmenter_mask(segmenter, photo, person_class=PASCAL_VOC_PERSON):
    """P(person) per pixel from a keras-hub `ImageSegmenter` (softmax or logits output), at the
    photo's size. The photo is resized to the segmenter's input size first (so its converter
    never crops), given as 0..255 pixel values as keras-hub's converters expect."""
    photo = np.asarray(photo, np.float32)
    h, w = photo.shape[:2]
    size = None
    converter = getattr(getattr(segmenter, "preprocessor", None), "image_converter", None)
    if converter is not None and getattr(converter, "image_size", None):
        size = tuple(int(v) for v in converter.image_size)
    x = photo if size is None else cv2.resize(photo, size[::-1], interpolation=cv2.INTER_AREA)
    scores = np.asarray(segmenter.predict(x[None] * 255.0, verbose=0))[0]
    if scores.shape[-1] <= person_class:
        raise ValueError(
            f"the segmenter has {scores.shape[-1]} classes; person class {person_class} is not one"
        )
    if not np.allclose(scores.sum(-1), 1.0, atol=1e-3) or scores.min() < 0:
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
    person = scores[..., person_class].astype(np.float32)
    return cv2.resize(person, (w, h), interpolation=cv2.INTER_LINEAR)


def feather(mask, radius):
    """A soft-edged mask: the binary subject mask smoothed by a Gaussian of sigma `radius` px."""
    mask = np.clip(np.asarray(mask, np.float32), 0.0, 1.0)
    if radius <= 0:
        return mask
    return np.clip(cv2.GaussianBlur(mask, (0, 0), float(radius)), 0.0, 1.0)


def blur_background(photo, subject, radius, kind="gaussian"):
    """The photo blurred by `radius` px (Gaussian: sigma = radius / 2; disc: the classical
    renderer's disc, in linear light), with the subject left out of the average so it does not
    bleed a halo into the background."""
    if kind not in BACKGROUND_BLURS:
        raise ValueError(f"background blur must be one of {BACKGROUND_BLURS}, got {kind!r}")
    photo = np.asarray(photo, np.float32)
    linear = srgb_to_linear(photo) if kind == "disc" else photo
    weight = (1.0 - np.clip(subject, 0.0, 1.0)).astype(np.float32)[..., None]
    stacked = np.concatenate([linear * weight, weight], axis=-1)
    if kind == "gaussian":
        blurred = cv2.GaussianBlur(stacked, (0, 0), max(radius / 2.0, 1e-3))
    else:
        blurred = cv2.filter2D(stacked, -1, disc_kernel(radius), borderType=cv2.BORDER_REFLECT_101)
    rgb = blurred[..., :3] / np.maximum(blurred[..., 3:], 1e-6)
    # Where the subject covers the whole kernel there is no background to average: keep the photo.
    rgb = np.where(blurred[..., 3:] > 1e-4, rgb, linear)
    return linear_to_srgb(rgb) if kind == "disc" else np.clip(rgb, 0.0, 1.0)


def portrait(photo, subject, radius, kind="gaussian", feather_radius=2.0):
    """Subject sharp over a blurred background: `subject` (H x W in [0, 1]) feathered by
    `feather_radius` px, background blurred by `radius` px (see `blur_background`)."""
    photo = np.asarray(photo, np.float32)
    if radius <= 0:
        return photo
    alpha = feather(subject, feather_radius)[..., None]
    background = blur_background(photo, subject, radius, kind)
    return (alpha * photo + (1.0 - alpha) * background).astype(np.float32)
