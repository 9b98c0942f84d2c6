"""The README's pictures: photo | depth | classical | PyNET on a synthetic scene, and the demo.

    python scripts/make_readme_figure.py [--pynet_weights PREFIX_OR_H5] [--out docs/images]

Writes `overview.jpg` (the scene the package makes, `data.synthetic.scene_photo_and_depth`
seed 1, rendered by the classical method focused on the nearest shape and by PyNET) and
`demo.jpg` (a screenshot of the demo in headless Chromium after a click and a full-size
render). PyNET's weights: --pynet_weights, else the seed-0 TF1 test checkpoint of
../shared/fixtures/pynet_tf1 (random weights: the tile then says so), else none (the tile
says that too). Each image is kept under 300 KB.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FIXTURE = REPO.parent / "shared" / "fixtures" / "pynet_tf1" / "make_checkpoint.py"
SIZE = (512, 768)
BLUR = 30.0
MAX_BYTES = 300_000


def nearest_shape_point(depth, photo_shape):
    """The photo pixel (x, y) deepest inside the nearest region of the depth map."""
    import cv2
    import numpy as np

    region = (np.abs(depth - depth.max()) <= 2 / 255).astype(np.uint8)
    inside = cv2.distanceTransform(np.pad(region, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(inside), depth.shape)
    return (x + 0.5) * photo_shape[1] / depth.shape[1], (y + 0.5) * photo_shape[0] / depth.shape[0]


def write_small_jpeg(path, image, width):
    """`image` (uint8 RGB) resized to `width` px and saved as JPEG under MAX_BYTES."""
    import cv2

    h, w = image.shape[:2]
    image = cv2.resize(image, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
    for quality in (90, 85, 80, 70, 60):
        ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if len(data) <= MAX_BYTES:
            break
    Path(path).write_bytes(data.tobytes())
    print(f"wrote {path}: {image.shape[1]} x {image.shape[0]}, {len(data) // 1024} KB")


def pynet_tile(photo, depth, weights, work):
    from pynet_bokeh.renderers import get_renderer

    note = ""
    if weights is None and FIXTURE.is_file():
        weights = work / "pynet_bokeh_level_0"
        subprocess.run([sys.executable, str(FIXTURE), str(weights), "--seed", "0"], check=True)
        note = " (seed-0 test weights, NOT trained)"
    if weights is None:
        return photo * 0.0, "PyNET: no weights given"
    return get_renderer("pynet", weights).render(photo, depth), f"PyNET{note}"


def overview(out, weights, work):
    from pynet_bokeh import image_io
    from pynet_bokeh.data.synthetic import scene_photo_and_depth
    from pynet_bokeh.renderers import get_renderer
    from pynet_bokeh.report import panel

    photo, depth = scene_photo_and_depth(1, SIZE)
    point = nearest_shape_point(depth, photo.shape)
    classical = get_renderer("classical").render(photo, depth, focus=point, blur=BLUR)
    pynet, label = pynet_tile(photo, depth, weights, work)
    tiles = [
        (photo, "photo (synthetic scene)"),
        (depth, "depth map (near = bright)"),
        (classical, f"classical, focus ({point[0]:.0f}, {point[1]:.0f}), K = {BLUR:g}"),
        (pynet, label),
    ]
    write_small_jpeg(out / "overview.jpg", panel([tiles], 384), 1536)
    photo_path = image_io.write_image(work / "scene.png", photo)
    depth_path = image_io.write_image(work / "scene_depth.png", depth)
    return photo_path, depth_path, point


def demo_screenshot(out, photo_path, depth_path, point, chromium):
    import imageio.v3 as iio
    from playwright.sync_api import sync_playwright

    from pynet_bokeh.demo.app import launch_demo, stop_demo
    from pynet_bokeh.renderers import get_renderer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = launch_demo({"classical": get_renderer("classical")}, port=port, block=False, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(f"http://127.0.0.1:{port}")
            page.locator("#photo input[type=file]").set_input_files(str(photo_path))
            page.locator("#depth input[type=file]").set_input_files(str(depth_path))
            page.wait_for_function(
                "document.querySelector('#status').innerText.startsWith('preview')"
            )
            img = page.locator("#photo img").first
            box = img.bounding_box()
            x, y = point[0] * box["width"] / SIZE[1], point[1] * box["height"] / SIZE[0]
            img.click(position={"x": x, "y": y})
            page.locator("#blur input[type=range]").fill(str(BLUR))
            page.wait_for_function(
                f"document.querySelector('#status').innerText.includes('K = {BLUR:g}')"
            )
            page.locator("#render").click()
            page.locator("#compare img").first.wait_for(timeout=120_000)
            time.sleep(1.0)
            shot = page.screenshot(full_page=True)
            browser.close()
    finally:
        stop_demo(demo)
    image = iio.imread(shot)[..., :3]
    write_small_jpeg(out / "demo.jpg", image, 1000)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pynet_weights", help="PyNET weights (default: the seed-0 fixture)")
    parser.add_argument("--out", default=str(REPO / "docs" / "images"))
    parser.add_argument(
        "--chromium", default=os.environ.get("PYNET_BOKEH_CHROMIUM", "/usr/bin/chromium")
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="readme_figure_") as tmp:
        photo_path, depth_path, point = overview(out, args.pynet_weights, Path(tmp))
        demo_screenshot(out, photo_path, depth_path, point, args.chromium)


if __name__ == "__main__":
    main()
