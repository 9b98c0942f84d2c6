"""A test scene for the demo: a textured near box in front of a textured far wall."""

import numpy as np

from pynet_bokeh import image_io

HEIGHT, WIDTH = 640, 960
#: The near box (x0, y0, x1, y1) in photo pixels; disparity 0.9 in front of a wall at 0.1.
BOX = (120, 160, 420, 480)
NEAR, FAR = 0.9, 0.1


def make_scene(folder):
    """(photo path, depth path) of the scene written as PNGs in `folder`."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    wall = 0.35 + 0.3 * (((xx // 6 + yy // 6) % 2) * 0.6 + 0.4 * rng.random((HEIGHT, WIDTH)))
    photo = np.repeat(wall[..., None], 3, axis=2) * np.float32([0.7, 0.8, 1.0])
    x0, y0, x1, y1 = BOX
    stripes = 0.5 + 0.4 * np.sin(2 * np.pi * (xx + yy) / 7.0)
    box = stripes[y0:y1, x0:x1, None] * np.float32([1.0, 0.6, 0.3])
    photo[y0:y1, x0:x1] = box + 0.1 * rng.random((y1 - y0, x1 - x0, 1))
    disparity = np.full((HEIGHT, WIDTH), FAR, np.float32)
    disparity[y0:y1, x0:x1] = NEAR
    depth = disparity[::2, ::2]
    photo_path = image_io.write_image(folder / "scene.png", np.clip(photo, 0, 1))
    depth_path = image_io.write_image(folder / "scene_depth.png", depth)
    return photo_path, depth_path


def laplacian_variance(image, region):
    """Variance of the Laplacian of the grey image inside region (x0, y0, x1, y1)."""
    import cv2

    x0, y0, x1, y1 = region
    grey = np.asarray(image, np.float32)[y0:y1, x0:x1].mean(axis=2)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def regions(scale=1.0):
    """(near-box interior, far-wall patch) at `scale` of the photo, away from the edges where
    the blur of one spills onto the other."""
    x0, y0, x1, y1 = BOX
    inner = (x0 + 60, y0 + 60, x1 - 60, y1 - 60)
    wall = (600, 80, 900, 560)
    return tuple(tuple(int(round(v * scale)) for v in r) for r in (inner, wall))


def write_png_bomb(path, width, height):
    """A valid 1-bit PNG of width x height zeros: a few hundred KB on disk that decodes to
    width * height pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    path.write_bytes(png)
    return path
