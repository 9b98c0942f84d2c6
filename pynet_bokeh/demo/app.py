"""The demo page (Gradio): upload a photo and its depth map, click the focus, slide the blur.

    from pynet_bokeh.demo import build_demo, launch_demo
    launch_demo({"classical": get_renderer("classical")})     # http://127.0.0.1:7860

The page previews at a long side of `backend.PREVIEW_LONG_SIDE` px on every change; "Render
full size" renders at the photo's resolution (before/after slider, download). The same render
is the API endpoint `render` (photo, depth map, focus_x, focus_y, blur, method) -> image:

    from gradio_client import Client, handle_file
    Client("http://127.0.0.1:7860").predict(handle_file("p.jpg"), handle_file("p.png"),
                                            640, 400, 24.0, "classical", api_name="/render")
"""

import numpy as np

from pynet_bokeh import image_io
from pynet_bokeh.demo import uploads
from pynet_bokeh.demo.backend import PREVIEW_LONG_SIDE, DemoBackend, method_note
from pynet_bokeh.errors import PynetBokehError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_BLUR = 24.0
MAX_BLUR = 120.0
#: Gradio's copies of uploads and outputs older than this are deleted (checked as often).
CACHE_MAX_AGE_S = 3600

INTRO = f"""# pynet-bokeh: click the focus, slide the blur
Upload a photo and its depth map (8-bit, near = bright; or let a depth model make one), then
**click on the photo** where it should be sharp and move **Blur K** (the circle-of-confusion
radius in pixels, at full size, one unit of disparity from the focus). The preview is rendered
at {PREVIEW_LONG_SIDE} px; **Render full size** renders at the photo's resolution."""


def _errors_as_messages(fn):
    """Runs `fn`, turning the package's errors into a message on the page (gr.Error)."""
    import functools

    import gradio as gr

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (PynetBokehError, image_io.ImageFileError, FileNotFoundError, ValueError) as err:
            raise gr.Error(str(err), print_exception=False) from None

    return run


def build_demo(renderers, depth_model=None, temp=None):
    """The page as a `gr.Blocks` (not launched). `renderers`: name -> Renderer, the method
    picker's entries in order; `depth_model`: a `demo.depth.DepthModel` for photos uploaded
    without a depth map, or None (the page then offers the labelled geometric fallback)."""
    import gradio as gr
    from PIL import Image

    from pynet_bokeh.demo.depth import FALLBACK_LABEL, fallback_depth

    # Gradio opens each upload with PIL (header only) before our handlers run; PIL's own
    # decompression-bomb check would refuse it there in its words. Every upload is checked by
    # uploads.image_size before any pixel is decoded, so PIL's check is left to ours.
    Image.MAX_IMAGE_PIXELS = None
    backend = DemoBackend(renderers, depth_model, temp)
    names = list(backend.renderers)
    choices = [(f"{n}: {r.description}", n) for n, r in backend.renderers.items()]
    depth_label = "Depth map (8-bit, near = bright)"
    if depth_model is not None:
        depth_label += f": made by {depth_model.description} unless you upload one"

    with gr.Blocks(
        title="pynet-bokeh demo", delete_cache=(CACHE_MAX_AGE_S, CACHE_MAX_AGE_S)
    ) as demo:
        demo.backend = backend
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column():
                photo = gr.Image(
                    type="filepath",
                    image_mode=None,  # Gradio then hands over the file undecoded: we check it
                    sources=["upload", "clipboard"],
                    label="Photo: click to set the focus",
                    elem_id="photo",
                )
                depth = gr.Image(
                    type="filepath",
                    image_mode=None,
                    format="png",
                    sources=["upload", "clipboard"],
                    label=depth_label,
                    elem_id="depth",
                )
                fallback = gr.Button(
                    "No depth map? Use the geometric fallback (NOT a depth estimate)",
                    size="sm",
                    elem_id="fallback",
                )
            with gr.Column():
                preview = gr.Image(
                    label=f"Preview (long side {PREVIEW_LONG_SIDE} px)",
                    type="filepath",  # a JPEG the backend writes (fast; see preview_file)
                    interactive=False,
                    elem_id="preview",
                )
                status = gr.Markdown("Upload a photo to start.", elem_id="status")
        with gr.Row():
            method = gr.Dropdown(choices, value=names[0], label="Method", elem_id="method")
            blur = gr.Slider(
                0.0,
                MAX_BLUR,
                value=DEFAULT_BLUR,
                step=0.5,
                label="Blur K (px at full size per unit of disparity)",
                elem_id="blur",
            )
            focus_x = gr.Number(label="Focus x (px)", precision=1, elem_id="focus_x")
            focus_y = gr.Number(label="Focus y (px)", precision=1, elem_id="focus_y")
        note = gr.Markdown(method_note(backend.renderers[names[0]]), elem_id="method_note")
        render_button = gr.Button("Render full size", variant="primary", elem_id="render")
        with gr.Row():
            full = gr.Image(
                label="Full size",
                type="filepath",
                format="png",
                interactive=False,
                elem_id="full",
            )
            compare = gr.ImageSlider(label="Before / after", type="filepath", elem_id="compare")
        download = gr.DownloadButton("Download full size (PNG)", interactive=False, elem_id="dl")

        controls = [photo, depth, focus_x, focus_y, blur, method]
        made = gr.State("")  # who made the depth map shown: "" (uploaded), "model", "fallback"

        def on_preview(photo_path, depth_path, fx, fy, k, name):
            if not photo_path:
                return gr.skip(), "Upload a photo to start."
            renderer = backend.renderer(name)
            if not depth_path and renderer.needs_depth:
                return gr.skip(), (
                    "**No depth map.** Upload one (8-bit, near = bright), or press the "
                    "geometric fallback button (NOT a depth estimate)."
                )
            return backend.preview_file(photo_path, depth_path, fx, fy, k, name)

        def on_photo(photo_path, depth_path, made):
            """A new photo: focus at its centre; a depth map the page made is made again."""
            loaded = backend.photo(photo_path)
            h, w = loaded.photo.shape[:2]
            new_depth = gr.skip()
            if depth_model is not None and (not depth_path or made):
                new_depth, made = _to_png_array(backend.estimate_depth(photo_path)), "model"
                new_depth = gr.update(value=new_depth, label=depth_label)
            elif made == "fallback":
                new_depth = _to_png_array(fallback_depth(loaded.photo.shape))
            return new_depth, made, w / 2.0, h / 2.0

        def on_click(evt: gr.SelectData):
            x, y = evt.index
            return float(x), float(y)

        def on_fallback(photo_path):
            loaded = backend.photo(photo_path)
            value = _to_png_array(fallback_depth(loaded.photo.shape))
            return gr.update(value=value, label=FALLBACK_LABEL), "fallback"

        def on_depth_upload():
            return gr.update(label=depth_label), ""

        def on_method(name):
            return method_note(backend.renderer(name))

        def on_full(photo_path, full_path):
            return (photo_path, full_path), gr.update(value=full_path, interactive=True)

        run_preview = _errors_as_messages(on_preview)
        preview_args = dict(
            fn=run_preview,
            inputs=controls,
            outputs=[preview, status],
            trigger_mode="always_last",
            api_visibility="private",
        )
        private = dict(api_visibility="private")
        photo.upload(
            _errors_as_messages(on_photo),
            [photo, depth, made],
            [depth, made, focus_x, focus_y],
            **private,
        ).then(**preview_args)
        photo.select(on_click, None, [focus_x, focus_y], **private).then(**preview_args)
        depth.upload(on_depth_upload, None, [depth, made], **private).then(**preview_args)
        fallback.click(_errors_as_messages(on_fallback), photo, [depth, made], **private).then(
            **preview_args
        )
        method.change(on_method, method, note, **private).then(**preview_args)
        blur.change(**preview_args)
        focus_x.submit(**preview_args)
        focus_y.submit(**preview_args)
        render_button.click(
            _errors_as_messages(backend.render_full), controls, full, api_name="render"
        ).then(on_full, [photo, full], [compare, download], **private)
    return demo


def _to_png_array(depth01):
    """A [0, 1] depth map as the uint8 image the depth widget shows (and hands back as PNG)."""
    return np.round(np.clip(depth01, 0.0, 1.0) * 255.0).astype(np.uint8)


def launch_demo(
    renderers,
    depth_model=None,
    host=DEFAULT_HOST,
    port=DEFAULT_PORT,
    block=True,
    **launch_kwargs,
):
    """Builds and serves the page on http://host:port (127.0.0.1 by default: only this
    machine). `block=False` returns the running `gr.Blocks` (call `.close()` to stop it)."""
    demo = build_demo(renderers, depth_model)
    demo.queue(default_concurrency_limit=1)
    demo.launch(
        server_name=host,
        server_port=port,
        max_file_size=uploads.MAX_FILE_BYTES,
        prevent_thread_lock=not block,
        show_error=True,
        **launch_kwargs,
    )
    if block:
        demo.backend.temp.close()
    return demo


def stop_demo(demo):
    """Stops a demo started with `launch_demo(..., block=False)` and removes its temp files."""
    demo.close(verbose=False)
    demo.backend.temp.close()
