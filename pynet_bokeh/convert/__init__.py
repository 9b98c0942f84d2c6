"""pynet_bokeh.convert."""
