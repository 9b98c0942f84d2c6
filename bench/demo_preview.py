"""The demo's preview latency with the classical method, measured in a real browser.

    python bench/demo_preview.py [--height 1024 --width 1536 --changes 10]

Serves the demo on a free port, opens it in headless Chromium (Debian's, via Playwright),
uploads a synthetic scene (`data.synthetic.scene_photo_and_depth`, seed 1: textured shapes at
several depths, highlights behind) with its depth map, clicks a focus point, then moves the blur
slider --changes times. For each change it times the page from the slider move to the new
preview's status line (browser -> server -> render -> PNG -> browser) and reads the server's own
render time from that line. Prints the medians as ratios: end-to-end over the 1 s budget, and
the render's share of the end-to-end time.
"""

import argparse
import os
import re
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BUDGET_S = 1.0


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_status(page, blur, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = page.locator("#status").inner_text()
        m = re.match(r"preview .*K = ([\d.]+): ([\d.]+) s", text)
        if m and float(m[1]) == blur:
            return float(m[2])
        time.sleep(0.01)
    raise TimeoutError(f"no preview for K = {blur}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=1536)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument(
        "--chromium", default=os.environ.get("PYNET_BOKEH_CHROMIUM", "/usr/bin/chromium")
    )
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from pynet_bokeh import image_io
    from pynet_bokeh.data.synthetic import scene_photo_and_depth
    from pynet_bokeh.demo.app import launch_demo, stop_demo
    from pynet_bokeh.renderers import get_renderer

    folder = Path(tempfile.mkdtemp(prefix="bench_demo_"))
    photo, depth = scene_photo_and_depth(1, (args.height, args.width))
    photo_path = image_io.write_image(folder / "photo.jpg", photo)
    depth_path = image_io.write_image(folder / "depth.png", depth)
    port = _free_port()
    demo = launch_demo({"classical": get_renderer("classical")}, port=port, block=False, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(f"http://127.0.0.1:{port}")
            page.locator("#photo input[type=file]").set_input_files(photo_path)
            page.locator("#depth input[type=file]").set_input_files(depth_path)
            _wait_status(page, 24.0)
            img = page.locator("#photo img").first
            box = img.bounding_box()
            img.click(position={"x": box["width"] * 0.5, "y": box["height"] * 0.6})
            time.sleep(2.0)
            end_to_end, render = [], []
            for i in range(args.changes):
                blur = 30.0 + 5.0 * i
                start = time.perf_counter()
                page.locator("#blur input[type=range]").fill(str(blur))
                render.append(_wait_status(page, blur))
                end_to_end.append(time.perf_counter() - start)
            browser.close()
    finally:
        stop_demo(demo)
    e2e, server = statistics.median(end_to_end), statistics.median(render)
    h, w = photo.shape[:2]
    print(f"photo {w} x {h}, preview long side 768, classical, {args.changes} slider changes")
    print(f"end-to-end per change (median): {e2e:.3f} s = {e2e / BUDGET_S:.2f} x the 1 s budget")
    print(f"  all: {', '.join(f'{t:.2f}' for t in end_to_end)} s")
    print(f"render on the server (median): {server:.3f} s = {server / e2e:.2f} of end-to-end")
    load = os.getloadavg()[0]
    print(f"load average during the run: {load:.1f} on {os.cpu_count()} cores (others' work)")
    cpu_bound(photo_path, depth_path, args.changes)


def cpu_bound(photo_path, depth_path, changes):
    """The same previews in this process (no browser, no server): wall time and the CPU time
    this process spent (all its threads), which other programs' load does not inflate."""
    import resource

    from pynet_bokeh.demo.backend import DemoBackend
    from pynet_bokeh.renderers import get_renderer

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    backend = DemoBackend({"classical": get_renderer("classical")})
    backend.preview(photo_path, depth_path, 768, 614, 24.0, "classical")  # decode, warm up
    walls, cpus = [], []
    for i in range(changes):
        w0, c0 = time.perf_counter(), cpu()
        backend.preview_file(photo_path, depth_path, 768, 614, 30.0 + 5.0 * i, "classical")
        walls.append(time.perf_counter() - w0)
        cpus.append(cpu() - c0)
    backend.temp.close()
    wall, cpu_s = statistics.median(walls), statistics.median(cpus)
    print(
        f"in-process preview + JPEG (median of {changes}): wall {wall:.3f} s, CPU {cpu_s:.3f} s "
        f"= {cpu_s / BUDGET_S:.2f} x the 1 s budget; wall / CPU = {wall / cpu_s:.2f} (> 1: the "
        "machine's other load)"
    )


if __name__ == "__main__":
    main()
