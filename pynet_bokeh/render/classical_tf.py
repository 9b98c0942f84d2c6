"""The classical renderer (`pynet_bokeh.render.classical`) in TensorFlow ops, for tf.function and
TFLite (builtin ops only).

Same physics as the NumPy reference: radius = (d - d_f) * K pixels (thin lens), the scene cut
into at most `max_layers` layers about one pixel of radius wide (the reference's bins, with the
same data-dependent edges), each layer blurred in linear light by an anti-aliased disc of the
layer's mean radius, composited far to near with "over", coverage normalised away at the end.

Two engines run the same algorithm. `render_bokeh_tf` is one graph (tf.function, the
export): 1 x H x W x 4 images (premultiplied RGB and coverage in the channels: 4-channel
depthwise convolutions, MIRROR_PAD and RESIZE_BILINEAR, the layout LiteRT's kernels run fast),
coarse layers starting from every layer box-averaged 2 x 2 by one segment sum, while loops over
the layers and conds for their grids. `render_bokeh_xla` (the renderer's engine="tf") works on
colour planes (C x H x W x 1: the width is the fastest axis, which XLA vectorises), compiles
each stage of a layer (masked premultiplied image, blur as a sum of shifted slices, compositing)
with XLA on its own, and runs the layer loop in Python: only the layers present are dispatched.
A layer whose radius is at most `FULL_RES_RADIUS` is blurred at full
resolution with its exact disc, on the smallest grid that holds it. A layer of larger radius r
is blurred at scale s = 2^k, the smallest with r / s <= `COARSE_RADIUS`: its mask times the
premultiplied planes is box-averaged s x s, convolved with the disc of radius
sqrt(r^2 - v s^2) / s, where v s^2 (`resample_variance`) is the blur the box average and the
x2 bilinear upsamplings add, and composited at that scale. The far layers are composited back
to front from the coarsest scale down, upsampling the accumulated image x2 between scales; the
near layers front to back (colour and transmittance) the same way; the full-resolution layers
go between. "Over" is associative, so this is the reference's order. The coarse discs are what
costs accuracy (a disc of radius 4 px at its scale has a softer edge than the full-size one):
41 to 54 dB against the reference on the sample photos. Kernels are fixed-size tensors built
from the run-time radius, so the focus and K are graph inputs (the export's `WHILE` loops over
the layers).

The XLA engine is several times faster than TensorFlow's own CPU kernels; its first call per
image size, and per new combination of layer scale and disc grid, compiles.
"""

from __future__ import annotations

import collections
import functools
import math

import tensorflow as tf

__all__ = [
    "disc_kernel_tf",
    "linear_to_srgb_tf",
    "render_bokeh_tf",
    "render_bokeh_xla",
    "render_defocus_tf",
    "srgb_to_linear_tf",
]

MAX_LAYERS = 32
#: Layers of radius (pixels) up to this are blurred at full resolution.
FULL_RES_RADIUS = 2.5
#: The largest disc radius, in its own scale's pixels, a coarser scale blurs with.
COARSE_RADIUS = 4.0
#: The coarsest scale, 2^MAX_LEVEL: radii up to COARSE_RADIUS * 64 = 256 px.
MAX_LEVEL = 6


def srgb_to_linear_tf(x):
    """sRGB in [0, 1] -> linear light (IEC 61966-2-1), as `classical.srgb_to_linear`."""
    x = tf.convert_to_tensor(x, tf.float32)
    # exp(2.4 log(.)) rather than pow: several times faster under XLA, the same values
    high = tf.exp(2.4 * tf.math.log((tf.maximum(x, 0.04045) + 0.055) / 1.055))
    return tf.where(x <= 0.04045, x / 12.92, high)


def linear_to_srgb_tf(x):
    """Linear light -> sRGB, clipped to [0, 1] first, as `classical.linear_to_srgb`."""
    x = tf.clip_by_value(tf.convert_to_tensor(x, tf.float32), 0.0, 1.0)
    high = 1.055 * tf.exp(tf.math.log(tf.maximum(x, 0.0031308)) / 2.4) - 0.055
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


def _planes(conv):
    """Whether `conv` works on colour planes (C x H x W x 1, the XLA engine) rather than
    channels-last images (1 x H x W x C, the export: what XNNPACK's kernels run fast)."""
    return conv == "xla"


def _channels(x, start, stop=None):
    """Channels start:stop of planes (C x H x W x 1) or of a 1 x H x W x C image."""
    if int(x.shape[-1]) == 1:
        return x[start:stop]
    return x[..., start:stop]


def _pad(planes, half, conv="xla"):
    """Reflect-101 padding (cv2.BORDER_REFLECT_101) of the H and W axes.

    For the planes layout built from reversed edge strips and concatenations (XLA's own
    REFLECT pad is several times slower); for the export one MIRROR_PAD."""
    if half == 0:
        return planes
    if not _planes(conv):
        return tf.pad(planes, [[0, 0], [half, half], [half, half], [0, 0]], mode="REFLECT")
    rows = [tf.reverse(planes[:, 1 : half + 1], [1]), planes]
    rows.append(tf.reverse(planes[:, -half - 1 : -1], [1]))
    planes = tf.concat(rows, axis=1)
    cols = [tf.reverse(planes[:, :, 1 : half + 1], [2]), planes]
    cols.append(tf.reverse(planes[:, :, -half - 1 : -1], [2]))
    return tf.concat(cols, axis=2)


def _blur_padded(padded, radius, half, conv):
    """Disc blur of C x (H + 2 half) x (W + 2 half) x 1 padded planes -> C x H x W x 1.

    conv="depthwise": one depthwise convolution (what LiteRT / XNNPACK run fast);
    "xla": a sum of shifted slices, one per tap inside the disc's grid (what XLA fuses into
    one loop; TensorFlow's own CPU depthwise kernel is many times slower).
    """
    kernel = disc_kernel_tf(tf.minimum(radius, half + 0.5), half)
    h, w = int(padded.shape[1]) - 2 * half, int(padded.shape[2]) - 2 * half
    if _planes(conv):
        out = None
        for dy in range(2 * half + 1):
            for dx in range(2 * half + 1):
                if (dy - half) ** 2 + (dx - half) ** 2 >= (half + 1) ** 2:
                    continue  # beyond radius + 0.5 for every radius this grid holds: zero
                tap = padded[:, dy : dy + h, dx : dx + w] * kernel[dy, dx]
                out = tap if out is None else out + tap
        return out
    weights = tf.tile(kernel[:, :, None, None], [1, 1, int(padded.shape[-1]), 1])
    return tf.nn.depthwise_conv2d(padded, weights, [1, 1, 1, 1], "VALID")


def _crop(padded, by):
    h, w = int(padded.shape[1]) - 2 * by, int(padded.shape[2]) - 2 * by
    return padded[:, by : by + h, by : by + w] if by else padded


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


def resample_variance(level):
    """The blur that computing a layer at scale s = 2^level adds, as r^2 / s^2 of a disc.

    Per axis a disc of radius r has variance r^2 / 4; the s x s box average adds s^2 / 12 and
    each x2 bilinear upsampling from level l about (3 / 16) 4^l (its taps 3/4, 1/4), so the
    disc at scale s gets radius sqrt(r^2 - resample_variance(level) s^2) / s.
    """
    return 4.0 / 3.0 - 4.0**-level


def coarse_disc_radius(mean_radius, level):
    """The disc radius, in pixels of scale 2^level, that blurs a layer of signed mean radius
    `mean_radius` (full-resolution pixels) computed at that scale (`resample_variance`);
    float32 tensor ops, in the graph and for the XLA engine's host loop alike."""
    s = 2**level
    r2 = tf.square(tf.cast(mean_radius, tf.float32)) - resample_variance(level) * s * s
    return tf.sqrt(tf.maximum(r2, 0.25)) / s


def _up2(x, conv="xla"):
    """x2 bilinear upsampling of the H and W axes, half-pixel centres and clamped edges
    (`tf.image.resize` bilinear and cv2.INTER_LINEAR): each output pixel is 3/4 of its source
    pixel and 1/4 of the next one outwards. Written out for XLA (its resize is ~50x slower);
    the export's RESIZE_BILINEAR is what XNNPACK runs."""
    if not _planes(conv):
        h, w = int(x.shape[1]), int(x.shape[2])
        return tf.image.resize(x, (2 * h, 2 * w), method="bilinear")

    def along(x, axis):
        def part(start, stop):
            index = [slice(None)] * 4
            index[axis] = slice(start, stop)
            return x[tuple(index)]

        first, last = part(0, 1), part(-1, None)
        head, tail = part(0, -1), part(1, None)
        before = tf.concat([first, head], axis=axis)
        after = tf.concat([tail, last], axis=axis)
        even, odd = 0.75 * x + 0.25 * before, 0.75 * x + 0.25 * after
        shape = [int(d) for d in x.shape]
        shape[axis] *= 2
        return tf.reshape(tf.stack([even, odd], axis=axis + 1), shape)

    return along(along(x, 1), 2)


def _over(acc, layer):
    return acc * (1.0 - _channels(layer, 3)) + layer


# The per-layer work in stages: premultiplied layer, blur, compositing. The XLA engine compiles
# each stage on its own (`_xla`): one XLA cluster for a whole layer fuses the stages into one
# loop that recomputes the mask, pooling and taps for every use (10x slower; blur and "over"
# fused recompute the coverage's taps for every colour plane: 5x slower).


def _to_blocks(bins, data, scale):
    """Bins (1 x H x W x 1) and colour planes (data's first 3) as scale^2 sub-pixel planes:
    scale^2 x 1 x H/s x W/s and scale^2 x 3 x H/s x W/s (entry dy * scale + dx holds the pixels
    (s y + dy, s x + dx)). A box average over s x s is then a sum over the first axis, which
    XLA vectorises along the width (a sum over a reshaped s-wide minor axis runs ~3x slower)."""
    h, w = int(data.shape[1]) // scale, int(data.shape[2]) // scale

    def split(x):
        c = int(x.shape[0])
        x = tf.reshape(x, [c, h, scale, w, scale])
        return tf.reshape(tf.transpose(x, [2, 4, 0, 1, 3]), [scale * scale, c, h, w])

    return split(tf.transpose(bins, [3, 1, 2, 0])), split(data[:3])


def _coarse_premult(bins_blocks, data_blocks, b, half):
    """Layer `b`'s premultiplied planes (4 x H/s x W/s x 1) box-averaged s x s from the
    sub-pixel planes of `_to_blocks`, reflect-padded by half."""
    mask = tf.cast(tf.equal(bins_blocks, tf.cast(b, bins_blocks.dtype)), tf.float32)
    blocks = tf.concat([data_blocks * mask, mask], axis=1)
    premult = tf.reduce_sum(blocks, 0) * (1.0 / int(bins_blocks.shape[0]))
    return _pad(premult[..., None], half, "xla")


def _layers_x2(bins, data, max_layers):
    """Every layer's premultiplied 1 x H x W x 4 image box-averaged 2 x 2, in one pass:
    max_layers x H/2 x W/2 x 4 (the export's coarse layers start from these rather than from
    a full-resolution mask per layer). Segment id = layer * blocks + block; the block index is
    a row and a column term, not one H x W map, which the converter would store as a constant
    (and the maximum keeps it from folding the two terms into one)."""
    h, w = int(data.shape[1]), int(data.shape[2])
    hh, ww = h // 2, w // 2
    rows = (tf.range(h) // 2) * ww
    ids = tf.maximum(bins[0, :, :, 0] * (hh * ww) + rows[:, None], 0) + tf.range(w)[None] // 2
    sums = tf.math.unsorted_segment_sum(
        tf.reshape(data * 0.25, [-1, 4]), tf.reshape(ids, [-1]), max_layers * hh * ww
    )
    return tf.reshape(sums, [max_layers, hh, ww, 4])


def _sharp_premult(bins_pad, data_pad, b):
    """Layer `b`'s premultiplied planes, padded (from the padded bins and planes)."""
    if int(data_pad.shape[-1]) == 1:
        return _masked_planes(bins_pad, data_pad, b)
    return data_pad * tf.cast(tf.equal(bins_pad, b), tf.float32)


def _masked_planes(bins, data, b):
    """Colour planes times layer `b`'s mask, and the mask as coverage: what data * mask is
    (data's last plane is ones) without reading that plane; bins may be int32 or uint8."""
    mask = tf.cast(tf.equal(bins, tf.cast(b, bins.dtype)), tf.float32)
    return tf.concat([data[:3] * mask, mask], axis=0)


def _under(color, trans, layer):
    """Front-to-back compositing: `layer` goes under `color` (transmittance `trans`); returns
    the new colour and transmittance."""
    return color + trans * layer, trans * (1.0 - _channels(layer, 3))


_STAGES = collections.OrderedDict()
#: Compiled stages kept (least recently used dropped): a folder of photos of many sizes would
#: otherwise keep every size's executables.
MAX_COMPILED_STAGES = 512


def _xla(fn):
    """`fn` XLA-compiled: one tf.function per function and argument shapes (each compiles
    once; one retraced for every shape would warn)."""

    def compiled(*args):
        key = (fn, *(tuple(a.shape) if hasattr(a, "shape") else a for a in args))
        if key in _STAGES:
            _STAGES.move_to_end(key)
        else:
            # a new callable per key: TensorFlow counts retracings per Python callable
            _STAGES[key] = tf.function(functools.partial(fn), jit_compile=True)
            if len(_STAGES) > MAX_COMPILED_STAGES:
                _STAGES.popitem(last=False)
        return _STAGES[key](*args)

    return compiled


def render_defocus_tf(linear, disparity, focus_disparity, blur, max_layers=MAX_LAYERS):
    """Defocus of 1 x H x W x 3 linear light with its 1 x H x W x 1 disparity map (the photo's
    size); `focus_disparity` and `blur` (K pixels) are scalars. Returns linear light.

    H and W should be even (multiples of 64 use every scale); otherwise everything is blurred
    at full resolution, and a radius above FULL_RES_RADIUS is clipped to it.
    """
    linear = tf.convert_to_tensor(linear, tf.float32)
    return _render_graph(linear, disparity, focus_disparity, blur, max_layers)


def _layer_plan(disparity, focus_disparity, blur, max_layers, top):
    """The layers: each pixel's bin (1 x H x W x 1 int32), the number of bins, a ones map
    (from an input: the converter stores no constant), and per bin its mean signed radius,
    the level its blur is computed at (0: full resolution) and whether it has pixels."""
    focus_disparity = tf.reshape(tf.cast(focus_disparity, tf.float32), [])
    k = tf.reshape(tf.cast(blur, tf.float32), [])
    radius = (disparity - focus_disparity) * k
    lo, hi = tf.reduce_min(radius), tf.reduce_max(radius)
    n_bins = tf.clip_by_value(tf.math.ceil(hi - lo), 1.0, float(max_layers))
    width = tf.maximum((hi - lo) / n_bins, 1e-6)
    bins = tf.cast(tf.clip_by_value(tf.floor((radius - lo) / width), 0.0, n_bins - 1.0), tf.int32)
    ones = tf.cast(bins >= 0, tf.float32)
    flat_bins = tf.reshape(bins, [-1])
    count = tf.math.unsorted_segment_sum(tf.reshape(ones, [-1]), flat_bins, max_layers)
    total = tf.math.unsorted_segment_sum(tf.reshape(radius, [-1]), flat_bins, max_layers)
    mean_r = total / tf.maximum(count, 1.0)
    layer_radius = tf.abs(mean_r)
    coarse_level = tf.math.ceil(
        tf.math.log(tf.maximum(layer_radius, 1e-6) / COARSE_RADIUS) / math.log(2.0)
    )
    level = tf.where(
        layer_radius <= FULL_RES_RADIUS,
        0,
        tf.cast(tf.clip_by_value(coarse_level, 1.0, float(max(top, 1))), tf.int32),
    )
    return bins, tf.cast(n_bins, tf.int32), ones, mean_r, tf.minimum(level, top), count > 0


def _render_graph(linear, disparity, focus_disparity, blur, max_layers):
    """render_defocus_tf as one graph (while loops over the layers, conds for their grids):
    1 x H x W x 3 linear light and its 1 x H x W x 1 disparity map -> linear light."""
    conv = "depthwise"
    h, w = int(linear.shape[1]), int(linear.shape[2])
    top = _levels(h, w)
    half0, half_c = _half(FULL_RES_RADIUS), _half(COARSE_RADIUS)
    bins, n_bins, ones, mean_r, level, present = _layer_plan(
        disparity, focus_disparity, blur, max_layers, top
    )
    layer_radius = tf.abs(mean_r)
    far = mean_r < 0
    # Premultiplied colour and coverage (1 x H x W x 4), padded once for the full-resolution
    # kernels: a layer's mask times these is its padded premultiplied image.
    data = tf.concat([linear, ones], axis=3)
    data_pad, bins_pad = _pad(data, half0, conv), _pad(bins, half0, conv)

    def zeros(lv):
        return tf.zeros([1, h >> lv, w >> lv, 4])

    def up2(x):
        return _up2(x, conv)

    if top > 0:
        layers_x2 = _layers_x2(bins, data, max_layers)

    def coarse_premult(b, lv):
        premult = layers_x2[b][None]
        if lv > 1:
            premult = tf.nn.avg_pool2d(premult, 2 ** (lv - 1), 2 ** (lv - 1), "VALID")
        return _pad(premult, half_c, conv)

    def loop(state, first, last, step, body_fn, selected):
        """body_fn(b, *state) over the selected bins first, first + step, ... (last excluded)."""

        def body(b, *acc):
            out = tf.cond(selected(b), lambda: body_fn(b, *acc), lambda: tuple(acc))
            return (b + step, *out)

        def more(b, *_):
            return b < last if step > 0 else b > last

        return tf.while_loop(more, body, (first, *state))[1:]

    # Far layers, back to front, coarsest scale first.
    acc = None
    for lv in range(top, 0, -1):
        if acc is None:
            acc = zeros(lv)
        else:
            acc = up2(acc)

        def far_over(b, a, lv=lv):
            return (
                _over(
                    a,
                    _blur_padded(
                        coarse_premult(b, lv), coarse_disc_radius(mean_r[b], lv), half_c, conv
                    ),
                ),
            )

        (acc,) = loop(
            (acc,),
            tf.constant(0),
            n_bins,
            1,
            far_over,
            lambda b, lv=lv: present[b] & far[b] & tf.equal(level[b], lv),
        )
    acc = data * 0.0 if acc is None else up2(acc)

    # Layers near the focal plane at full resolution, back to front; the disc's grid is the
    # smallest that holds the layer's radius.
    def sharp_over(b, a):
        padded = _sharp_premult(bins_pad, data_pad, b)
        r = layer_radius[b]

        def blurred(half):
            if half == 0:
                return lambda: _over(a, _crop(padded, half0))
            return lambda: _over(a, _blur_padded(_crop(padded, half0 - half), r, half, conv))

        def smallest(half):
            if half == half0:
                return blurred(half)()
            return tf.cond(r <= half + 0.5, blurred(half), lambda: smallest(half + 1))

        return (smallest(0),)

    (acc,) = loop(
        (acc,), tf.constant(0), n_bins, 1, sharp_over, lambda b: present[b] & tf.equal(level[b], 0)
    )
    if top == 0:
        return _normalise(acc)

    # Near layers, front to back (colour and transmittance), coarsest scale first.
    color = trans = None
    for lv in range(top, 0, -1):
        if color is None:
            color, trans = zeros(lv), tf.ones([1, h >> lv, w >> lv, 1])
        else:
            color, trans = up2(color), up2(trans)

        def near_under(b, c, t, lv=lv):
            premult = coarse_premult(b, lv)
            return _under(
                c, t, _blur_padded(premult, coarse_disc_radius(mean_r[b], lv), half_c, conv)
            )

        color, trans = loop(
            (color, trans),
            n_bins - 1,
            -1,
            -1,
            near_under,
            lambda b, lv=lv: present[b] & ~far[b] & tf.equal(level[b], lv),
        )
    return _normalise(up2(color) + up2(trans) * acc)


def _normalise(acc):
    coverage = _channels(acc, 3)
    rgb = _channels(acc, 0, 3) / tf.maximum(coverage, 1e-6)
    return tf.where(coverage > 1e-6, rgb, 0.0)


def _depth_to_photo(depth, size, conv):
    """A 1 x h x w x 1 depth map resized bilinearly to the photo's H x W."""
    if depth.shape[1:3] == (size[0] // 2, size[1] // 2) and size[0] % 2 == size[1] % 2 == 0:
        return _up2(depth, conv)  # the EBB! map: half the photo's size
    if depth.shape[1:3] != size:
        return tf.image.resize(depth, size, method="bilinear")
    return depth


def render_bokeh_tf(photo, depth, focus_disparity, blur, max_layers=MAX_LAYERS):
    """The classical bokeh of 1 x H x W x 3 sRGB `photo` in [0, 1] with its EBB! `depth`
    (1 x h x w x 1 in [0, 1], near = bright, any size: resized bilinearly to the photo's),
    `focus_disparity` d_f and `blur` K (pixels): `classical.render_bokeh_baseline` with aperture
    K / max(H, W). Returns 1 x H x W x 3 sRGB in [0, 1]. One graph (tf.function, export);
    `render_bokeh_xla` is the fast eager engine."""
    photo = tf.convert_to_tensor(photo, tf.float32)
    depth = _depth_to_photo(tf.convert_to_tensor(depth, tf.float32), photo.shape[1:3], "depthwise")
    out = _render_graph(srgb_to_linear_tf(photo), depth, focus_disparity, blur, max_layers)
    return linear_to_srgb_tf(out)


def _prepare(photo, depth, focus_disparity, blur, max_layers, top):
    """The XLA engine's first stage: the linear colour and coverage planes (4 x H x W x 1) of
    a 1 x H x W x 3 sRGB photo, and the layer plan (`_layer_plan`) from its depth map."""
    planes = srgb_to_linear_tf(tf.transpose(photo, [3, 1, 2, 0]))
    disparity = _depth_to_photo(depth, photo.shape[1:3], "xla")
    bins, _, ones, mean_r, level, present = _layer_plan(
        disparity, focus_disparity, blur, max_layers, top
    )
    # uint8 bins (when they fit): a quarter of the bytes each layer's mask reads
    bins = tf.cast(bins, tf.uint8) if max_layers <= 256 else bins
    return tf.concat([planes, ones], axis=0), bins, mean_r, level, present


def _finish(acc, color=None, trans=None):
    """The XLA engine's last stage: the full-resolution composite of the far and in-focus
    layers (`acc`) under the near ones (`color`, `trans`, one level coarser), normalised,
    as a 1 x H x W x 3 sRGB image."""
    if color is not None:
        acc = _up2(color) + _up2(trans) * acc
    return tf.transpose(linear_to_srgb_tf(_normalise(acc)), [3, 1, 2, 0])


def _sharp_premult_cropped(bins_pad, data_pad, b, by):
    return _crop(_sharp_premult(bins_pad, data_pad, b), by)


def render_bokeh_xla(photo, depth, focus_disparity, blur, max_layers=MAX_LAYERS):
    """`render_bokeh_tf`'s image (same arguments and result) from XLA-compiled stages, with
    the layer loop run from Python (eagerly): only the layers present are dispatched, and each
    coarse layer is blurred on the smallest grid that holds its disc (a graph's while loops and
    conds cost more on CPU than the work they skip). The renderer's engine="tf" uses this;
    inside a tf.function (or for export) use `render_bokeh_tf`."""
    photo = tf.convert_to_tensor(photo, tf.float32)
    depth = tf.convert_to_tensor(depth, tf.float32)
    h, w = int(photo.shape[1]), int(photo.shape[2])
    top = _levels(h, w)
    half0, half_c = _half(FULL_RES_RADIUS), _half(COARSE_RADIUS)
    plan = _xla(_prepare)(
        photo,
        depth,
        tf.cast(focus_disparity, tf.float32),
        tf.cast(blur, tf.float32),
        max_layers,
        top,
    )
    data, bins = plan[:2]
    mean_r, level, present = (t.numpy() for t in plan[2:])
    layers = [b for b in range(max_layers) if present[b]]
    up2 = _xla(_up2)

    def blurred(padded, radius, half):
        if half == 0:
            return padded
        return _xla(_blur_padded)(padded, tf.constant(radius, tf.float32), half, "xla")

    def over(acc, padded, radius, half):
        return _xla(_over)(acc, blurred(padded, radius, half))

    def under(color, trans, padded, radius, half):
        return _xla(_under)(color, trans, blurred(padded, radius, half))

    blocks = {}  # level -> sub-pixel planes of the bins and colours

    def coarse(b, lv):
        """Layer b's premultiplied planes at scale 2^lv, padded, its disc radius and grid."""
        radius = float(coarse_disc_radius(mean_r[b], lv))
        half = min(_half(radius), half_c)
        if lv not in blocks:
            blocks[lv] = _xla(_to_blocks)(bins, data, 2**lv)
        premult = _xla(_coarse_premult)(*blocks[lv], tf.constant(b), half)
        return premult, radius, half

    acc = None
    for lv in range(top, 0, -1):  # far layers, back to front, coarsest scale first
        acc = tf.zeros([4, h >> lv, w >> lv, 1]) if acc is None else up2(acc)
        for b in layers:
            if level[b] == lv and mean_r[b] < 0:
                acc = over(acc, *coarse(b, lv))
    acc = tf.zeros_like(data) if acc is None else up2(acc)
    sharp = [b for b in layers if level[b] == 0]
    if sharp:
        pad = _xla(_pad)
        data_pad, bins_pad = pad(data, half0), pad(bins, half0)
        for b in sharp:
            radius = abs(float(mean_r[b]))
            half = min(_half(radius), half0)
            padded = _xla(_sharp_premult_cropped)(bins_pad, data_pad, tf.constant(b), half0 - half)
            acc = over(acc, padded, radius, half)
    if top == 0:
        return _xla(_finish)(acc)
    color = trans = None
    for lv in range(top, 0, -1):  # near layers, front to back
        if color is None:
            color, trans = tf.zeros([4, h >> lv, w >> lv, 1]), tf.ones([1, h >> lv, w >> lv, 1])
        else:
            color, trans = up2(color), up2(trans)
        for b in reversed(layers):
            if level[b] == lv and mean_r[b] >= 0:
                color, trans = under(color, trans, *coarse(b, lv))
    return _xla(_finish)(acc, color, trans)


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


def classical_graph(height, width, max_layers=MAX_LAYERS):
    """The exportable renderer: a function of `image` (1 x H x W x 3 sRGB in [0, 1]), `depth`
    (1 x h x w x 1 EBB! map, any fixed size), `focus_xy` (1 x 2, photo pixels) and `blur`
    (1 x 1, K pixels) returning the 1 x H x W x 3 bokeh image."""

    def render(image, depth, focus_xy, blur):
        d_f = focus_disparity_tf(depth, focus_xy, (height, width))
        return render_bokeh_tf(image, depth, d_f, blur, max_layers)

    return render
