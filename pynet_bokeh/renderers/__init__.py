"""One interface for every bokeh method.

    from pynet_bokeh.renderers import get_renderer
    r = get_renderer("classical")                      # or "pynet", "deeplens", ... + weights
    image = r.render(photo, depth, focus=(x, y), blur=24.0)   # H x W x 3, the photo's size

Each method is one module of this package defining `RENDERER`, a `Renderer` subclass (see
`base`): its name, the controls it takes, whether it needs a depth map, the weight files it
loads, its TFLite export spec and its training task. Adding a method is adding a module here;
nothing outside this package branches on a method's name.
"""

from __future__ import annotations

import importlib
import pkgutil

from pynet_bokeh.errors import UsageError
from pynet_bokeh.renderers.base import Renderer

__all__ = ["Renderer", "get_renderer", "renderer_class", "renderer_names"]

_NOT_METHODS = {"base"}
_CLASSES: dict[str, type[Renderer]] | None = None


def _discover() -> dict[str, type[Renderer]]:
    global _CLASSES
    if _CLASSES is None:
        found = {}
        for info in pkgutil.iter_modules(__path__):
            if info.name.startswith("_") or info.name in _NOT_METHODS:
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            cls = getattr(module, "RENDERER", None)
            if cls is not None:
                found[cls.name] = cls
        _CLASSES = dict(sorted(found.items()))
    return _CLASSES


def renderer_names() -> list[str]:
    """The registered methods' names, sorted."""
    return list(_discover())


def renderer_class(name) -> type[Renderer]:
    """The `Renderer` subclass registered as `name`; UsageError naming --method otherwise."""
    classes = _discover()
    if name not in classes:
        raise UsageError(f"--method {name!r} is not a method; choose one of {', '.join(classes)}")
    return classes[name]


def get_renderer(name, weights=None, **options) -> Renderer:
    """A ready renderer: `name`'s class built with its `weights` (a path, where it takes one)
    and method options (e.g. `level=2` for pynet; `model=` an already loaded network)."""
    cls = renderer_class(name)
    if cls.needs_weights and weights is None and options.get("model") is None:
        formats = ", ".join(cls.weights_formats)
        raise UsageError(f"--method {name} needs --weights ({formats})")
    return cls(weights, **options)
