"""The demo in a real browser (headless Debian Chromium driven by Playwright) and its `render`
API called with gradio_client: click the focus, slide the blur, check the pixels.

Needs Debian's chromium (`apt-get install -y chromium`; .ci/run installs it) or the path in
PYNET_BOKEH_CHROMIUM. The screenshot is kept under the test's tmp dir and, when the variable
PYNET_BOKEH_ARTIFACTS names a folder, there too.
"""

import io
import os
import re
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio", reason="the demo extra: pip install -e '.[demo]'")

from demo_scene import (  # noqa: E402
    BOX,
    HEIGHT,
    WIDTH,
    laplacian_variance,
    make_scene,
    regions,
    write_png_bomb,
)

CHROMIUM = os.environ.get("PYNET_BOKEH_CHROMIUM", "/usr/bin/chromium")
CLICK_NEAR = (270, 320)  # inside BOX, photo pixels
CLICK_FAR = (750, 320)  # on the wall
BLUR = 40.0


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("demo_scene"))


@pytest.fixture(scope="module")
def server():
    from pynet_bokeh.demo.app import launch_demo, stop_demo
    from pynet_bokeh.renderers import get_renderer

    renderers = {"classical": get_renderer("classical"), "identity": get_renderer("identity")}
    port = _free_port()
    demo = launch_demo(renderers, port=port, block=False, quiet=True)
    assert demo.server_name == "127.0.0.1"  # this machine only, unless --host says otherwise
    yield f"http://127.0.0.1:{port}", demo
    temp_root = demo.backend.temp.root
    stop_demo(demo)
    assert not temp_root.exists()  # the demo's temp files are gone with it


@pytest.fixture(scope="module")
def browser():
    if not os.path.isfile(CHROMIUM):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: apt-get install -y chromium (Debian), or set "
            "PYNET_BOKEH_CHROMIUM to its path"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _status_after(page, focus=None, blur=None, timeout_s=60):
    """Waits for the status line of a finished preview whose focus lies within 3 px of
    `focus` and whose K is `blur` (each when given); returns it."""
    status = page.locator("#status")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = status.inner_text()
        m = re.match(r"preview .*focus \((\d+), (\d+)\), K = ([\d.]+):", text)
        if m and (focus is None or max(abs(float(m[i + 1]) - focus[i]) for i in (0, 1)) <= 3):
            if blur is None or float(m[3]) == blur:
                return text
        time.sleep(0.05)
    raise AssertionError(f"no preview for focus {focus}, K {blur}; last: {status.inner_text()!r}")


def _preview(page):
    import imageio.v3 as iio

    src = page.locator("#preview img").first.get_attribute("src")
    return iio.imread(io.BytesIO(page.request.get(src).body())).astype(np.float32) / 255.0


def _click_photo(page, point):
    img = page.locator("#photo img").first
    box = img.bounding_box()
    img.click(
        position={"x": point[0] * box["width"] / WIDTH, "y": point[1] * box["height"] / HEIGHT}
    )


def _sharpness(image, photo, scale):
    """(near box, far wall) Laplacian variance of `image` over the photo's, at `scale`."""
    from pynet_bokeh.demo.backend import resize_area

    small = resize_area(photo, scale)
    return tuple(
        laplacian_variance(image, r) / laplacian_variance(small, r) for r in regions(scale)
    )


def _wait_text(locator, contains, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if contains in locator.inner_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"never showed {contains!r}; last: {locator.inner_text()!r}")


def test_click_focus_and_slide_blur_in_browser(server, browser, scene, tmp_path):
    from pynet_bokeh import image_io

    url, _ = server
    photo_path, depth_path = scene
    photo = image_io.read_photo(photo_path)
    scale = 768 / WIDTH
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    page.goto(url)
    page.locator("#photo input[type=file]").set_input_files(str(photo_path))
    _wait_text(page.locator("#status"), "No depth map")
    page.locator("#fallback").click()  # the labelled geometric prior
    _wait_text(page.locator("#depth"), "GEOMETRIC FALLBACK")
    _status_after(page, focus=(WIDTH / 2, HEIGHT / 2))  # the photo's centre until a click
    page.locator("#depth input[type=file]").set_input_files(str(depth_path))
    deadline = time.monotonic() + 30
    while "FALLBACK" in page.locator("#depth").inner_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "FALLBACK" not in page.locator("#depth").inner_text()  # a real map replaced it

    _click_photo(page, CLICK_NEAR)
    _status_after(page, focus=CLICK_NEAR)
    assert abs(float(page.locator("#focus_x input").input_value()) - CLICK_NEAR[0]) <= 3
    assert abs(float(page.locator("#focus_y input").input_value()) - CLICK_NEAR[1]) <= 3

    page.locator("#blur input[type=range]").fill(str(BLUR))  # move the slider
    text = _status_after(page, focus=CLICK_NEAR, blur=BLUR)
    assert "768 x 512" in text
    near, far = _sharpness(_preview(page), photo, scale)
    print(f"\nfocus on the box: box sharpness {near:.4f}, wall {far:.4f} (of the photo's)")
    assert near > 0.8  # the clicked box stays sharp
    assert far < 0.1  # the wall behind it is blurred

    _click_photo(page, CLICK_FAR)
    _status_after(page, focus=CLICK_FAR, blur=BLUR)
    near2, far2 = _sharpness(_preview(page), photo, scale)
    print(f"focus on the wall: box sharpness {near2:.4f}, wall {far2:.4f}")
    assert far2 > 0.8 and near2 < 0.1  # swapped

    _click_photo(page, CLICK_NEAR)  # back on the box, then the full-size render
    _status_after(page, focus=CLICK_NEAR, blur=BLUR)
    page.locator("#render").click()
    page.locator("#compare img").first.wait_for(timeout=60_000)
    page.locator("#dl:not([disabled])").wait_for(timeout=30_000)
    import imageio.v3 as iio

    full_src = page.locator("#full img").first.get_attribute("src")
    full = iio.imread(io.BytesIO(page.request.get(full_src).body()))
    assert full.shape == (HEIGHT, WIDTH, 3)
    time.sleep(0.5)  # let the before/after slider finish drawing
    shot = tmp_path / "demo_screenshot.png"
    page.screenshot(path=str(shot), full_page=True)

    page.locator("#method input").click()
    page.get_by_role("option", name="identity: the photo unchanged").click()
    _wait_text(page.locator("#method_note"), "identity takes no focus or blur")
    page.close()
    artefacts = os.environ.get("PYNET_BOKEH_ARTIFACTS")
    if artefacts:
        Path(artefacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artefacts) / shot.name)


def test_render_endpoint_with_gradio_client(server, scene):
    from gradio_client import Client, handle_file

    from pynet_bokeh import image_io

    url, _ = server
    photo_path, depth_path = scene
    photo = image_io.read_photo(photo_path)
    client = Client(url, verbose=False)
    out_path = client.predict(
        handle_file(str(photo_path)),
        handle_file(str(depth_path)),
        CLICK_NEAR[0],
        CLICK_NEAR[1],
        BLUR,
        "classical",
        api_name="/render",
    )
    out = image_io.read_photo(out_path)
    assert out.shape == (HEIGHT, WIDTH, 3)  # full size, not the 768-px preview
    near, far = _sharpness(out, photo, 1.0)
    print(f"\n/render, focus on the box: box sharpness {near:.4f}, wall {far:.4f}")
    assert near > 0.9 and far < 0.1
    x0, y0, x1, y1 = BOX
    inner = photo[y0 + 60 : y1 - 60, x0 + 60 : x1 - 60]
    assert np.abs(out[y0 + 60 : y1 - 60, x0 + 60 : x1 - 60] - inner).max() < 0.02


def test_oversized_upload_gets_a_message_and_the_server_lives(server, scene, tmp_path):
    from gradio_client import Client, handle_file

    url, _ = server
    _, depth_path = scene
    bomb = write_png_bomb(tmp_path / "bomb.png", 30_000, 30_000)
    assert bomb.stat().st_size < 2_000_000  # small on disk, 900 MP decoded
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match=r"bomb.png is 30000 x 30000 pixels \(900 MP\)"):
        client.predict(
            handle_file(str(bomb)),
            handle_file(str(depth_path)),
            10,
            10,
            5.0,
            "classical",
            api_name="/render",
        )
    assert client.view_api(print_info=False, return_format="dict")["named_endpoints"][
        "/render"
    ]  # still serving
