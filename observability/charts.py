"""Server-rendered SVG charts: no chart library, nothing loaded from outside."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT = 560, 160
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 44, 8, 10, 22


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 5 times a power of ten)."""
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


def line_chart(
    *, title: str, series: Sequence[tuple[str, Sequence[float], str]], x_labels: tuple[str, str]
) -> SafeString:
    """An SVG line chart of equally spaced points; `series`: (name, values, colour)."""
    longest = max((len(values) for _, values, _ in series), default=0)
    top = _nice_max(max((max(values, default=0) for _, values, _ in series), default=0))
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM

    def point(i: int, v: float) -> str:
        x = PAD_LEFT + (plot_w * i / max(longest - 1, 1))
        y = PAD_TOP + plot_h - plot_h * v / top
        return f"{x:.1f},{y:.1f}"

    lines = format_html_join(
        "",
        '<polyline class="series" data-series="{}" fill="none" stroke="{}" stroke-width="2" '
        'points="{}"><title>{}</title></polyline>',
        (
            (name, colour, " ".join(point(i, v) for i, v in enumerate(values)), name)
            for name, values, colour in series
        ),
    )
    legend = format_html_join(
        "",
        '<tspan fill="{}">■ {}</tspan> ',
        ((colour, name) for name, _, colour in series),
    )
    bottom = PAD_TOP + plot_h
    return format_html(
        '<svg class="chart" role="img" aria-label="{title}" viewBox="0 0 {w} {h}" '
        'width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">'
        "<title>{title}</title>"
        '<text x="{tx}" y="{ty}" font-size="11" font-weight="bold">{title}</text>'
        '<line x1="{l}" y1="{t}" x2="{l}" y2="{b}" stroke="#999"/>'
        '<line x1="{l}" y1="{b}" x2="{r}" y2="{b}" stroke="#999"/>'
        '<text x="{lx}" y="{ty}" font-size="10" text-anchor="end">{top}</text>'
        '<text x="{lx}" y="{b}" font-size="10" text-anchor="end">0</text>'
        '<text x="{l}" y="{xy}" font-size="10">{x0}</text>'
        '<text x="{r}" y="{xy}" font-size="10" text-anchor="end">{x1}</text>'
        '<text x="{mid}" y="{xy}" font-size="10" text-anchor="middle">{legend}</text>'
        "{lines}</svg>",
        title=title,
        w=WIDTH,
        h=HEIGHT,
        l=PAD_LEFT,
        r=WIDTH - PAD_RIGHT,
        t=PAD_TOP,
        b=bottom,
        lx=PAD_LEFT - 4,
        ty=PAD_TOP + 8,
        tx=PAD_LEFT + 6,
        xy=HEIGHT - 6,
        mid=PAD_LEFT + plot_w // 2,
        top=f"{top:g}",
        x0=x_labels[0],
        x1=x_labels[1],
        legend=legend,
        lines=lines,
    )
