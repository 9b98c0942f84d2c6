"""The web demo (Gradio, `pip install -e ".[demo]"`): click the focus, slide the blur.

    pynet-bokeh demo                         # classical method, http://127.0.0.1:7860 (cli/demo.py)
    from pynet_bokeh.demo.app import build_demo, launch_demo

Modules: `app` (the page and its API endpoint `render`), `backend` (previews and full-size
renders, no Gradio), `uploads` (size checks before decoding, the temp folder), `depth` (depth
model or the labelled geometric fallback).
"""
