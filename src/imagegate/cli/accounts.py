"""``imagegate accounts`` and ``imagegate keys``: who may call the API and what it costs.

Amounts are decimal dollars ("1.00", "0.028"), kept exactly; rates are "10/minute"."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from imagegate.domain.rates import Limits
    from imagegate.services.container import Services

T = TypeVar("T")

accounts_app = typer.Typer(no_args_is_help=True, help="accounts, balances and their ledger")
keys_app = typer.Typer(no_args_is_help=True, help="API keys")

MaxConcurrent = Annotated[
    int | None, typer.Option(min=1, help="unfinished jobs allowed at once [default: no limit]")
]
RateLimit = Annotated[
    str | None, typer.Option(help="requests allowed per window, e.g. 60/minute [default: none]")
]


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def run_services(action: Callable[[Services], Awaitable[T]]) -> T:
    """Run ``action`` against the configured database; a refused request exits 1."""
    import anyio

    from imagegate.errors import ImagegateError
    from imagegate.services.container import open_services
    from imagegate.settings import Settings

    async def main() -> T:
        async with open_services(Settings()) as services:
            return await action(services)

    try:
        return anyio.run(main)
    except ImagegateError as exc:
        _fail(exc.message)


def _limits(max_concurrent: int | None, rate_limit: str | None) -> Limits:
    from imagegate.domain.rates import Limits, RateError, parse_rate

    if rate_limit is not None:
        try:
            parse_rate(rate_limit)
        except RateError as exc:
            _fail(f"--rate-limit: {exc}")
    return Limits(max_concurrent=max_concurrent, rate_limit=rate_limit)


def _usd(text: str, option: str, *, allow_zero: bool = True) -> int:
    from imagegate.domain.pricing import AmountError, parse_usd

    try:
        return parse_usd(text, allow_zero=allow_zero)
    except AmountError as exc:
        _fail(f"{option}: {exc}")


@accounts_app.command("create")
def accounts_create(
    name: Annotated[str, typer.Option(help="a label for the account")],
    balance: Annotated[
        str | None,
        typer.Option(help="opening balance in dollars, e.g. 1.00; omit for unmetered"),
    ] = None,
    max_concurrent: MaxConcurrent = None,
    rate_limit: RateLimit = None,
) -> None:
    """Create an account. Its id is printed alone on the last line."""
    micros = None if balance is None else _usd(balance, "--balance")
    limits = _limits(max_concurrent, rate_limit)
    record = run_services(
        lambda s: s.accounts.create_account(name, balance_micros=micros, limits=limits)
    )
    from imagegate.domain.pricing import format_usd

    metered = "unmetered" if micros is None else f"balance {format_usd(micros)}"
    typer.echo(f"account {name!r}: {metered}", err=True)
    typer.echo(record.id)


@accounts_app.command("topup")
def accounts_topup(
    account_id: Annotated[str, typer.Argument(help="the account id")],
    amount: Annotated[str, typer.Argument(help="dollars to add, e.g. 5.00")],
) -> None:
    """Add to a metered account's balance (a top-up row in its ledger)."""
    from imagegate.domain.pricing import format_usd

    micros = _usd(amount, "AMOUNT", allow_zero=False)
    balance = run_services(lambda s: s.accounts.topup(account_id, micros))
    typer.echo(f"{account_id}: balance {format_usd(balance)}")


@accounts_app.command("show")
def accounts_show(
    account_id: Annotated[str, typer.Argument(help="the account id")],
    entries: Annotated[int, typer.Option(min=1, help="ledger rows to show")] = 20,
) -> None:
    """The balance, limits and recent ledger of an account."""
    from imagegate.domain.pricing import format_usd

    statement = run_services(lambda s: s.accounts.statement(account_id, entries))
    account = statement.account
    balance = account.balance_micros
    typer.echo(f"account   {account.id}  {account.name}")
    typer.echo(f"balance   {'unmetered' if balance is None else format_usd(balance)}")
    typer.echo(f"ledger    {format_usd(statement.ledger_total)} in all")
    typer.echo(f"webhooks  signed with {account.webhook_secret or '(none yet)'}")
    limits = account.limits
    typer.echo(
        f"limits    {limits.max_concurrent or 'no'} unfinished jobs at once, "
        f"rate {limits.rate_limit or 'none'}"
    )
    for entry in statement.entries:
        job = f"  {entry.prediction_id}" if entry.prediction_id else ""
        typer.echo(
            f"{entry.created_at:%Y-%m-%d %H:%M:%S}  {entry.kind.value:<6}  "
            f"{format_usd(entry.amount_micros):>12}{job}"
        )


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="a label for the key")],
    account: Annotated[
        str | None, typer.Option(help="add the key to this account [default: a new one]")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(help="routes the key may use, comma-separated globs, e.g. 'acme/*'"),
    ] = None,
    expires_in: Annotated[
        str | None, typer.Option(help="the key stops working after this long, e.g. 30d, 12h")
    ] = None,
    max_concurrent: MaxConcurrent = None,
    rate_limit: RateLimit = None,
) -> None:
    """Create a key. It is printed once, alone on the last line; only its hash is kept.
    Without --account it gets an unmetered account of its own."""
    from imagegate.domain.rates import RateError, parse_duration
    from imagegate.services.clock import utc_now

    globs = None if models is None else [g.strip() for g in models.split(",") if g.strip()]
    if globs == []:
        _fail("--models: name at least one route or glob")
    expires_at = None
    if expires_in is not None:
        try:
            expires_at = utc_now() + parse_duration(expires_in)
        except RateError as exc:
            _fail(f"--expires-in: {exc}")
    limits = _limits(max_concurrent, rate_limit)
    new = run_services(
        lambda s: s.accounts.create_key(
            name, account, models=globs, expires_at=expires_at, limits=limits
        )
    )
    until = f"  expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
    typer.echo(f"key id: {new.record.id}  account: {new.record.account_id}{until}", err=True)
    typer.echo(new.token)


@keys_app.command("list")
def keys_list(
    account: Annotated[str | None, typer.Option(help="only this account's keys")] = None,
) -> None:
    """Key ids, names, accounts, scopes and states (never the keys themselves)."""
    records = run_services(lambda s: s.accounts.list_keys(account))
    for r in records:
        state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
        if r.expires_at and not r.revoked_at:
            state += f" until {r.expires_at:%Y-%m-%d %H:%M}"
        used = f"{r.last_used_at:%Y-%m-%d %H:%M}" if r.last_used_at else "never"
        scope = ",".join(r.models) if r.models else "*"
        typer.echo(
            f"{r.id}  {r.name}  account={r.account_id}  models={scope}  {state}  last used {used}"
        )


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key id from `keys list`")]) -> None:
    """Revoke a key; requests with it get 401 from now on."""
    run_services(lambda s: s.accounts.revoke(key_id))
    typer.echo(f"revoked {key_id}")
