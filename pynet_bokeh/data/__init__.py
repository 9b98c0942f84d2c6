"""pynet_bokeh.data."""
