"""Where the demo's depth map comes from when none is uploaded: a depth network of
`depth_tools` (when its weights were given), or the geometric fallback, clearly labelled.

This is the one demo module that imports `depth_tools` (an entry point may; the library layers
never do: see the import-linter contract's ignore line in setup.cfg).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pynet_bokeh.errors import UsageError

DEPTH_MODELS = ("megadepth", "dpt-hybrid-midas")
FALLBACK_LABEL = (
    "Depth: GEOMETRIC FALLBACK (bottom = near, a centred subject), the same for every photo. "
    "NOT a depth estimate: upload a real depth map or start the demo with --depth_weights."
)


@dataclass
class DepthModel:
    """A depth network as the demo uses it: `estimate(photo) -> depth map` (H/2 x W/2 float32
    in [0, 1], near = bright) and a one-line description for the page."""

    name: str
    estimate: Callable[[np.ndarray], np.ndarray]
    description: str


def load_depth_model(name, weights) -> DepthModel:
    """The depth network `name` (one of DEPTH_MODELS) with its weights file."""
    from depth_tools.generate import MissingWeightsError, depth_map_for_photo, get_depth_source

    if name not in DEPTH_MODELS:
        raise UsageError(f"--depth_model {name!r}: choose one of {', '.join(DEPTH_MODELS)}")
    if weights is None:
        raise UsageError(f"--depth_model {name} needs --depth_weights PATH")
    try:
        source = get_depth_source(name, weights)
    except MissingWeightsError as err:
        raise UsageError(f"--depth_weights: {err}") from None

    def estimate(photo):
        return depth_map_for_photo(photo, source).astype(np.float32) / 255.0

    return DepthModel(name, estimate, source.description or name)


def fallback_depth(photo_shape):
    """The geometric prior as a depth map for a photo of `photo_shape` (H/2 x W/2 in [0, 1]).
    NOT a depth estimate: show FALLBACK_LABEL with it."""
    from depth_tools.generate import encode_ebb_depth, fallback_prior
    from pynet_bokeh.image_io import half_size

    return encode_ebb_depth(fallback_prior(*half_size(photo_shape))).astype(np.float32) / 255.0
