"""PyNET-Bokeh on TensorFlow 2 / Keras 3.

from pynet_bokeh import build_pynet, load_tf1_checkpoint, level_model
"""

__version__ = "0.1.0"
__all__ = ["build_pynet", "level_model", "load_tf1_checkpoint"]


def __getattr__(name):
    # Lazy so that `import pynet_bokeh.image_io` does not build the whole model module graph.
    if name in ("build_pynet", "level_model"):
        from pynet_bokeh.models import pynet

        return getattr(pynet, name)
    if name == "load_tf1_checkpoint":
        from pynet_bokeh.weights.tf1 import load_tf1_checkpoint

        return load_tf1_checkpoint
    raise AttributeError(f"module 'pynet_bokeh' has no attribute {name!r}")
