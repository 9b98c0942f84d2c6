"""PyNET-Bokeh on TensorFlow 2 / Keras 3."""

from pynet_bokeh.convert.tf1 import load_tf1_checkpoint
from pynet_bokeh.models.pynet import build_pynet, level_model

__all__ = ["build_pynet", "level_model", "load_tf1_checkpoint"]
__version__ = "0.1.0"
