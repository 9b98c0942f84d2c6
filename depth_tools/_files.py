"""Atomic file writes (shared with the rest of the package)."""

from pynet_bokeh.files import atomic_path

__all__ = ["atomic_path"]
