"""Readers and writers of weight files (bottom layer: imports nothing of the project but
`pynet_bokeh.files` and `pynet_bokeh.errors`).

- `tf1`: TF1 checkpoints (the authors' PyNET-Bokeh release; the TF checkpoint reader, no graph);
- `torch_file`: PyTorch `.pth` / `.pt` files read with pickle + numpy behind an allow-list;
- `keras_h5`: `.weights.h5` files tagged with layer names, loaded by name.
"""
