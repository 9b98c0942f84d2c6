"""Every command shown in README.md, docs/ and the notebooks uses flags its program defines."""

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

import pytest
from absl import flags

REPO = Path(__file__).resolve().parents[1]


def _absl_names(define_flags):
    fv = flags.FlagValues()
    define_flags(fv)
    return set(fv)


def _argparse_names(parser):
    names = set()
    for action in parser._actions:
        names.update(o.lstrip("-") for o in action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                names |= _argparse_names(sub)
    return names


def _known_flags():
    sys.path.insert(0, str(REPO))
    try:
        import evaluate
        import export_tflite
        import train_level
    finally:
        sys.path.remove(str(REPO))
    from depth_tools import convert, generate
    from pynet_bokeh import cli
    from pynet_bokeh.cli import deeplens as deeplens_cli

    return {
        "train_level.py": _absl_names(train_level.define_flags),
        "evaluate.py": _absl_names(evaluate.define_flags),
        "export_tflite.py": _absl_names(export_tflite.define_flags),
        "depth-tools-generate": _absl_names(generate.define_flags),
        "depth-tools-convert": _absl_names(convert.define_flags),
        "pynet-bokeh": _argparse_names(cli.build_parser()),
        "pynet-bokeh-deeplens": _argparse_names(deeplens_cli.build_parser()),
        "pynet_bokeh.data.synthetic": _synthetic_parser(),
    }


def _synthetic_parser():
    # The synthetic CLI builds its parser inside main(); read its options from the source.
    source = (REPO / "pynet_bokeh" / "data" / "synthetic.py").read_text()
    return set(re.findall(r'add_argument\("--([a-z_]+)"', source))


def _documents():
    texts = [(p.name, p.read_text()) for p in [REPO / "README.md", *REPO.glob("docs/*.md")]]
    for nb in REPO.glob("notebooks/*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        texts.append(
            (nb.name, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code"))
        )
    return texts


def _commands(text):
    """(program, [flag names]) for each line that runs one of the project's programs."""
    programs = (
        "train_level.py",
        "evaluate.py",
        "export_tflite.py",
        "depth-tools-generate",
        "depth-tools-convert",
        "pynet-bokeh-deeplens",
        "pynet-bokeh",
        "pynet_bokeh.data.synthetic",
    )
    for line in text.replace("\\\n", " ").splitlines():
        line = line.split("#")[0].strip().lstrip("!$ ")
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        for i, word in enumerate(words):
            name = word.rsplit("/", 1)[-1]
            if name in programs:
                names = [w[2:].split("=")[0] for w in words[i + 1 :] if w.startswith("--")]
                yield name, names
                break


def test_documented_commands_use_defined_flags():
    known = _known_flags()
    seen = 0
    problems = []
    for doc, text in _documents():
        for program, names in _commands(text):
            seen += 1
            for name in names:
                if name not in known[program] and not (
                    name.startswith("no") and name[2:] in known[program]
                ):
                    problems.append(f"{doc}: {program} --{name}")
    assert not problems, "documented flags that do not exist:\n" + "\n".join(problems)
    assert seen >= 15  # the docs really show commands (the parser found them)


def test_parser_finds_flags():
    found = list(_commands("!python train_level.py --level 7 --synthetic  # comment --x"))
    assert found == [("train_level.py", ["level", "synthetic"])]


@pytest.mark.parametrize("name", ["quickstart.ipynb", "training.ipynb"])
def test_notebooks_are_valid(name):
    nb = json.loads((REPO / "notebooks" / name).read_text())
    assert nb["nbformat"] == 4
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        code = "".join(cell["source"])
        # Shell (!) and magic (%) lines are IPython; the rest must be valid Python.
        lines = code.splitlines()
        python = "\n".join(
            line[: len(line) - len(line.lstrip())] + "pass"
            if line.lstrip().startswith(("!", "%"))
            else line
            for line in lines
        )
        compile(python, name, "exec")
