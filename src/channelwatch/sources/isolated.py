"""Parsing a page that may be hostile without letting it hang the poll or the daemon.

lexbor (selectolax) parses ordinary pages in milliseconds, but its time and memory grow with the square
of the nesting depth: measured on this machine, 50,000 unclosed ``<div>`` (250 KB) take 2 s, 100,000
take 10 s and 300,000 (1.5 MB) take 207 s; ``<b id=n><p>x`` repeated 30,000 times (the HTML rule that
reopens every open formatting element in each new paragraph) builds hundreds of millions of nodes and
exhausts memory. The parser holds the GIL meanwhile, so neither the poll's deadline nor the daemon's
other jobs would get a turn. feedparser is linear but a 10 MB feed still costs tens of seconds.

So ``parse()`` looks at the text first, in linear time (``risky()``): an ordinary page is parsed in
place; a deeply nested, very large one, or one that leaves formatting elements open before many
paragraphs (``reconstruction_cost()``) is parsed in a child process with a memory limit, which the
poll kills when its deadline passes or the daemon stops (the caller's ``asyncio`` cancellation). The
child gets only the page and the parsing function; it unpickles what its parent wrote, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from channelwatch.errors import ChannelwatchError, FetchError

__all__ = ["MAX_INLINE_BYTES", "MAX_INLINE_DEPTH", "nesting_depth", "parse", "reconstruction_cost", "risky"]

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_INLINE_DEPTH = 400  # real list pages nest 20–60 deep; 400 unclosed divs parse in well under 10 ms
MAX_INLINE_BYTES = 1024 * 1024
MAX_INLINE_CLONES = 100_000  # formatting elements reopened: about 35 MB and 50 ms at most in place
CHILD_MEMORY = 1024 * 1024 * 1024  # address space of the parsing child

_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)")
# Elements that never hold children, and those whose end tag HTML lets authors leave out (the parser
# closes them itself): neither makes the tree deeper.
_VOID = "area base br col embed hr img input link meta param source track wbr keygen"
_OPTIONAL_END = "li p dt dd tr td th option optgroup tbody thead tfoot colgroup caption rb rt rp rtc html head body"
_NO_DEPTH = frozenset(f"{_VOID} {_OPTIONAL_END}".split())
_FORMATTING = frozenset(
    {"a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt", "u"}
)


def nesting_depth(text: str) -> int:
    """An upper bound of how deep the parser's stack of open elements grows (linear time).

    An end tag only closes an element of its own name that is open, as in the parser; an element the
    parser would close implicitly still counts, which errs on the side of isolating a page.
    """
    return _costs(text)[0]


def reconstruction_cost(text: str) -> int:
    """An upper bound of the elements the parser clones to reopen formatting elements (linear time).

    HTML reopens every formatting element (``<b>``, ``<font>``, ``<a>`` …) still open in each new
    paragraph: 400 of them left open and 20,000 ``<p>`` after them make 8 million elements (measured:
    2.9 GB, 3.4 s) from an 85 KB page whose nesting looks shallow.
    """
    return _costs(text)[1]


def _costs(text: str) -> tuple[int, int]:
    open_count: dict[str, int] = {}
    depth = deepest = formatting = clones = 0
    for match in _TAG.finditer(text):
        name = match.group(2).lower()
        if match.group(1):
            if name not in _NO_DEPTH and open_count.get(name):
                open_count[name] -= 1
                depth -= 1
                if name in _FORMATTING:
                    formatting -= 1
            continue
        clones += formatting
        if name in _NO_DEPTH:
            continue
        open_count[name] = open_count.get(name, 0) + 1
        depth += 1
        if name in _FORMATTING:
            formatting += 1
        if depth > deepest:
            deepest = depth
    return deepest, clones


def risky(text: str | bytes) -> bool:
    """Whether parsing ``text`` in the poll's own process could take long or exhaust memory."""
    if len(text) > MAX_INLINE_BYTES:
        return True
    if len(text) < 4 * MAX_INLINE_DEPTH:
        return False  # too short to nest deeper than the limit
    sample = text if isinstance(text, str) else text.decode("latin-1")
    depth, clones = _costs(sample)
    return depth > MAX_INLINE_DEPTH or clones > MAX_INLINE_CLONES


def _child() -> None:
    """The child's side: a pickled ``(function, args)`` on stdin, a pickled ``(kind, value)`` on stdout."""
    import pickle
    import resource
    import sys

    with contextlib.suppress(ValueError, OSError):  # a lower hard limit already set is kept
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))
    function, args = pickle.loads(sys.stdin.buffer.read())
    try:
        outcome: tuple[str, Any] = ("ok", function(*args))
    except ChannelwatchError as exc:
        outcome = ("error", exc)
    except MemoryError:
        outcome = ("memory", None)
    except BaseException as exc:  # a parser bug: reported to the parent as text
        outcome = ("bug", f"{type(exc).__name__}: {exc}"[:500])
    try:
        data = pickle.dumps(outcome)
    except Exception as exc:  # an unpicklable answer
        data = pickle.dumps(("bug", f"{type(exc).__name__}: {exc}"[:500]))
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


async def parse(function: Callable[..., T], *args: Any, text: str | bytes, what: str) -> T:
    """``function(*args)``: in place when ``text`` is harmless, else in a child process that is killed
    when the caller is cancelled (the poll's deadline, the daemon's stop). ``what`` names the page."""
    if not risky(text):
        return function(*args)
    import pickle
    import sys

    log.info("parsing %s (%d characters) in a child process", what, len(text))
    # A fresh interpreter, not multiprocessing: forking the daemon (threads, an open database) is unsafe,
    # and multiprocessing's other start methods re-import the caller's __main__.
    package_root = str(Path(__file__).resolve().parents[2])  # so the child imports this very channelwatch
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from channelwatch.sources.isolated import _child; _child()",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": path},
    )
    try:
        output, _ = await process.communicate(pickle.dumps((function, args)))
    finally:
        if process.returncode is None:  # cancelled: the poll's deadline passed or the daemon stops
            process.kill()
            await asyncio.shield(process.wait())
    try:
        kind, value = pickle.loads(output)
    except Exception:
        raise FetchError(f"解析 {what} 的子进程意外退出（退出码 {process.returncode}），本次抓取作废") from None
    if kind == "ok":
        return value
    if kind == "error":
        raise value
    if kind == "memory":
        raise FetchError(f"{what} 嵌套过深或过大，解析所需内存超过 {CHILD_MEMORY // 2**20} MB，本次抓取作废")
    raise FetchError(f"无法解析 {what}（{value}），本次抓取作废")
