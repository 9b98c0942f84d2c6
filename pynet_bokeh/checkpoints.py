"""Moved to `pynet_bokeh.renderers.pynet.load_pynet`; this path stays importable."""

from pynet_bokeh.renderers.pynet import load_pynet as _load


def load_pynet(weights=None, tf1_checkpoint=None, **build_kwargs):
    """PyNET with `weights` or `tf1_checkpoint` (exactly one), see `renderers.pynet.load_pynet`."""
    if (weights is None) == (tf1_checkpoint is None):
        raise ValueError("give exactly one of --weights / --tf1_checkpoint")
    return _load(weights if weights is not None else tf1_checkpoint, **build_kwargs)
