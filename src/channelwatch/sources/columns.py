"""Header names of exported logs → our fields (docs/counting-rules.md), matched case- and space-insensitively."""

from __future__ import annotations

__all__ = ["FIELD_HEADERS", "FIELD_LABELS", "match_headers", "normalise_header", "repeated_headers"]

FIELD_HEADERS: dict[str, tuple[str, ...]] = {
    "id": ("id", "编号", "微博ID", "微博id", "mid", "文章ID", "消息ID", "msgid"),
    "title": ("title", "标题", "文章标题", "微博内容", "微博正文", "内容", "正文"),
    "url": ("url", "link", "链接", "原文链接", "文章链接", "网址", "地址"),
    "published_at": (
        "published_at",
        "发布时间",
        "发表时间",
        "群发时间",
        "发文时间",
        "创建时间",
        "完整日期",
        "时间",
        "日期",
    ),
    "repost": ("is_repost", "repost", "是否转发", "是否转载", "类型", "原创/转发"),
    # The inverse of a repost column: yes means original. weibo-crawler writes 是否原创 and weiboSpider
    # 是否为原创微博, both True/False.
    "original": ("is_original", "original", "是否原创", "是否为原创微博", "原创"),
    "column": ("column", "栏目", "所属栏目"),
}
FIELD_LABELS = {
    "id": "编号",
    "title": "标题",
    "url": "链接",
    "published_at": "发布时间",
    "repost": "是否转发",
    "original": "是否原创",
    "column": "栏目",
}


def normalise_header(header: object) -> str:
    return "".join(str(header or "").split()).lower().lstrip("\ufeff")


_LOOKUP = {normalise_header(h): name for name, headers in FIELD_HEADERS.items() for h in headers}


def match_headers(headers: list[object]) -> dict[str, int]:
    """Field name → column index. The first column that matches a field wins.

    ``original`` is only reported when no ``repost`` column exists: a direct repost column is read
    as it is, an inverse one (是否原创, 原创) only in its absence.

    Earlier names in a field's list are preferred when an export has several: ``标题`` beats
    ``内容`` for the title, ``发布时间`` beats ``日期``.
    """
    best: dict[str, tuple[int, int]] = {}
    for index, header in enumerate(headers):
        key = normalise_header(header)
        name = _LOOKUP.get(key)
        if name is None:
            continue
        rank = [normalise_header(h) for h in FIELD_HEADERS[name]].index(key)
        if name not in best or rank < best[name][0]:
            best[name] = (rank, index)
    found = {name: index for name, (_rank, index) in best.items()}
    if "repost" in found:
        found.pop("original", None)
    return found


def repeated_headers(headers: list[object], found: dict[str, int]) -> list[tuple[int, int, str]]:
    """(used column, unused column, header) of each column whose header repeats a used one (``标题,标题``).

    The first of two equal headers is read; the other may be the one the clerk meant, which must be said.
    """
    used = {normalise_header(headers[index]): index for index in found.values()}
    return [
        (used[key], index, str(header).strip())
        for index, header in enumerate(headers)
        if (key := normalise_header(header)) in used and used[key] != index
    ]
