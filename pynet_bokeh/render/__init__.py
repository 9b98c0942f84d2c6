"""Non-learned rendering.

- `pynet_bokeh.render.classical`: depth-driven physical defocus (thin lens, disc kernels, linear
  light, back-to-front layers): `render_defocus`, `render_bokeh_baseline`, `render_layers`.
- `pynet_bokeh.render.classical_tf`: the same renderer in TensorFlow ops (tf.function, TFLite
  builtin ops) with the focus point and K as tensors: `render_bokeh_tf`, `classical_graph`.
"""
