"""Portrait mode: a subject mask, then the background blurred (the segmentation + blur baseline).

The subject mask comes from, in this order of precedence:

- `mask`: a mask file the user gives (8-bit image, white = subject; any size with the photo's
  aspect ratio);
- `segmenter`: a keras-hub DeepLabV3 (`DeepLabV3ImageSegmenter.from_preset`) preset folder or
  handle, the person class (`person_class`, Pascal VOC's 15 by default) as the subject; needs
  the optional extra `portrait` (`pip install "pynet-bokeh[portrait]"`, i.e. keras-hub);
- otherwise the depth map thresholded with Otsu's method (near = subject).

The background is blurred by K pixels (`--blur`; Gaussian with sigma K / 2 as in the report,
or the classical disc with `background_blur="disc"`) and the subject composited over it with a
feathered edge (`feather` px). It is scored like every method against the bokeh target (the
report scored against the input photo, which the identity baseline would win).
"""

from __future__ import annotations

import os

import numpy as np

from pynet_bokeh.errors import BadDataError, UsageError, WeightsMismatchError
from pynet_bokeh.render import portrait as pm
from pynet_bokeh.renderers.base import Renderer, check_depth

DEFAULT_BLUR = 16.0
INSTALL_HINT = 'pip install "pynet-bokeh[portrait]" (keras-hub)'


def load_segmenter(preset):
    """A keras-hub DeepLabV3 segmenter from a preset folder or handle."""
    try:
        import keras_hub
    except ImportError:
        raise UsageError(
            f"--segmenter needs keras-hub: {INSTALL_HINT}; or use --mask or the depth map"
        ) from None
    preset = os.fspath(preset)
    local = os.path.sep in preset or preset.startswith(".")
    if local and not os.path.isfile(os.path.join(preset, "config.json")):
        raise UsageError(
            f"--segmenter {preset}: not a keras-hub preset folder (no config.json); give a "
            "folder saved with save_to_preset or a handle such as "
            "deeplab_v3_plus_resnet50_pascalvoc"
        )
    try:
        return keras_hub.models.DeepLabV3ImageSegmenter.from_preset(preset)
    except (ValueError, FileNotFoundError, OSError) as err:
        raise WeightsMismatchError(
            f"--segmenter {preset}: cannot load a DeepLabV3 segmenter ({str(err).splitlines()[0]})"
        ) from None


def read_mask(path, photo_shape):
    """The mask file as H x W float32 in [0, 1] at the photo's size (white = subject)."""
    import warnings

    import cv2

    from pynet_bokeh.image_io import ImageFileError, read_photo

    try:
        with warnings.catch_warnings():  # a grey mask is expected, not worth a warning
            warnings.simplefilter("ignore", UserWarning)
            mask = read_photo(path).mean(axis=-1)
    except ImageFileError as err:
        raise BadDataError(f"--mask: {err}") from None
    mask = check_depth(mask, photo_shape, name=f"--mask {path}")
    h, w = photo_shape[:2]
    if mask.shape != (h, w):
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(mask, 0.0, 1.0)


class PortraitRenderer(Renderer):
    name = "portrait"
    description = "portrait mode: subject mask (file, Otsu on depth, DeepLabV3), background blurred"
    needs_depth = True  # by default (the Otsu mask); not with --mask or --segmenter
    takes_blur = True
    default_blur = DEFAULT_BLUR
    option_flags = {
        "mask": "mask",
        "segmenter": "segmenter",
        "background_blur": "background_blur",
        "feather": "feather",
        "person_class": "person_class",
    }

    def __init__(
        self,
        weights=None,
        mask=None,
        segmenter=None,
        background_blur=None,
        feather=None,
        person_class=None,
    ):
        super().__init__(weights)
        background_blur = background_blur or "gaussian"
        feather = 2.0 if feather is None else feather
        person_class = pm.PASCAL_VOC_PERSON if person_class is None else person_class
        if mask is not None and segmenter is not None:
            raise UsageError("give --mask or --segmenter, not both")
        if background_blur not in pm.BACKGROUND_BLURS:
            raise UsageError(
                f"--background_blur {background_blur!r}: choose {' or '.join(pm.BACKGROUND_BLURS)}"
            )
        if not float(feather) >= 0:
            raise UsageError(f"--feather {feather!r}: a radius in pixels, >= 0")
        if mask is not None and not os.path.isfile(mask):
            raise BadDataError(f"--mask {mask}: file not found")
        self.mask_path = mask
        self.segmenter = load_segmenter(segmenter) if segmenter is not None else None
        self.needs_depth = self.mask_source == "depth"
        self.background_blur = background_blur
        self.feather = float(feather)
        self.person_class = int(person_class)

    @property
    def mask_source(self):
        if self.mask_path is not None:
            return "file"
        return "segmenter" if self.segmenter is not None else "depth"

    def subject_mask(self, photo, depth):
        """The subject mask (H x W in [0, 1]) at the photo's size, from the chosen source."""
        import cv2

        if self.mask_path is not None:
            return read_mask(self.mask_path, photo.shape)
        if self.segmenter is not None:
            try:
                return pm.segmenter_mask(self.segmenter, photo, self.person_class)
            except ValueError as err:
                raise UsageError(f"--person_class: {err}") from None
        if depth is None:
            raise BadDataError(
                "--method portrait needs a subject mask: the photo's depth map (--depth_dir), "
                "--mask FILE, or --segmenter PRESET"
            )
        h, w = photo.shape[:2]
        mask = pm.depth_mask(depth)
        return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)

    def _render(self, photo, depth, controls):
        subject = self.subject_mask(photo, depth)
        return pm.portrait(photo, subject, controls.blur, self.background_blur, self.feather)


RENDERER = PortraitRenderer
