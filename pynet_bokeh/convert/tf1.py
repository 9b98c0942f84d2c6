"""Moved: the TF1 checkpoint reader is `pynet_bokeh.weights.tf1`, the converter
`pynet_bokeh.renderers.pynet.convert_tf1_checkpoint`. This path stays importable."""

from pynet_bokeh.renderers.pynet import convert_tf1_checkpoint  # noqa: F401
from pynet_bokeh.weights.tf1 import (  # noqa: F401
    CheckpointMismatchError,
    load_tf1_checkpoint,
    read_tf1_weights,
    resolve_prefix,
    tf1_variable_name,
)
