"""DeepLens (Wang et al., SIGGRAPH Asia 2018) in Keras 3, numerically equal to the authors' TF1 graph.

Port of `scott89/deeplens_eval` (HEAD 3dbc1b0, inference only); see `shared/specs/deeplens.md`.
Four functional sub-models keep the original layer names (the checkpoint's
`Network/Network/<Sub>/<layer>/<var>`):

- `depth_net` (`Depth`): ResNet-50 + pyramid-pooling decoder, always run at 320 x 320; outputs
  `depth_raw` (320 x 320) and `depth` (resized to the input, min-max normalised inverse depth).
- `lensblur_net` (`Lensblur`, the KernelNet): image + signed defocus -> 31 normalised weights.
- `feature_net` (`Feature`): the image and 30 + 30 + 15 + 15 blurred feature maps (31 candidates).
- `sr_net` (`SR`): guided upsampling of a DoF image by 2, used once or twice with the same weights.

The sub-models work in the original's BGR order; the public functions here take and return RGB.

Modules: `networks` (the four modules), `checkpoint` (weights in), `graph` (the forward pass),
`export_graph` (fixed-size TFLite graph), `photos` (one photo in, bokeh out).
"""

from pynet_bokeh.models.deeplens.checkpoint import (
    DeepLensCheckpointError,
    checkpoint_variables,
    is_deeplens_tf1_checkpoint,
    load_deeplens_checkpoint,
    resolve_checkpoint,
    resolve_weights,
)
from pynet_bokeh.models.deeplens.export_graph import (
    deeplens_export_function,
    deeplens_export_spec,
    export_scale,
)
from pynet_bokeh.models.deeplens.graph import (
    build_deeplens_graph,
    compiled_modules,
    deeplens_forward,
    dof_pyramid,
    signed_defocus,
)
from pynet_bokeh.models.deeplens.networks import (
    APERTURE_RADIUS_FRACTION,
    BN_EPSILON,
    DEPTH_SIZE,
    MAX_SIDE,
    SCOPES,
    DeepLens,
    build_deeplens,
    build_depth_net,
    build_feature_net,
    build_lensblur_net,
    build_sr_net,
)
from pynet_bokeh.models.deeplens.photos import (
    aperture_for_blur,
    blur_for_aperture,
    deeplens_pyramid,
    render_deeplens,
)

__all__ = [
    "APERTURE_RADIUS_FRACTION",
    "BN_EPSILON",
    "DEPTH_SIZE",
    "MAX_SIDE",
    "SCOPES",
    "DeepLens",
    "DeepLensCheckpointError",
    "aperture_for_blur",
    "blur_for_aperture",
    "build_deeplens",
    "build_deeplens_graph",
    "build_depth_net",
    "build_feature_net",
    "build_lensblur_net",
    "build_sr_net",
    "checkpoint_variables",
    "compiled_modules",
    "deeplens_export_function",
    "deeplens_export_spec",
    "deeplens_forward",
    "deeplens_pyramid",
    "dof_pyramid",
    "export_scale",
    "is_deeplens_tf1_checkpoint",
    "load_deeplens_checkpoint",
    "render_deeplens",
    "resolve_checkpoint",
    "resolve_weights",
    "signed_defocus",
]
