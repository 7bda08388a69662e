"""Text for the terminal: control characters shown, never obeyed.

A title, a file name or a server's answer may hold an ANSI escape sequence (``\\x1b[2J`` clears the
screen, ``\\x1b]8;;…`` draws a fake link), a carriage return that overwrites what was printed, or a
right-to-left override that reverses a file name. On the terminal they are shown as escapes such as
``\\x1b``; files keep the text exactly as it is (only what is printed goes through ``shown()``).
"""

from __future__ import annotations

import re

__all__ = ["shown"]

# C0 and C1 controls except the newline, DEL, the bidirectional overrides and isolates, lone surrogates.
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\t": "\\t", "\r": "\\r", "\x1b": "\\x1b"}


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(text: str) -> str:
    """``text`` with every control character that could act on a terminal written as an escape."""
    if text.isprintable():
        return text
    return _UNSAFE.sub(_escape, text)
