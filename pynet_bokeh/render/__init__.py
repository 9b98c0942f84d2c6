"""pynet_bokeh.render."""
