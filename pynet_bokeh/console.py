"""What every command prints besides its own output: errors as one `error: ...` line naming
the file or flag and what to do, and no TensorFlow C++ log lines unless asked for.

Bottom layer: imports only `pynet_bokeh.errors`, so that every entry point (the package's and
depth_tools') reports errors the same way.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

from pynet_bokeh.errors import PynetBokehError

# TensorFlow's C++ (absl) log lines, "E0000 00:00:1796056307.327241   16637 file.cc:52] ..."
# (before absl's init the seconds count from the epoch), and the banner absl prints then.
_CPP_LOG_LINE = re.compile(
    r"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]]+\] |WARNING: All log messages before "
    r"absl::InitializeLog\(\) is called)"
)
LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"


@contextlib.contextmanager
def _without_cpp_log_lines():
    """Drops C++ log lines written to file descriptor 2 inside the block (TensorFlow's CUDA
    stub logs before TF_CPP_MIN_LOG_LEVEL is read); everything else is passed on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                if not _CPP_LOG_LINE.match(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def argv_verbosity(argv=None):
    """absl's --verbosity / -v from the command line before flags are parsed (entry points
    must quieten TensorFlow before importing it), else None."""
    argv = sys.argv[1:] if argv is None else argv
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if name in ("--verbosity", "-v", "--v"):
            if not eq:
                value = argv[i + 1] if i + 1 < len(argv) else ""
            try:
                return int(value)
            except ValueError:
                return None
    return None


def absl_verbosity():
    """absl's --verbosity when flags are parsed, else None."""
    from absl import flags

    try:
        return flags.FLAGS.verbosity
    except (AttributeError, flags.UnparsedFlagAccessError):
        return None


def quiet_tensorflow(verbosity=None):
    """Keeps TensorFlow's C++ log lines (`E0000 ... remapper failed`, CUDA probing) out of a
    command's output: sets TF_CPP_MIN_LOG_LEVEL=3 and imports TensorFlow with those lines
    dropped. Shown when asked for: --verbosity 1 or more (absl's flag, `verbosity`), or
    TF_CPP_MIN_LOG_LEVEL set in the environment (0 shows all). Call it in a command's main
    before TensorFlow is imported; returns whether it quietened."""
    if LOG_LEVEL_VARIABLE in os.environ or (verbosity is not None and verbosity >= 1):
        return False
    os.environ[LOG_LEVEL_VARIABLE] = "3"
    if "tensorflow" not in sys.modules:
        with _without_cpp_log_lines():
            import tensorflow  # noqa: F401
    return True


#: Errors a command reports as one line: ours, missing/unreadable files, bad values.
REPORTED = (PynetBokehError, OSError, ValueError)


def one_line(err) -> str:
    """The first line of `err`'s message (what went wrong, the file or flag, what to do)."""
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0].strip()


def report(err, file=None) -> None:
    """`error: <first line>`; the lines after it (e.g. every bad file of a data set) follow,
    indented, so a list of problems is shown whole."""
    file = file or sys.stderr
    text = str(err).strip() or type(err).__name__
    first, *rest = text.splitlines()
    print(f"error: {first.strip()}", file=file, flush=True)
    for line in rest:
        print(f"  {line.strip()}", file=file, flush=True)


def absl_main(main, argv, exit_code=2):
    """Runs an absl `main(argv)` with errors reported as one line (absl's usage errors too:
    one line and where to find help, not the whole help), and TensorFlow's C++ log lines
    kept out unless asked for (`--verbosity 1`, TF_CPP_MIN_LOG_LEVEL)."""
    from absl import app

    quiet_tensorflow(absl_verbosity())
    try:
        return main(argv)
    except app.UsageError as err:
        print(f"error: {one_line(err)} (see {argv[0]} --help)", file=sys.stderr, flush=True)
        return 1
    except REPORTED as err:
        report(err)
        return exit_code
