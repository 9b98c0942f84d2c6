"""Splitting a list of work items over N processes or machines: `--shard I/N`.

Shard I of N takes items I, I + N, I + 2N, ... of the list in its given (sorted) order, so N
processes that see the same list cover it exactly once, and every shard gets a similar mix.
"""

from __future__ import annotations

from pynet_bokeh.errors import UsageError


def parse_shard(text: str | None, flag: str = "--shard") -> tuple[int, int] | None:
    """(index, count) from "I/N" (0 <= I < N), None from None or ""; UsageError otherwise."""
    if not text:
        return None
    try:
        index, count = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise UsageError(f"{flag} must look like I/N (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"{flag} {text}: need N >= 1 and 0 <= I < N (shards are 0/N .. N-1/N)")
    return index, count


def shard_items(items, shard: tuple[int, int] | None) -> list:
    """The items of shard (index, count): every count-th item from index (all for None)."""
    items = list(items)
    if shard is None:
        return items
    index, count = shard
    return items[index::count]
