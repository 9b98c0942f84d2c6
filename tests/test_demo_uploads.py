"""The demo's upload checks, temp folder and backend messages (no browser, no server)."""

import os
import time

import numpy as np
import pytest
from demo_scene import HEIGHT, WIDTH, make_scene, write_png_bomb

from pynet_bokeh.demo import uploads
from pynet_bokeh.demo.backend import DemoBackend, method_note, preview_scale
from pynet_bokeh.errors import BadDataError
from pynet_bokeh.renderers import get_renderer


def test_bomb_and_30000_px_photo_are_refused_from_the_header(tmp_path):
    bomb = write_png_bomb(tmp_path / "bomb.png", 30_000, 30_000)
    before = bomb.read_bytes()
    # PIL's own check fires first here (the demo turns it off and answers with the size).
    # PIL's own check, or the demo's when the demo turned PIL's off (it does at start-up)
    with pytest.raises(
        BadDataError, match=r"photo bomb.png (decodes to more than|is 30000 x 30000)"
    ):
        uploads.read_photo_upload(bomb)
    assert bomb.read_bytes() == before  # the input is untouched
    wide = write_png_bomb(tmp_path / "wide.png", 30_000, 20)  # 0.6 MP, but 30,000 px wide
    with pytest.raises(BadDataError, match="30000 x 20 pixels"):
        uploads.read_photo_upload(wide)
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(BadDataError, match="junk.png: not a readable"):
        uploads.image_size(tmp_path / "junk.png")


def test_temp_files_pruned_by_age_and_removed_on_close():
    temp = uploads.TempFiles(max_age_s=60)
    old = temp.new_path("a.png")
    os.utime(old, (time.time() - 120, time.time() - 120))
    fresh = temp.new_path("b.png")  # making a file prunes the old one
    assert not old.exists() and fresh.exists() and fresh.name.endswith("_b.png")
    temp.close()
    assert not temp.root.exists()


def test_backend_preview_size_messages_and_full_size(tmp_path):
    photo, depth = make_scene(tmp_path)
    backend = DemoBackend({"classical": get_renderer("classical")})
    image, status = backend.preview(photo, depth, 270, 320, 40.0, "classical")
    scale = preview_scale((HEIGHT, WIDTH))
    assert image.shape == (round(HEIGHT * scale), 768, 3) and image.dtype == np.uint8
    assert status.startswith("preview 768 x 512, classical, focus (270, 320), K = 40:")
    with pytest.raises(BadDataError, match="classical needs a depth map"):
        backend.preview(photo, None, 270, 320, 40.0, "classical")
    out = backend.render_full(photo, depth, 270, 320, 0.0, "classical")
    assert os.path.dirname(out) == str(backend.temp.root)
    from pynet_bokeh import image_io

    np.testing.assert_allclose(image_io.read_photo(out), image_io.read_photo(photo), atol=1 / 255)
    backend.temp.close()
    assert "**identity takes no focus or blur**" in method_note(get_renderer("identity"))
    assert method_note(get_renderer("classical")) == ""


def test_depth_for_a_photo_from_a_network_and_the_labelled_fallback():
    from depth_tools.generate import DepthSource, depth_map_for_photo
    from pynet_bokeh.demo.depth import fallback_depth

    photo = np.zeros((100, 150, 3), np.float32)
    photo[:, 75:] = 1.0  # right half "near" for a network that reads brightness as disparity
    source = DepthSource("bright", lambda x: x.mean(axis=-1), "inverse_depth", multiple=16)
    depth = depth_map_for_photo(photo, source, working_long_side=64)
    assert depth.shape == (50, 75) and depth.dtype == np.uint8
    # 0 and 255 up to the bicubic overshoot at the edge, which min-max normalisation keeps
    assert depth[:, :30].max() <= 3 and depth[:, 45:].min() >= 252
    prior = fallback_depth((100, 150, 3))
    assert prior.shape == (50, 75) and 0.0 <= prior.min() and prior.max() == 1.0
    assert prior[-1].mean() > prior[0].mean()  # bottom = near


def test_demo_command_pairs_methods_with_weights_and_names_bad_flags(capsys):
    from pynet_bokeh.cli import main
    from pynet_bokeh.cli.demo import load_renderers
    from pynet_bokeh.errors import UsageError

    assert list(load_renderers(None, [])) == ["classical"]
    assert list(load_renderers(["classical", "identity"], [])) == ["classical", "identity"]
    with pytest.raises(UsageError, match="--method pynet needs --weights"):
        load_renderers(["pynet"], [])
    with pytest.raises(UsageError, match="--weights x.h5: no --method that takes weights"):
        load_renderers(["classical"], ["x.h5"])
    assert main(["demo", "--depth_weights", "w.pth"]) == 2  # refused before serving anything
    assert capsys.readouterr().err.strip() == (
        "error: --depth_weights needs --depth_model (megadepth or dpt-hybrid-midas)"
    )
    assert main(["demo", "--depth_model", "megadepth"]) == 2
    assert "--depth_model megadepth needs --depth_weights PATH" in capsys.readouterr().err


def test_render_without_a_map_uses_the_depth_model(tmp_path):
    from pynet_bokeh import image_io
    from pynet_bokeh.demo.depth import DepthModel

    photo, depth = make_scene(tmp_path)
    known = image_io.read_depth(depth)
    calls = []

    def estimate(rgb):
        calls.append(rgb.shape)
        return known  # a "network" that knows the scene

    backend = DemoBackend({"classical": get_renderer("classical")}, DepthModel("t", estimate, ""))
    without = image_io.read_photo(backend.render_full(photo, None, 270, 320, 40.0, "classical"))
    backend.render_full(photo, None, 700, 320, 10.0, "classical")
    assert calls == [(HEIGHT, WIDTH, 3)]  # estimated once per photo, at full size
    with_map = image_io.read_photo(backend.render_full(photo, depth, 270, 320, 40.0, "classical"))
    np.testing.assert_array_equal(without, with_map)
    backend.temp.close()
