"""The classical renderer (`pynet_bokeh.render.classical`) in TensorFlow ops, for tf.function and
TFLite (builtin ops only).

Same physics as the NumPy reference: radius = (d - d_f) * K pixels (thin lens), the scene cut
into at most `max_layers` layers about one pixel of radius wide (the reference's bins, with the
same data-dependent edges), each layer blurred in linear light by an anti-aliased disc of the
layer's mean radius, composited far to near with "over", coverage normalised away at the end.

What differs is where the work happens. A layer whose radius is at most `FULL_RES_RADIUS` is
blurred at full resolution with its exact disc. A layer of larger radius r is blurred at scale
s = 2^k, the smallest with r / s <= `COARSE_RADIUS`: its premultiplied colour and coverage are
box-averaged s x s (all layers at once, by one segment sum into 2 x 2 blocks, then pooling),
convolved with the disc of radius sqrt(r^2 - s^2 / 2) / s (the resampling's own blur taken off)
and composited at that scale. The far layers are composited back to front from the coarsest
scale down, upsampling the accumulated image x2 between scales; the near layers front to back
(colour and transmittance) the same way; the full-resolution layers go between. "Over" is
associative, so this is the reference's order; the blurred layers are smooth at their scale, so
resampling them costs about 50 dB of accuracy and 1 / s^2 of the work. Kernels are fixed-size
tensors built from the run-time radius, so the focus and K are graph inputs.
"""

from __future__ import annotations

import math

import tensorflow as tf

__all__ = [
    "disc_kernel_tf",
    "linear_to_srgb_tf",
    "render_bokeh_tf",
    "render_defocus_tf",
    "srgb_to_linear_tf",
]

MAX_LAYERS = 32
#: Radii (pixels) blurred at full resolution; the largest radius (in its own scale's pixels)
#: blurred at a coarser scale.
FULL_RES_RADIUS = 2.5
COARSE_RADIUS = 3.0
#: The coarsest scale, 2^MAX_LEVEL: radii up to COARSE_RADIUS * 64 = 192 px.
MAX_LEVEL = 6


def srgb_to_linear_tf(x):
    """sRGB in [0, 1] -> linear light (IEC 61966-2-1), as `classical.srgb_to_linear`."""
    x = tf.convert_to_tensor(x, tf.float32)
    high = tf.pow((tf.maximum(x, 0.04045) + 0.055) / 1.055, 2.4)
    return tf.where(x <= 0.04045, x / 12.92, high)


def linear_to_srgb_tf(x):
    """Linear light -> sRGB, clipped to [0, 1] first, as `classical.linear_to_srgb`."""
    x = tf.clip_by_value(tf.convert_to_tensor(x, tf.float32), 0.0, 1.0)
    high = 1.055 * tf.pow(tf.maximum(x, 0.0031308), 1 / 2.4) - 0.055
    return tf.where(x <= 0.0031308, x * 12.92, high)


def disc_kernel_tf(radius, half):
    """The anti-aliased disc of `radius` (a scalar tensor, <= half + 0.5) on a fixed
    (2 half + 1)^2 grid, normalised: `classical.disc_kernel` zero-padded to that grid."""
    offsets = tf.range(-half, half + 1, dtype=tf.float32)
    dist = tf.sqrt(offsets[:, None] ** 2 + offsets[None, :] ** 2)
    kernel = tf.clip_by_value(radius + 0.5 - dist, 0.0, 1.0)
    return kernel / tf.reduce_sum(kernel)


def _half(radius):
    return max(int(math.ceil(radius - 0.5)), 0)


def _disc_blur(image, radius, half, conv="depthwise"):
    """Disc blur of 1 x H x W x C, reflect-101 borders (cv2.BORDER_REFLECT_101).

    conv="depthwise": one depthwise convolution (what LiteRT / XNNPACK run fast);
    "taps": a sum of shifted slices, one per tap inside the disc's grid (TensorFlow's own CPU
    depthwise kernel is several times slower than that for kernels of 5 x 5 and more).
    """
    channels = image.shape[-1]
    kernel = disc_kernel_tf(tf.minimum(radius, half + 0.5), half)
    padded = tf.pad(image, [[0, 0], [half, half], [half, half], [0, 0]], mode="REFLECT")
    if conv == "taps":
        h, w = int(image.shape[1]), int(image.shape[2])
        out = None
        for dy in range(2 * half + 1):
            for dx in range(2 * half + 1):
                if (dy - half) ** 2 + (dx - half) ** 2 >= (half + 1) ** 2:
                    continue  # beyond radius + 0.5 for every radius this grid holds: zero
                tap = padded[:, dy : dy + h, dx : dx + w] * kernel[dy, dx]
                out = tap if out is None else out + tap
        return out
    weights = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])
    return tf.nn.depthwise_conv2d(padded, weights, [1, 1, 1, 1], "VALID")


def _levels(h, w):
    """The coarsest usable level: 2^level divides H and W and leaves room for the kernel."""
    half = _half(COARSE_RADIUS)
    level = 0
    while level < MAX_LEVEL:
        s = 2 ** (level + 1)
        if h % s or w % s or h // s <= half or w // s <= half:
            break
        level += 1
    return level


def _up2(x):
    h, w = int(x.shape[1]), int(x.shape[2])
    return tf.image.resize(x, (2 * h, 2 * w), method="bilinear")


def render_defocus_tf(
    linear, disparity, focus_disparity, blur, max_layers=MAX_LAYERS, conv="depthwise"
):
    """Defocus of 1 x H x W x 3 linear light with its 1 x H x W x 1 disparity map (the photo's
    size); `focus_disparity` and `blur` (K pixels) are scalars. Returns linear light.

    H and W should be even (multiples of 64 use every scale); otherwise everything is blurred
    at full resolution, and a radius above FULL_RES_RADIUS is clipped to it.
    """
    h, w = int(linear.shape[1]), int(linear.shape[2])
    top = _levels(h, w)
    half0, half_c = _half(FULL_RES_RADIUS), _half(COARSE_RADIUS)
    focus_disparity = tf.reshape(tf.cast(focus_disparity, tf.float32), [])
    k = tf.reshape(tf.cast(blur, tf.float32), [])
    radius = (disparity - focus_disparity) * k
    lo, hi = tf.reduce_min(radius), tf.reduce_max(radius)
    n_bins = tf.clip_by_value(tf.math.ceil(hi - lo), 1.0, float(max_layers))
    width = tf.maximum((hi - lo) / n_bins, 1e-6)
    bins = tf.cast(tf.clip_by_value(tf.floor((radius - lo) / width), 0.0, n_bins - 1.0), tf.int32)

    # Coverage 1 everywhere, computed from an input so that the converter does not store it.
    ones = tf.cast(bins >= 0, tf.float32)
    # Per layer: pixel count and mean radius, and the scale its blur is computed at.
    flat_bins = tf.reshape(bins, [-1])
    count = tf.math.unsorted_segment_sum(tf.reshape(ones, [-1]), flat_bins, max_layers)
    total = tf.math.unsorted_segment_sum(tf.reshape(radius, [-1]), flat_bins, max_layers)
    mean_r = total / tf.maximum(count, 1e-12)
    layer_radius = tf.abs(mean_r)
    coarse_level = tf.math.ceil(
        tf.math.log(tf.maximum(layer_radius, 1e-6) / COARSE_RADIUS) / math.log(2.0)
    )
    level = tf.where(
        layer_radius <= FULL_RES_RADIUS,
        0,
        tf.cast(tf.clip_by_value(coarse_level, 1.0, float(max(top, 1))), tf.int32),
    )
    level = tf.minimum(level, top)
    present = count > 0
    far = mean_r < 0

    if top > 0:
        # All layers' premultiplied colour and coverage averaged over 2 x 2 blocks, in one pass.
        # Segment id = layer * blocks + block; the block index is added as a row and a column
        # term (not one H x W map, which the converter would store as a constant).
        hh, ww = h // 2, w // 2
        rows = (tf.range(h) // 2) * ww
        cols = tf.range(w) // 2
        # (maximum keeps the converter from folding the two terms into one H x W constant)
        ids = tf.maximum(bins[0, :, :, 0] * (hh * ww) + rows[:, None], 0) + cols[None, :]
        data = tf.concat([linear, ones], axis=-1) * 0.25
        hist = tf.math.unsorted_segment_sum(
            tf.reshape(data, [-1, 4]), tf.reshape(ids, [-1]), max_layers * hh * ww
        )
        hist = tf.reshape(hist, [max_layers, hh, ww, 4])

    def coarse_layer(b, lv):
        premult = hist[b][None]
        if lv > 1:
            pool = 2 ** (lv - 1)
            premult = tf.nn.avg_pool2d(premult, pool, pool, "VALID")
        s = float(2**lv)
        r = tf.sqrt(tf.maximum(layer_radius[b] ** 2 - 0.5 * s * s, 0.25)) / s
        return _disc_blur(premult, r, half_c, conv)

    def loop(state, order, body_fn, selected):
        def body(i, *acc):
            b = order(i)
            out = tf.cond(selected(b), lambda: body_fn(b, *acc), lambda: tuple(acc))
            return (i + 1, *out)

        return tf.while_loop(lambda i, *_: i < max_layers, body, (tf.constant(0), *state))[1:]

    # Far layers, back to front, coarsest scale first.
    acc = None
    for lv in range(top, 0, -1):
        shape = [1, h >> lv, w >> lv, 4]
        acc = tf.zeros(shape) if acc is None else _up2(acc)

        def far_over(b, a, lv=lv):
            layer = coarse_layer(b, lv)
            return (a * (1.0 - layer[..., 3:]) + layer,)

        (acc,) = loop(
            (acc,),
            lambda i: i,
            far_over,
            lambda b, lv=lv: present[b] & far[b] & tf.equal(level[b], lv),
        )
    acc = tf.concat([linear, disparity], axis=-1) * 0.0 if acc is None else _up2(acc)

    # Layers near the focal plane at full resolution, back to front.
    def sharp_over(b, a):
        mask = tf.cast(tf.equal(bins, b), tf.float32)
        premult = tf.concat([linear * mask, mask], axis=-1)
        r = layer_radius[b]
        layer = (
            tf.cond(r > 0.5, lambda: _disc_blur(premult, r, half0, conv), lambda: premult)
            if half0 > 0
            else premult
        )
        return (a * (1.0 - layer[..., 3:]) + layer,)

    (acc,) = loop((acc,), lambda i: i, sharp_over, lambda b: present[b] & tf.equal(level[b], 0))
    if top == 0:
        return _normalise(acc)

    # Near layers, front to back (colour and transmittance), coarsest scale first.
    color = trans = None
    for lv in range(top, 0, -1):
        shape = [1, h >> lv, w >> lv, 4]
        if color is None:
            color, trans = tf.zeros(shape), tf.ones([1, h >> lv, w >> lv, 1])
        else:
            color, trans = _up2(color), _up2(trans)

        def near_under(b, c, t, lv=lv):
            layer = coarse_layer(b, lv)
            return c + t * layer, t * (1.0 - layer[..., 3:])

        color, trans = loop(
            (color, trans),
            lambda i: max_layers - 1 - i,
            near_under,
            lambda b, lv=lv: present[b] & ~far[b] & tf.equal(level[b], lv),
        )
    return _normalise(_up2(color) + _up2(trans) * acc)


def _normalise(acc):
    coverage = acc[..., 3:]
    rgb = acc[..., :3] / tf.maximum(coverage, 1e-6)
    return tf.where(coverage > 1e-6, rgb, 0.0)


def render_bokeh_tf(photo, depth, focus_disparity, blur, max_layers=MAX_LAYERS, conv="depthwise"):
    """The classical bokeh of 1 x H x W x 3 sRGB `photo` in [0, 1] with its EBB! `depth`
    (1 x h x w x 1 in [0, 1], near = bright, any size: resized bilinearly to the photo's),
    `focus_disparity` d_f and `blur` K (pixels): `classical.render_bokeh_baseline` with aperture
    K / max(H, W). Returns 1 x H x W x 3 sRGB in [0, 1]."""
    photo = tf.convert_to_tensor(photo, tf.float32)
    depth = tf.convert_to_tensor(depth, tf.float32)
    size = photo.shape[1:3]
    if depth.shape[1:3] != size:
        depth = tf.image.resize(depth, size, method="bilinear")
    out = render_defocus_tf(
        srgb_to_linear_tf(photo), depth, focus_disparity, blur, max_layers, conv
    )
    return linear_to_srgb_tf(out)


def focus_disparity_tf(depth, focus_xy, photo_size, radius=None):
    """d_f for a focus point: `controls.disparity_at` in TF ops. depth: 1 x h x w x 1;
    focus_xy: [x, y] (or 1 x 2) in photo pixels; photo_size: (H, W) of the photo. The median of
    the map over the window around the point, scaled to the map's size and clipped to it."""
    from pynet_bokeh.render.controls import FOCUS_WINDOW_RADIUS

    radius = FOCUS_WINDOW_RADIUS if radius is None else radius
    h, w = photo_size
    dh, dw = int(depth.shape[1]), int(depth.shape[2])
    rx, ry = max(radius * dw / w, 0.5), max(radius * dh / h, 0.5)
    nx, ny = 2 * math.ceil(rx) + 2, 2 * math.ceil(ry) + 2  # at least the window's width
    xy = tf.reshape(tf.cast(focus_xy, tf.float32), [2])
    cx, cy = xy[0] * (dw / w), xy[1] * (dh / h)
    x0, x1 = tf.floor(cx - rx), tf.floor(cx + rx) + 1.0
    y0, y1 = tf.floor(cy - ry), tf.floor(cy + ry) + 1.0
    xs = x0 + tf.range(nx, dtype=tf.float32)
    ys = y0 + tf.range(ny, dtype=tf.float32)
    x_ok = (xs < x1) & (xs >= 0) & (xs < dw)
    y_ok = (ys < y1) & (ys >= 0) & (ys < dh)
    xi = tf.cast(tf.clip_by_value(xs, 0, dw - 1), tf.int32)
    yi = tf.cast(tf.clip_by_value(ys, 0, dh - 1), tf.int32)
    plane = tf.reshape(depth, [dh, dw])
    window = tf.gather(tf.gather(plane, yi, axis=0), xi, axis=1)  # ny x nx
    valid = tf.reshape(y_ok[:, None] & x_ok[None, :], [-1])
    # Invalid cells sort to the end (top_k of the negated values sorts ascending).
    values = tf.where(valid, tf.reshape(window, [-1]), 2.0)
    ascending = -tf.math.top_k(-values, k=nx * ny, sorted=True).values
    n = tf.reduce_sum(tf.cast(valid, tf.int32))
    lower = tf.gather(ascending, (n - 1) // 2)
    upper = tf.gather(ascending, n // 2)
    return 0.5 * (lower + upper)


def classical_graph(height, width, conv="depthwise", max_layers=MAX_LAYERS):
    """The exportable renderer: a function of `image` (1 x H x W x 3 sRGB in [0, 1]), `depth`
    (1 x h x w x 1 EBB! map, any fixed size), `focus_xy` (1 x 2, photo pixels) and `blur`
    (1 x 1, K pixels) returning the 1 x H x W x 3 bokeh image."""

    def render(image, depth, focus_xy, blur):
        d_f = focus_disparity_tf(depth, focus_xy, (height, width))
        return render_bokeh_tf(image, depth, d_f, blur, max_layers, conv)

    return render
