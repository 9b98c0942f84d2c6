"""Test-only: a DPT model's weights as a PyTorch-layout state dict (to write .pt fixtures)."""

import keras
import numpy as np

from pynet_bokeh.models.dpt import _infer_config, _model_layers, dpt_key_map


def dpt_state_dict(model, prefix=""):
    """The inverse of ``assign_dpt_weights``: ``model``'s weights as a PyTorch-layout state
    dict (DPT key names, float32), e.g. for ``depth_tools.torch_file.save_torch_zip``."""
    layers = _model_layers(model, prefix)
    state = {}
    for key, (layer_name, index) in dpt_key_map(_infer_config(layers)).items():
        value = keras.ops.convert_to_numpy(layers[layer_name].weights[index]).astype(np.float32)
        if value.ndim == 4:
            value = value.transpose(3, 2, 0, 1)
        elif value.ndim == 2:
            value = value.T
        state[key] = np.ascontiguousarray(value)
    return state
