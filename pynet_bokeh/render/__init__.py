"""Non-learned rendering.

- `pynet_bokeh.render.classical`: depth-driven physical defocus (thin lens, disc kernels, linear
  light, back-to-front layers): `render_defocus`, `render_bokeh_baseline`, `render_layers`.
"""
