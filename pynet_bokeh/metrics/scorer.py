"""One object that scores a prediction under one or several protocols (and LPIPS) at once.

scorer = Scorer(("ebb",))                    # columns psnr, ssim, ms_ssim (today's shape)
scorer = Scorer(PROTOCOLS, lpips=build_lpips(...))   # "ebb/psnr", ..., "lpips"
row = scorer.score(pred, target)             # per image; the image is decoded once
scorer.means(rows)                           # {column: mean}
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pynet_bokeh.metrics.means import mean_metrics
from pynet_bokeh.metrics.protocols import (
    LPIPS_INPUTS,
    PROTOCOL_HELP,
    PROTOCOL_METRICS,
    PROTOCOLS,
    authors_target,
    image_metrics,
    protocol_columns,
)
from pynet_bokeh.metrics.tf_metrics import DEFAULT_BORDER, DEFAULT_CROP

LPIPS_NOTE = (
    "LPIPS v0.1 (AlexNet, lower is better) on the prediction clipped to [0, 1] and the whole "
    "target; protocols that report it feed it differently with the same numbers: "
    + "; ".join(f"{p} {how}" for p, how in LPIPS_INPUTS.items())
    + "."
)


def _resize_to(image, size):
    import tensorflow as tf

    return tf.image.resize(image, size, method="bicubic", antialias=True).numpy()


@dataclasses.dataclass
class Scorer:
    """Scores under `protocols` (names of `PROTOCOLS`), plus LPIPS when `lpips` is given."""

    protocols: tuple = ("ebb",)
    border: int = DEFAULT_BORDER
    crop_size: tuple = DEFAULT_CROP
    level: int = 1
    lpips: object = None

    def __post_init__(self):
        self.protocols = tuple(self.protocols)
        unknown = [p for p in self.protocols if p not in PROTOCOL_METRICS]
        if unknown or not self.protocols:
            raise ValueError(f"unknown protocol(s) {unknown}; use some of {PROTOCOLS} or 'all'")

    @property
    def single(self) -> bool:
        return len(self.protocols) == 1

    @property
    def columns(self) -> list[str]:
        """The mean-score columns: the protocol's metrics alone, or "<protocol>/<metric>"."""
        if self.single:
            cols = list(PROTOCOL_METRICS[self.protocols[0]])
        else:
            cols = protocol_columns(self.protocols)
        return cols + (["lpips"] if self.lpips is not None else [])

    @property
    def csv_columns(self) -> list[str]:
        extra = ["ms_ssim_scales"] if self.single and "ms_ssim" in self.columns else []
        return self.columns + extra

    def _one(self, protocol, pred, target):
        options = {"border": self.border, "crop_size": self.crop_size}
        if protocol == "authors" and self.level > 1:
            # the renderer upsampled the level's output: back to the level's size
            size = authors_target(target, self.level).shape[:2]
            return image_metrics(
                _resize_to(pred, size), target, protocol, level=self.level, **options
            )
        return image_metrics(pred, target, protocol, **options)

    def score(self, pred, target) -> dict:
        """One image's scores, keyed by `csv_columns`."""
        pred = np.asarray(pred, np.float32)
        target = np.asarray(target, np.float32)
        if self.single:
            row = self._one(self.protocols[0], pred, target)
        else:
            row = {}
            for protocol in self.protocols:
                scores = self._one(protocol, pred, target)
                row.update({f"{protocol}/{k}": scores[k] for k in PROTOCOL_METRICS[protocol]})
        if self.lpips is not None:
            row["lpips"] = float(self.lpips(np.clip(pred, 0.0, 1.0)[None], target[None])[0])
        return row

    def means(self, rows) -> dict:
        means = mean_metrics(rows, self.columns)
        return {k: means[k] for k in self.columns}

    def settings(self) -> dict:
        out = {"protocol": self.protocols[0] if self.single else "all"}
        if not self.single:
            out["protocols"] = list(self.protocols)
        if "ebb" in self.protocols:
            out["border"] = self.border
        if "aim2020" in self.protocols:
            out["crop_size"] = list(self.crop_size)
        if "authors" in self.protocols and self.level != 1:
            out["level"] = self.level
        return out

    def notes(self) -> list[str]:
        """One line per protocol (its source and quirks), and LPIPS' input convention."""
        out = [f"{p}: {PROTOCOL_HELP[p]}" for p in self.protocols]
        if "authors" in self.protocols and self.level > 1:
            out.append(
                f"authors at level {self.level}: the output, upsampled to full size by the "
                "renderer, is resized back to the level's size (the script scores it there)."
            )
        if self.lpips is not None:
            out.append(LPIPS_NOTE)
        return out
