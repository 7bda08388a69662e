"""Monthly bar charts drawn on the server as inline SVG.

No JavaScript and no chart library reach the browser: the page works on a closed office network, and
the Content-Security-Policy can forbid every script. Each text that goes into the drawing is escaped,
and colours come from CSS classes (``static/style.css``), not inline styles, which the policy forbids.
"""

from __future__ import annotations

from markupsafe import Markup, escape

__all__ = ["monthly_chart"]


def _axis(value: int) -> tuple[int, int]:
    """The axis maximum and tick step: a step of 1, 2 or 5 × 10ⁿ, at most five steps, whole numbers."""
    value = max(value, 1)
    power = 1
    while True:
        for step in (power, 2 * power, 5 * power):
            if -(-value // step) <= 5:
                return step * -(-value // step), step
        power *= 10


def monthly_chart(
    title: str,
    totals: dict[int, int],
    reposts: dict[int, int],
    *,
    width: int = 640,
    height: int = 220,
    months: int = 12,
    selected: int | None = None,
) -> Markup:
    """Stacked bars per month (原创 below, 转发 above) with a labelled axis; ``title`` names the chart."""
    left, right, top, bottom = 44, 8, 12, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    peak, step = _axis(max(totals.values(), default=0))
    slot = plot_w / months
    bar = slot * 0.64
    parts: list[str] = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for value in range(0, peak + 1, step):
        y = top + plot_h - plot_h * value / peak
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value}</text>')
    for index in range(months):
        month = index + 1
        total = int(totals.get(month, 0))
        repost = min(int(reposts.get(month, 0)), total)
        original = total - repost
        x = left + slot * index + (slot - bar) / 2
        label_x = left + slot * index + slot / 2
        base = top + plot_h
        h_original = plot_h * original / peak
        h_repost = plot_h * repost / peak
        if month == selected:
            parts.append(
                f'<rect class="highlight" x="{left + slot * index:.1f}" y="{top}" '
                f'width="{slot:.1f}" height="{plot_h}"/>'
            )
        tip = escape(f"{month}月：共{total}条（原创{original}条，转发{repost}条）")
        parts.append(f'<g class="month" data-month="{month}" data-total="{total}"><title>{tip}</title>')
        if original:
            parts.append(
                f'<rect class="bar original" x="{x:.1f}" y="{base - h_original:.1f}" '
                f'width="{bar:.1f}" height="{h_original:.1f}"/>'
            )
        if repost:
            parts.append(
                f'<rect class="bar repost" x="{x:.1f}" y="{base - h_original - h_repost:.1f}" '
                f'width="{bar:.1f}" height="{h_repost:.1f}"/>'
            )
        if total:
            parts.append(
                f'<text class="value" x="{label_x:.1f}" y="{base - h_original - h_repost - 3:.1f}" '
                f'text-anchor="middle">{total}</text>'
            )
        parts.append("</g>")
        parts.append(f'<text class="axis" x="{label_x:.1f}" y="{height - 8}" text-anchor="middle">{month}月</text>')
    parts.append(f'<line class="baseline" x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
