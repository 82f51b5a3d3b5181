"""Money: exact amounts in integer micro-dollars, never floats, and a job's price.

Prices and balances are written by people as decimal dollars ("0.028", 1.5); they are
read through ``Decimal(str(...))`` so that TOML's float 0.028 means exactly 28,000 micros,
and an amount finer than a micro-dollar is refused rather than rounded.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import BeforeValidator

MICROS_PER_USD = 1_000_000
# A sanity bound far above any real price or balance; it keeps amounts inside 63 bits.
MAX_MICROS = 10**15


class AmountError(ValueError):
    pass


def _not_a_bool(value: object) -> object:
    # pydantic would read ``price = true`` as 1.0: a dollar an image, silently.
    if isinstance(value, bool):
        raise ValueError("must be an amount in dollars, not true/false")
    return value


# A dollar amount in a settings file, checked exactly by ``parse_usd`` once read.
DollarField = Annotated[float | int | str, BeforeValidator(_not_a_bool)]


def parse_usd(value: object, *, allow_zero: bool = True) -> int:
    """Micro-dollars from a decimal dollar amount given as text, int or float."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise AmountError(f"{value!r} is not an amount in dollars")
    try:
        amount = Decimal(str(value).strip().removeprefix("$"))
    except InvalidOperation as exc:
        raise AmountError(f"{value!r} is not an amount in dollars") from exc
    if not amount.is_finite():
        raise AmountError(f"{value!r} is not an amount in dollars")
    micros = amount * MICROS_PER_USD
    if micros != micros.to_integral_value():
        raise AmountError(f"{value!r} is finer than a millionth of a dollar")
    if micros < 0:
        raise AmountError(f"{value!r} must not be negative")
    if micros == 0 and not allow_zero:
        raise AmountError(f"{value!r} must be more than zero")
    if micros > MAX_MICROS:
        raise AmountError(f"{value!r} is too large")
    return int(micros)


def format_usd(micros: int) -> str:
    """``$0.028``, ``$1.00``, ``-$0.50``: at least cents, and every digit that is there."""
    sign = "-" if micros < 0 else ""
    text = f"{Decimal(abs(micros)) / MICROS_PER_USD:.6f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{sign}${whole}.{fraction.ljust(2, '0')}"


def job_price(per_image_1k: int, per_image_2k: int, resolution: str, n: int) -> int:
    return (per_image_2k if resolution == "2k" else per_image_1k) * n
