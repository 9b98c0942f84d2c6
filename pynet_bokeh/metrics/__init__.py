"""Image quality metrics: tf.image-style PSNR / SSIM / MS-SSIM, the published EBB! scoring
protocols, and LPIPS v0.1 in Keras.

- `tf_metrics`: PSNR, SSIM, MS-SSIM as tf.image defines them (float64 means) and the scored
  regions (border, centre crop);
- `protocols`: `image_metrics(pred, target, protocol=P)` for each paper's protocol (ebb, aim2020,
  authors, dmshn, ntire2023, bokehlicious), each one's source and quirks documented there;
- `lpips`: `build_lpips(net="alex", trunk_weights=..., lin_weights=...)`, weights read from the
  PyTorch files without PyTorch;
- `means`: `mean_metrics` over per-image rows;
- `scorer`: `Scorer`, several protocols (and LPIPS) on one decoded image, as evaluate.py uses.

    scores = image_metrics(pred, target)                     # {"psnr": .., "ssim": .., "ms_ssim": ..}
    mean_metrics([image_metrics(p, t, protocol="dmshn") for p, t in pairs])
"""

from pynet_bokeh.metrics.lpips import build_lpips
from pynet_bokeh.metrics.means import mean_metrics
from pynet_bokeh.metrics.protocols import (
    LPIPS_INPUTS,
    PROTOCOL_HELP,
    PROTOCOL_METRICS,
    PROTOCOLS,
    all_protocols,
    authors_target,
    bytescale,
    image_metrics,
    protocol_columns,
)
from pynet_bokeh.metrics.scorer import Scorer
from pynet_bokeh.metrics.tf_metrics import (
    DEFAULT_BORDER,
    DEFAULT_CROP,
    METRICS,
    MS_SSIM_WEIGHTS,
    SSIM_FILTER_SIGMA,
    SSIM_FILTER_SIZE,
    center_crop,
    crop_border,
    ms_ssim,
    ms_ssim_scales,
    psnr,
    scored_region,
    ssim,
)

__all__ = [
    "DEFAULT_BORDER",
    "DEFAULT_CROP",
    "LPIPS_INPUTS",
    "METRICS",
    "MS_SSIM_WEIGHTS",
    "PROTOCOLS",
    "PROTOCOL_HELP",
    "PROTOCOL_METRICS",
    "SSIM_FILTER_SIGMA",
    "SSIM_FILTER_SIZE",
    "Scorer",
    "all_protocols",
    "authors_target",
    "build_lpips",
    "bytescale",
    "center_crop",
    "crop_border",
    "image_metrics",
    "mean_metrics",
    "ms_ssim",
    "ms_ssim_scales",
    "protocol_columns",
    "psnr",
    "scored_region",
    "ssim",
]
