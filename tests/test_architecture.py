"""The layering of docs/architecture.md, checked by import-linter (setup.cfg's contract): every
import, including those inside functions, points down."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_layers_contract_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--config", str(REPO / "setup.cfg"), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_every_method_is_a_registered_module():
    from pynet_bokeh.renderers import renderer_class, renderer_names

    names = renderer_names()
    assert {"bradcn", "classical", "deeplens", "identity", "pynet"} <= set(names)
    for name in names:
        cls = renderer_class(name)
        assert cls.name == name and cls.description
        assert set(cls.controls()) <= {"focus", "blur"}
