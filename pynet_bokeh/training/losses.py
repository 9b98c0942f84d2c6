"""PyNET-Bokeh's training losses, as the authors' release computes them.

Levels 2-7: 100 * L1. Level 1: 10 * L1 + 0.1 * VGG + 10 * (1 - SSIM), where VGG is the mean
squared difference of VGG-19 relu5_4 features (ImageNet preprocessing, pixels 0..255) of the
prediction and the target. `pynet_loss_terms` returns the weighted terms by name; the training
loss is their sum, and each term is logged on its own.
"""

from __future__ import annotations

import tensorflow as tf

from pynet_bokeh.training.schedule import check_level

SSIM_FILTER_SIZE = 11
L1_WEIGHT = {1: 10.0, 2: 100.0, 3: 100.0, 4: 100.0, 5: 100.0, 6: 100.0, 7: 100.0}
VGG_WEIGHT = 0.1
SSIM_WEIGHT = 10.0


def l1(pred, target):
    """Mean absolute difference."""
    return tf.reduce_mean(tf.abs(tf.cast(pred, tf.float32) - tf.cast(target, tf.float32)))


def ssim(pred, target, max_val: float = 1.0):
    """Mean SSIM of NHWC batches (tf.image.ssim's 11x11 window, narrowed on smaller images)."""
    pred, target = tf.cast(pred, tf.float32), tf.cast(target, tf.float32)
    h, w = pred.shape[1], pred.shape[2]
    size = SSIM_FILTER_SIZE
    if h is not None and w is not None:
        size = min(size, int(h), int(w))
    return tf.reduce_mean(tf.image.ssim(pred, target, max_val=max_val, filter_size=size))


def vgg_content(vgg, pred, target):
    """Mean squared difference of VGG-19 relu5_4 features (vgg: `vgg.VGGFeatures`)."""
    a = tf.cast(vgg(pred), tf.float32)
    b = tf.cast(vgg(target), tf.float32)
    return tf.reduce_mean(tf.square(a - b))


def pynet_loss_terms(level: int, pred, target, vgg=None) -> dict:
    """The authors' weighted loss terms for `level`: {"l1": .., "vgg": .., "ssim": ..}.

    Level 1 needs `vgg` (a `VGGFeatures`) unless it is explicitly left out with vgg=False, which
    drops the VGG term (the `--no_vgg` ablation). Other levels use L1 only.
    """
    level = check_level(level)
    terms = {"l1": L1_WEIGHT[level] * l1(pred, target)}
    if level == 1:
        if vgg is None:
            raise ValueError(
                "level 1's loss needs VGG-19 weights: pass --vgg_weights (Keras "
                "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 or MatConvNet "
                "imagenet-vgg-verydeep-19.mat), or --no_vgg to train without the VGG term"
            )
        if vgg is not False:
            terms["vgg"] = VGG_WEIGHT * vgg_content(vgg, pred, target)
        terms["ssim"] = SSIM_WEIGHT * (1.0 - ssim(pred, target))
    return terms
