"""DPT-Hybrid as a depth source for ``depth_tools.generate`` (``--model dpt-hybrid-midas`` or
``--model dpt-hybrid-nyu``), on the Keras port ``pynet_bokeh.models.dpt``.

    depth-tools-generate --input photos/ --model dpt-hybrid-midas --weights dpt_hybrid-midas-501f0c75.pt
    depth-tools-generate --input EBB/ --model dpt-hybrid-nyu --weights dpt_hybrid_nyu-2ce69ec7.pt

Weights (no download at run time): the ``.pt`` files of the GitHub release ``1_0`` of
isl-org/DPT, read without torch; a ``.weights.h5`` saved from ``build_dpt`` also works.

Conversion to the EBB! encoding (8-bit, half the photo's size, near = bright, min-max per map):
- The network sees the photo as DPT feeds it, ``(x - 0.5) / 0.5``, at the generator's working
  size (multiples of 32; DPT itself runs at 384 on the short side, MiDaS-style).
- ``dpt-hybrid-midas`` outputs relative inverse depth (disparity up to an unknown scale and
  shift; larger = nearer). It is used as inverse depth directly (``output="inverse_depth"``).
- ``dpt-hybrid-nyu`` outputs metric depth in metres, ``Do = 1 / max(0.000305 y + 0.1378, 1e-8)``
  with y the head output (DPT's ``invert`` branch, at most 7.26 m). The generator turns it into
  inverse depth ``1 / Do = 0.000305 y + 0.1378`` (``output="depth"``); being affine in y with a
  positive slope, the min-max step gives the same map as normalising y itself.
- Then (``depth_tools.generate``): bicubic resize to half the photo's size, min-max to 0..255.
A flat prediction (no depth range) is written as all-near, as the generator does for any source.
"""

from pathlib import Path

from depth_tools.generate import DepthSource, MissingWeightsError, register_depth_source

#: --model name -> (DPT release file, generator output kind, description)
DPT_SOURCES = {
    "dpt-hybrid-midas": (
        "dpt_hybrid-midas-501f0c75.pt",
        "inverse_depth",
        "DPT-Hybrid MiDaS (relative inverse depth)",
    ),
    "dpt-hybrid-nyu": (
        "dpt_hybrid_nyu-2ce69ec7.pt",
        "depth",
        "DPT-Hybrid NYUv2 (metric depth, inverted for the EBB! encoding)",
    ),
}
DPT_MULTIPLE = 32


def dpt_depth_source(name, weights, backbone="vitb_rn50_384"):
    """A ``DepthSource`` running DPT ``backbone`` with ``weights`` (.pt or .weights.h5) as the
    ``name`` source of ``DPT_SOURCES``; predict returns (N, h, w) float32."""
    import tensorflow as tf

    from pynet_bokeh.models.dpt import build_dpt, load_dpt_checkpoint
    from pynet_bokeh.models.dpt_layers import NyuMetricDepth

    release, output, description = DPT_SOURCES[name]
    if weights is None:
        raise MissingWeightsError(
            f"--model {name} needs its weights: download {release} from the GitHub release 1_0 "
            "of isl-org/DPT and pass --weights PATH; or pass --fallback for a geometric prior "
            "that is NOT a depth estimate."
        )
    model = build_dpt(backbone, head="depth", name=name.replace("-", "_"))
    if str(weights).endswith(".h5"):
        model.load_weights(weights)
    else:
        load_dpt_checkpoint(model, weights)
    metric = NyuMetricDepth() if output == "depth" else None

    @tf.function(reduce_retracing=True)
    def predict(rgb):
        y = model((rgb - 0.5) / 0.5, training=False)
        return (metric(y) if metric is not None else y)[..., 0]

    return DepthSource(
        name=name,
        predict=lambda rgb: predict(tf.convert_to_tensor(rgb, tf.float32)).numpy(),
        output=output,
        multiple=DPT_MULTIPLE,
        description=f"{description}, weights {Path(weights).name}",
    )


@register_depth_source("dpt-hybrid-midas")
def _dpt_hybrid_midas(weights):
    return dpt_depth_source("dpt-hybrid-midas", weights)


@register_depth_source("dpt-hybrid-nyu")
def _dpt_hybrid_nyu(weights):
    return dpt_depth_source("dpt-hybrid-nyu", weights)
