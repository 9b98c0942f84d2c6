"""Moved to `pynet_bokeh.weights.torch_file` (the readers of foreign weight files live in one
layer); this path stays importable."""

from pynet_bokeh.weights.torch_file import *  # noqa: F403
from pynet_bokeh.weights.torch_file import (  # noqa: F401
    TorchFileError,
    UnsafeTorchFileError,
    load_torch_file,
    read_torch_file,
    save_torch_zip,
    state_dict_from,
)
