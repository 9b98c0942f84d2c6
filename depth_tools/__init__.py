"""Depth maps for PyNET-Bokeh: MegaDepth in Keras, its PyTorch weights without PyTorch, and
EBB!-format depth map generation.

    from depth_tools import build_megadepth, load_megadepth_weights
    net = build_megadepth()                     # RGB [0,1] (N, H, W, 3), H, W multiples of 16
    load_megadepth_weights(net, "best_generalization_net_G.pth")
    log_depth = net(rgb)                        # (N, H, W, 1)
"""

__all__ = ["build_megadepth", "load_megadepth_weights", "load_torch_file"]


def __getattr__(name):
    # Lazy: `depth_tools.torch_file` must stay importable without TensorFlow / Keras.
    if name in ("build_megadepth", "load_megadepth_weights"):
        from depth_tools import megadepth

        return getattr(megadepth, name)
    if name == "load_torch_file":
        from pynet_bokeh.weights.torch_file import load_torch_file

        return load_torch_file
    raise AttributeError(f"module 'depth_tools' has no attribute {name!r}")
