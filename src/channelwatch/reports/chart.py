"""A PNG chart of publications per month per channel (matplotlib, headless).

Chinese labels need a font with CJK glyphs, and most servers have none (this one has none:
``fc-list :lang=zh`` is empty). So the chart looks for one in this order: a system font from the list
below (what offices' machines have), then Noto Sans SC shipped by the PyPI package
``pylopdf-fonts-zh-cn`` (a runtime dependency, so no system package is needed), and only where neither
exists falls back to English labels — a chart of empty boxes ("tofu") helps nobody.
"""

from __future__ import annotations

import io
import logging
import warnings
from functools import cache
from pathlib import Path
from typing import Any, cast

from channelwatch.stats.figures import Summary

__all__ = ["cjk_font", "monthly_chart", "monthly_chart_png"]

log = logging.getLogger(__name__)

# Families that carry Chinese glyphs on the systems offices use, best first.
_CJK_FONTS = [
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "AR PL UMing CN",
]


def _covers_chinese(path: str) -> bool:
    from matplotlib.ft2font import FT2Font

    try:
        font = FT2Font(path)
        return all(font.get_char_index(ord(ch)) for ch in "月发布数量")
    except (OSError, RuntimeError, ValueError):
        return False


@cache
def cjk_font() -> str | None:
    """The family name of a font that renders Chinese, registered with matplotlib; None if none exists."""
    from matplotlib import font_manager

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    installed = {entry.name: entry.fname for entry in font_manager.fontManager.ttflist}
    for family in _CJK_FONTS:
        if family in installed and _covers_chinese(installed[family]):
            return family
    try:
        import pylopdf_fonts_zh_cn

        shipped = str(pylopdf_fonts_zh_cn.sans_path())
    except (ImportError, AttributeError):
        shipped = ""
    if shipped and Path(shipped).is_file() and _covers_chinese(shipped):
        font_manager.fontManager.addfont(shipped)
        return str(font_manager.FontProperties(fname=shipped).get_name())
    log.warning("no font with Chinese glyphs found; the chart is labelled in English")
    return None


def _figure(summary: Summary) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    font = cjk_font()
    rows = summary.month_rows()
    if font is not None:
        labels = [f"{int(m[5:])}月" for m, _total, _per in rows]
        title = f"{summary.office}{summary.period.label}各渠道每月发布数量"
        unit = "条"
        names = {c.key: c.name for c in summary.channels}
    else:
        labels = [m[5:] for m, _total, _per in rows]
        title = f"Publications per month, {summary.period.year}"
        unit = "items"
        names = {c.key: c.key for c in summary.channels}
    style: dict[str, Any] = {"axes.unicode_minus": False}
    if font is not None:
        style["font.family"] = [font]
    with plt.rc_context(cast(Any, style)):
        figure, axes = plt.subplots(figsize=(8, 4), dpi=120)
        bottom = [0] * len(rows)
        for channel in summary.channels:
            values = [per[channel.key] for _m, _t, per in rows]
            axes.bar(labels, values, bottom=bottom, label=names[channel.key])
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        axes.set_title(title, fontsize=11)
        axes.set_ylabel(unit, rotation=0, labelpad=12)
        axes.spines[["top", "right"]].set_visible(False)
        if summary.channels:
            # Below the plot: the tallest month would otherwise hide under the legend.
            axes.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(summary.channels))
        with warnings.catch_warnings():
            # A name with a character the font lacks (a control character, a rare glyph) is drawn as a box;
            # matplotlib's English warning about it must not reach the clerk's terminal.
            warnings.simplefilter("ignore", UserWarning)
            figure.tight_layout()
    return figure


def monthly_chart_png(summary: Summary) -> bytes:
    """The chart as PNG bytes (for embedding in the Word and HTML reports)."""
    import matplotlib.pyplot as plt

    figure = _figure(summary)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def monthly_chart(summary: Summary, target: Path) -> Path:
    """Write the chart to ``target`` (``summary --chart FILE``)."""
    target.write_bytes(monthly_chart_png(summary))
    return target
