"""Pydantic models of the admin API (``/admin/v1``): the server's only, kept apart from
``wire`` so that the SDK does not build them on import."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

# Amounts are exact decimal dollars, as text ("1.00", "0.028") or numbers.
Amount = Annotated[str | int | float, Field(description='dollars, e.g. "1.00"')]
RateText = Annotated[str, Field(max_length=40, description="requests per window: 60/minute")]


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    balance: Amount | None = Field(default=None, description="omit for an unmetered account")
    max_concurrent: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    rate_limit: RateText | None = None


class TopUp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    account_id: Annotated[str, Field(min_length=1, max_length=32)] | None = Field(
        default=None, description="omit for a new unmetered account of the key's own"
    )
    models: (
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=200)]],
            Field(min_length=1, max_length=100),
        ]
        | None
    ) = Field(default=None, description="route globs the key may use; omit for all")
    expires_in: Annotated[str, Field(max_length=20)] | None = Field(
        default=None, description="lifetime: 90m, 12h, 30d, 2w"
    )
    max_concurrent: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    rate_limit: RateText | None = None


class LedgerEntryInfo(BaseModel):
    kind: Literal["charge", "refund", "topup"]
    amount: str
    prediction_id: str | None
    created_at: str


class AccountInfo(BaseModel):
    id: str
    name: str
    balance: str | None = Field(description="null for an unmetered account")
    max_concurrent: int | None
    rate_limit: str | None
    ledger_total: str | None = None
    ledger: list[LedgerEntryInfo] | None = None
    webhook_secret: str | None = Field(
        default=None, description="verifies the account's webhook deliveries (whsec_...)"
    )


class KeyInfo(BaseModel):
    id: str
    name: str
    account_id: str
    models: list[str] | None
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None
    max_concurrent: int | None
    rate_limit: str | None
    key: str | None = Field(default=None, description="the key itself: only when created")


class KeyList(RootModel[list[KeyInfo]]):
    pass


class PredictionRouting(BaseModel):
    """Where a prediction ran: for support and for the operator, never for customers
    (a reseller's customers need not learn its providers)."""

    id: str
    model: str
    status: str
    target: int = Field(description="index of the route's target it is at (or ended at)")
    hop: int = Field(description="how many failovers it took")
    plan: list[int] = Field(description="the targets it may try, in order")
    ran_on: str | None = Field(description='the target it completed on: "local", "wavespeed"')
    upstream_state: str | None
    upstream_id: str | None = Field(description="the provider's id of the job")
    price: str = Field(description="what the customer was charged, dollars")
    cost: str = Field(description="what the provider charges for it, dollars")
    execution_ms: int
