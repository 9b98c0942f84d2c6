"""Every command's errors as one line: `error: <message>` naming the file or flag and what to do."""

from __future__ import annotations

import contextlib
import sys

from pynet_bokeh.errors import PynetBokehError

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


@contextlib.contextmanager
def reported_errors(exit_code=2):
    """Turns the errors of the block into one `error: ...` line and SystemExit(exit_code)."""
    try:
        yield
    except REPORTED as err:
        report(err)
        raise SystemExit(exit_code) from None


def absl_main(main, argv, exit_code=2):
    """Runs an absl `main(argv)` with errors reported as one line (absl's usage errors too:
    one line and where to find help, not the whole help)."""
    from absl import app

    try:
        return main(argv)
    except app.UsageError as err:
        print(f"error: {one_line(err)} (see {argv[0]} --help)", file=sys.stderr, flush=True)
        return 1
    except REPORTED as err:
        report(err)
        return exit_code
