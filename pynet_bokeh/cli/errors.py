"""Every command's errors as one line (the functions live in `pynet_bokeh.console`, the bottom
layer, so that depth_tools' commands share them)."""

from pynet_bokeh.console import REPORTED, absl_main, one_line, report

__all__ = ["REPORTED", "absl_main", "one_line", "report"]
