"""A PNG chart of publications per month per channel (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

from channelwatch.stats import Summary

__all__ = ["monthly_chart"]

# Fonts that carry Chinese glyphs on the systems offices use; matplotlib takes the first it finds.
_CJK_FONTS = [
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "AR PL UMing CN",
    "DejaVu Sans",
]


def monthly_chart(summary: Summary, target: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import logging

    import matplotlib.pyplot as plt

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    plt.rcParams["font.sans-serif"] = _CJK_FONTS
    plt.rcParams["axes.unicode_minus"] = False
    months = [m for m, _total, _per in summary.month_rows()]
    labels = [f"{int(m[5:])}月" for m in months]
    figure, axes = plt.subplots(figsize=(8, 4), dpi=120)
    bottom = [0] * len(months)
    for channel in summary.channels:
        values = [per[channel.key] for _m, _t, per in summary.month_rows()]
        axes.bar(labels, values, bottom=bottom, label=channel.name)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_title(f"{summary.office}{summary.period.label}各渠道每月发布数量")
    axes.set_ylabel("条")
    axes.legend()
    figure.tight_layout()
    figure.savefig(target, format="png")
    plt.close(figure)
    return target
