"""``imagegate usage``: jobs, revenue, provider cost and margin per route and target."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from imagegate.domain.pricing import format_usd

if TYPE_CHECKING:
    from imagegate.store.usage import UsageRow


def usage(
    by: Annotated[
        str, typer.Option(help="route: a line per route, then its targets; target: targets only")
    ] = "route",
    since: Annotated[str, typer.Option(help="how far back: 30m, 24h, 7d")] = "7d",
) -> None:
    """What each route earned and what its providers cost, since a moment."""
    from imagegate.cli.accounts import _fail, run_services
    from imagegate.domain.rates import RateError, parse_duration

    if by not in ("route", "target"):
        _fail("--by: route or target")
    try:
        window = parse_duration(since)
    except RateError as exc:
        _fail(f"--since: {exc}")
    from imagegate.services.reports import usage_report

    rows = run_services(
        lambda services: usage_report(services.db, services.predictions.clock, window)
    )
    _print(rows, "route" if by == "route" else "target")


def _print(rows: list[UsageRow], by: Literal["route", "target"]) -> None:
    from rich.console import Console
    from rich.table import Table

    from imagegate.store.usage import UsageRow

    table = Table("route", "target", "jobs", "completed", "failed", "revenue", "cost", "margin")
    routes = sorted({row.route for row in rows})
    for route in routes:
        mine = [row for row in rows if row.route == route]
        if by == "route":
            total = UsageRow(
                route,
                "(all)",
                *(sum(getattr(r, f) for r in mine) for f in _TOTALS),
            )
            table.add_row(*_cells(total), style="bold")
        for row in mine:
            table.add_row(*_cells(row))
    Console(width=160).print(table)


_TOTALS = ("jobs", "completed", "failed", "revenue_micros", "cost_micros")


def _cells(row: UsageRow) -> list[str]:
    return [
        row.route,
        row.target,
        str(row.jobs),
        str(row.completed),
        str(row.failed),
        format_usd(row.revenue_micros),
        format_usd(row.cost_micros),
        format_usd(row.margin_micros),
    ]
