"""The notebooks run end to end in a real Jupyter kernel (nbclient) on tiny settings: the cell
tagged `parameters` is followed by an injected cell that overrides it, as papermill does."""

import base64
import io
import json
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(name, overrides, checks, tmp_path):
    """Executes notebooks/<name> with `overrides` (code) after its parameters cell and `checks`
    (code printing one JSON line) at the end; returns (executed notebook, the JSON)."""
    from nbclient import NotebookClient

    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(overrides))
    nb.cells.append(nbformat.v4.new_code_cell(checks))
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(REPO / "notebooks")}},
    ).execute()
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    return nb, json.loads(text.strip().splitlines()[-1])


def _pictures(nb):
    import imageio.v3 as iio

    return [
        iio.imread(io.BytesIO(base64.b64decode(o["data"]["image/jpeg"])))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/jpeg" in o.get("data", {})
    ]


@pytest.mark.parametrize("with_pynet", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_quickstart_runs(tmp_path, request, with_pynet):
    # With PyNET: the seed-0 TF1 checkpoint of ../shared's fixture (the test skips without it).
    weights = str(request.getfixturevalue("tf1_prefix")) if with_pynet else None
    overrides = f"SCENE_SIZE = (128, 192)\nTILE_WIDTH = 96\nPYNET_WEIGHTS = {weights!r}"
    checks = (
        "import json\n"
        'near = focus_points["near"]\n'
        "out = classical.render(photo, depth, focus=near, blur=BLURS[-1])\n"
        "x, y = int(near[0]), int(near[1])\n"
        "print(json.dumps({'shape': list(photo.shape), 'depth': list(depth.shape),\n"
        "    'near_err': float(abs(out - photo)[y - 2 : y + 3, x - 2 : x + 3].max()),\n"
        "    'mean_change': float(abs(out - photo).mean())}))"
    )
    nb, got = _run("quickstart.ipynb", overrides, checks, tmp_path)
    assert got["shape"] == [128, 192, 3] and got["depth"] == [64, 96]
    assert got["near_err"] < 0.02  # the near focus point stays sharp ...
    assert got["mean_change"] > 0.01  # ... while the picture as a whole is blurred
    pictures = _pictures(nb)
    # photo | depth, then 3 focus points x 3 blurs, then photo | PyNET when weights were given
    assert [p.shape[1] for p in pictures] == [2 * 96, 3 * 96] + ([2 * 96] if weights else [])


@pytest.mark.slow  # two train_level.py runs: ~25 s each on 2 idle cores, 80 s here under load
def test_training_notebook_trains_levels_7_and_6(tmp_path):
    overrides = (
        f'DATA_DIR = "{tmp_path / "data"}"\nMODEL_DIR = "{tmp_path / "runs"}"\n'
        "N_TRAIN, N_TEST = 2, 1\nSCENE_SIZE = (128, 192)\nSTEPS = {7: 2, 6: 2}\n"
        'BATCH_SIZE = 1\nPATCH_SIZE = 64\nTILE_WIDTH = 64\nEXTRA_FLAGS = "--run_eagerly"'
    )
    checks = (
        "import json\n"
        "print(json.dumps({'levels': sorted(os.listdir(MODEL_DIR)),\n"
        "    'shapes': [list(t[0].shape[:2]) for t in tiles],\n"
        "    'ranges': [[float(t[0].min()), float(t[0].max())] for t in tiles[2:4]]}))"
    )
    nb, got = _run("training.ipynb", overrides, checks, tmp_path)
    assert got["levels"] == ["level_6", "level_7"]
    for level in (6, 7):
        assert (tmp_path / "runs" / f"level_{level}" / "final.weights.h5").is_file()
    # photo, depth (half size), level 7, level 6 (resized up to the photo), target
    assert got["shapes"] == [[128, 192], [64, 96], [128, 192], [128, 192], [128, 192]]
    assert all(0.0 <= lo <= hi <= 1.0 for lo, hi in got["ranges"])
    (grid,) = _pictures(nb)
    assert grid.shape[1] == 5 * 64  # the five tiles, shown
