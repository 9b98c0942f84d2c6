"""pynet_bokeh.models."""
