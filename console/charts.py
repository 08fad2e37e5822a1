"""Bar charts drawn on the server as inline SVG, no script: the geometry is computed here
and the markup lives in ``templates/controlplane/_dash_bars.html`` and ``_dash_daily.html``.

Coordinates are handed to the templates as strings formatted here, with a dot: a locale's
number formatting must never turn 12.5 into "12,5" inside an SVG attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from console.dashboard import CostItem, DaySpend

ROW = 36  # px per horizontal bar: a label line, then the bar
BAR = 10
LABEL_CHARS = 32


def _num(value: float) -> str:
    return f"{value:.2f}"


@dataclass(frozen=True)
class HBar:
    label: str
    short_label: str
    value: Decimal
    runs: int
    width: str  # percent of the chart's width
    label_y: str
    bar_y: str


@dataclass(frozen=True)
class HBarChart:
    bars: list[HBar]
    height: int
    total: Decimal

    @property
    def empty(self) -> bool:
        return not self.bars


def hbars(items: list[CostItem]) -> HBarChart:
    """One bar per item, as long as its share of the largest; each bar under its label.
    The SVG is as wide as its box and ``height`` pixels tall, so text is never scaled."""
    largest = max((item.cost for item in items), default=Decimal(0))
    bars = []
    for index, item in enumerate(items):
        share = float(item.cost / largest * 100) if largest else 0.0
        short = (
            item.label if len(item.label) <= LABEL_CHARS else item.label[: LABEL_CHARS - 1] + "…"
        )
        bars.append(
            HBar(
                label=item.label,
                short_label=short,
                value=item.cost,
                runs=item.runs,
                width=_num(max(share, 0.5) if item.cost > 0 else 0.0),
                label_y=_num(index * ROW + 14),
                bar_y=_num(index * ROW + 20),
            )
        )
    return HBarChart(
        bars=bars, height=len(bars) * ROW, total=sum((i.cost for i in items), Decimal(0))
    )


# Day names in English whatever the process's locale (strftime's %a and %b follow it).
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Column:
    day: date
    cost: Decimal
    runs: int
    x: str
    y: str
    width: str
    height: str

    # The day's texts, made here: 60 date filters in the template cost more than the rest
    # of the chart.
    @property
    def name(self) -> str:
        """Sat Mar 14"""
        return f"{WEEKDAYS[self.day.weekday()]} {MONTHS[self.day.month - 1]} {self.day.day}"

    @property
    def iso(self) -> str:
        """2026-03-14"""
        return self.day.isoformat()

    @property
    def dated(self) -> str:
        """Sat 2026-03-14"""
        return f"{WEEKDAYS[self.day.weekday()]} {self.day.isoformat()}"


@dataclass(frozen=True)
class ColumnChart:
    columns: list[Column]
    total: Decimal
    peak: Column | None  # the costliest day, None when nothing was spent
    width: int
    height: int

    @property
    def empty(self) -> bool:
        return self.peak is None

    @property
    def first_day(self) -> date | None:
        return self.columns[0].day if self.columns else None

    @property
    def last_day(self) -> date | None:
        return self.columns[-1].day if self.columns else None


def day_columns(days: list[DaySpend], *, width: int = 300, height: int = 100) -> ColumnChart:
    """One column per day in a ``width`` by ``height`` box (the SVG stretches it to its
    frame), each as tall as its share of the costliest day; a day without spend is there,
    at zero height."""
    step = width / len(days) if days else 0.0
    gap = min(2.0, step / 4)
    largest = max((day.cost for day in days), default=Decimal(0))
    columns = []
    for index, day in enumerate(days):
        tall = float(day.cost / largest) * height if largest else 0.0
        columns.append(
            Column(
                day=day.day,
                cost=day.cost,
                runs=day.runs,
                x=_num(index * step + gap / 2),
                y=_num(height - tall),
                width=_num(step - gap),
                height=_num(tall),
            )
        )
    peak = max(columns, key=lambda column: column.cost) if largest > 0 else None
    return ColumnChart(
        columns=columns,
        total=sum((day.cost for day in days), Decimal(0)),
        peak=peak,
        width=width,
        height=height,
    )
