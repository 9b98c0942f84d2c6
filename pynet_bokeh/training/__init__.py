"""pynet_bokeh.training."""
