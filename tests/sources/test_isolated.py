"""Which pages are parsed in a child process, and that the child gives what the parser gives in place."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channelwatch.errors import LayoutError
from channelwatch.sources import isolated
from channelwatch.sources.isolated import MAX_INLINE_DEPTH, nesting_depth, reconstruction_cost, risky
from channelwatch.sources.rss import parse_feed
from channelwatch.sources.website import HtmlListOptions, parse_list_page

DATA = Path(__file__).resolve().parent.parent / "data" / "platforms"
OPTIONS = HtmlListOptions(type="html-list", url="http://127.0.0.1/site/", item="ul.list li")
TAGS = ["div", "span", "b", "font", "table", "a", "section"]


def _nested(tags: list[str]) -> str:
    return "".join(f"<{t}>" for t in tags) + "x" + "".join(f"</{t}>" for t in reversed(tags))


@given(st.lists(st.sampled_from(TAGS), max_size=60), st.integers(0, 30))
def test_depth_of_well_formed_nesting_is_exact(tags: list[str], siblings: int) -> None:
    text = "<html><body>" + _nested(tags) + "<br><img src=x><li>item<p>para" * siblings + "</body></html>"
    assert nesting_depth(text) == len(tags)


@given(st.integers(0, 3000), st.sampled_from(["div", "b id=1", "font color=red", "span"]))
def test_unclosed_elements_count_and_stray_end_tags_do_not_hide_them(count: int, tag: str) -> None:
    text = f"<{tag}>" * count + "</i></em></strong>" * 50  # end tags of elements that are not open
    assert nesting_depth(text) == count
    assert risky(text) == (count > MAX_INLINE_DEPTH)


def test_real_pages_and_feeds_are_parsed_in_place() -> None:
    for path in sorted(DATA.glob("*.html")) + sorted(DATA.glob("*.xml")):
        assert not risky(path.read_text(encoding="utf-8")), path


def test_size_alone_makes_a_page_risky() -> None:
    flat = "<p>" + "字" * (isolated.MAX_INLINE_BYTES + 1)
    assert nesting_depth(flat) == 0 and risky(flat)


@settings(max_examples=5, deadline=None)
@given(st.integers(MAX_INLINE_DEPTH + 1, 5000))
def test_the_child_gives_what_the_parser_gives(depth: int) -> None:
    page = (DATA / "website_list.html").read_text(encoding="utf-8").replace("<body>", "<body>" + "<div>" * depth)
    assert risky(page)
    inline = parse_list_page(page, "http://127.0.0.1/site/", OPTIONS, "Asia/Shanghai")
    child = asyncio.run(
        isolated.parse(parse_list_page, page, "http://127.0.0.1/site/", OPTIONS, "Asia/Shanghai", text=page, what="t")
    )
    assert child == inline and len(child) > 0


def test_the_child_raises_what_the_parser_raises() -> None:
    page = "<html><body>" + "<div>" * 1000 + '<ul class="list"><li><a>no link</a><span>2020-01-01</span></li></ul>'
    with pytest.raises(LayoutError) as inline:
        parse_list_page(page, "http://x/", OPTIONS, "Asia/Shanghai")
    with pytest.raises(LayoutError) as child:
        asyncio.run(isolated.parse(parse_list_page, page, "http://x/", OPTIONS, "Asia/Shanghai", text=page, what="t"))
    assert str(child.value) == str(inline.value) and "第1条" in str(child.value)


def test_a_cancelled_parse_kills_its_child_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    children: list[asyncio.subprocess.Process] = []
    start = asyncio.create_subprocess_exec

    async def recorded(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        children.append(await start(*args, **kwargs))
        return children[-1]

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recorded)
    feed = b'<?xml version="1.0"?><rss version="2.0"><channel>' + b"<div>" * 3_000_000  # ~15 MB, tens of seconds

    async def main() -> str:
        try:
            async with asyncio.timeout(1.0):
                await isolated.parse(parse_feed, feed, "http://x/rss.xml", "Asia/Shanghai", None, text=feed, what="t")
        except TimeoutError:
            return "deadline"
        return "finished"

    started = time.monotonic()
    assert asyncio.run(main()) == "deadline"
    assert time.monotonic() - started < 2
    (child,) = children
    assert child.returncode is not None  # killed and reaped, not left parsing
    with pytest.raises(ProcessLookupError):
        os.kill(child.pid, 0)


def test_formatting_elements_left_open_before_many_paragraphs_are_risky() -> None:
    # 399 open <b> (under the depth limit), then 20,000 paragraphs that each reopen all of them:
    # measured in place, 3.4 s and 2.9 GB for this 85 KB page.
    page = "<html><body>" + "".join(f"<b id={i}><p>x" for i in range(399)) + "<p>y" * 20_000
    assert nesting_depth(page) <= MAX_INLINE_DEPTH
    assert reconstruction_cost(page) > 8_000_000
    assert risky(page)
    closed = "<html><body>" + "".join(f"<b id={i}>x</b><p>x" for i in range(399)) + "<p>y" * 20_000
    assert reconstruction_cost(closed) == 0 and not risky(closed)
