"""The admin API (``/admin/v1``): accounts, balances and keys over HTTP, what the
``imagegate accounts`` and ``imagegate keys`` commands do. Only the admin key
(``IMAGEGATE_ADMIN_KEY``) opens it; an ordinary API key never does."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from imagegate.api.deps import AdminDep, ServicesDep
from imagegate.api.envelope import ok
from imagegate.api.routes.responses import errors
from imagegate.domain.pricing import AmountError, format_usd, parse_usd
from imagegate.domain.rates import Limits, RateError, parse_duration, parse_rate
from imagegate.errors import BadRequestError, NotFoundError
from imagegate.services.accounts import AccountRecord, KeyRecord, Statement
from imagegate.wire import Envelope
from imagegate.wire_admin import (
    AccountCreate,
    AccountInfo,
    KeyCreate,
    KeyInfo,
    KeyList,
    LedgerEntryInfo,
    PredictionRouting,
    TopUp,
)

router = APIRouter(prefix="/admin/v1", tags=["admin"], dependencies=[AdminDep])

Id = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


def _dollars(micros: int | None) -> str | None:
    return None if micros is None else format_usd(micros).replace("$", "")


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _amount(value: str | int | float, field: str, *, allow_zero: bool = True) -> int:
    try:
        return parse_usd(value, allow_zero=allow_zero)
    except AmountError as exc:
        raise BadRequestError(f"{field}: {exc}") from exc


def _limits(max_concurrent: int | None, rate_limit: str | None) -> Limits:
    if rate_limit is not None:
        try:
            parse_rate(rate_limit)
        except RateError as exc:
            raise BadRequestError(f"rate_limit: {exc}") from exc
    return Limits(max_concurrent=max_concurrent, rate_limit=rate_limit)


def _account(record: AccountRecord, statement: Statement | None = None) -> AccountInfo:
    return AccountInfo(
        id=record.id,
        name=record.name,
        balance=_dollars(record.balance_micros),
        max_concurrent=record.limits.max_concurrent,
        rate_limit=record.limits.rate_limit,
        webhook_secret=record.webhook_secret,
        ledger_total=None if statement is None else _dollars(statement.ledger_total),
        ledger=None
        if statement is None
        else [
            LedgerEntryInfo(
                kind=entry.kind.value,
                amount=_dollars(entry.amount_micros) or "0.00",
                prediction_id=entry.prediction_id,
                created_at=_time(entry.created_at) or "",
            )
            for entry in statement.entries
        ],
    )


def _key(record: KeyRecord, token: str | None = None) -> KeyInfo:
    return KeyInfo(
        id=record.id,
        name=record.name,
        account_id=record.account_id,
        models=None if record.models is None else list(record.models),
        expires_at=_time(record.expires_at),
        revoked_at=_time(record.revoked_at),
        last_used_at=_time(record.last_used_at),
        max_concurrent=record.limits.max_concurrent,
        rate_limit=record.limits.rate_limit,
        key=token,
    )


@router.post(
    "/accounts",
    response_model=Envelope[AccountInfo],
    responses=errors(400, 401, 413),
    summary="Create an account (metered when it has a balance)",
)
async def create_account(services: ServicesDep, body: AccountCreate) -> Response:
    balance = None if body.balance is None else _amount(body.balance, "balance")
    record = await services.accounts.create_account(
        body.name, balance_micros=balance, limits=_limits(body.max_concurrent, body.rate_limit)
    )
    return ok(_account(record))


@router.get(
    "/accounts/{account_id}",
    response_model=Envelope[AccountInfo],
    responses=errors(400, 401, 404),
    summary="An account's balance, limits and recent ledger",
)
async def show_account(
    services: ServicesDep,
    account_id: Id,
    entries: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> Response:
    statement = await services.accounts.statement(account_id, entries)
    return ok(_account(statement.account, statement))


@router.post(
    "/accounts/{account_id}/topup",
    response_model=Envelope[AccountInfo],
    responses=errors(400, 401, 404, 413),
    summary="Add to a metered account's balance",
)
async def topup(services: ServicesDep, account_id: Id, body: TopUp) -> Response:
    await services.accounts.topup(account_id, _amount(body.amount, "amount", allow_zero=False))
    statement = await services.accounts.statement(account_id)
    return ok(_account(statement.account, statement))


@router.post(
    "/keys",
    response_model=Envelope[KeyInfo],
    responses=errors(400, 401, 404, 413),
    summary="Create an API key; the key itself is in this answer only",
)
async def create_key(services: ServicesDep, body: KeyCreate) -> Response:
    expires_at = None
    if body.expires_in is not None:
        try:
            expires_at = services.accounts.clock() + parse_duration(body.expires_in)
        except RateError as exc:
            raise BadRequestError(f"expires_in: {exc}") from exc
    new = await services.accounts.create_key(
        body.name,
        body.account_id,
        models=body.models,
        expires_at=expires_at,
        limits=_limits(body.max_concurrent, body.rate_limit),
    )
    return ok(_key(new.record, new.token))


@router.get(
    "/keys",
    response_model=Envelope[list[KeyInfo]],
    responses=errors(400, 401),
    summary="Keys (never the keys themselves), optionally of one account",
)
async def list_keys(
    services: ServicesDep,
    account_id: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
) -> Response:
    records = await services.accounts.list_keys(account_id)
    return ok(KeyList([_key(record) for record in records]))


@router.post(
    "/keys/{key_id}/revoke",
    response_model=Envelope[KeyInfo],
    responses=errors(400, 401, 404),
    summary="Revoke a key: requests with it get 401 from now on",
)
async def revoke_key(services: ServicesDep, key_id: Id) -> Response:
    return ok(_key(await services.accounts.revoke(key_id)))


@router.get(
    "/predictions/{prediction_id}",
    response_model=Envelope[PredictionRouting],
    responses=errors(400, 401, 404),
    summary="Where a prediction ran: its target, failovers and the provider's job id",
)
async def show_prediction(services: ServicesDep, prediction_id: Id) -> Response:
    job = await services.execution.current(prediction_id)
    if job is None:
        raise NotFoundError(f"prediction {prediction_id!r} not found")
    return ok(
        PredictionRouting(
            id=job.id,
            model=job.route,
            status=job.status.value,
            target=job.target,
            hop=job.hop,
            plan=list(job.plan),
            ran_on=job.ran_on,
            upstream_state=job.upstream_state,
            upstream_id=job.upstream_id,
            price=format_usd(job.price_micros).replace("$", ""),
            cost=format_usd(job.cost_micros).replace("$", ""),
            execution_ms=job.execution_ms,
        )
    )
