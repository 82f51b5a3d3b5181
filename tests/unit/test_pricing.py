"""Money is exact: decimal dollars in, integer micro-dollars kept, the same text out."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagegate.domain.pricing import AmountError, format_usd, job_price, parse_usd
from imagegate.domain.registry import RegistryError, parse_registry

micros = st.integers(min_value=0, max_value=10**12)


@given(micros)
def test_formatting_and_parsing_round_trip_exactly(amount: int) -> None:
    assert parse_usd(format_usd(amount)) == amount


@given(st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False))
def test_any_amount_to_the_micro_dollar_is_kept_exactly(amount: Decimal) -> None:
    assert parse_usd(str(amount)) == int(amount * 1_000_000)


@pytest.mark.parametrize(
    ("value", "micros"),
    [(0.028, 28_000), ("0.028", 28_000), (1, 1_000_000), ("$1.5", 1_500_000), (0.1 + 0.2, None)],
)
def test_floats_are_read_as_their_decimal_text(value: object, micros: int | None) -> None:
    if micros is None:  # 0.30000000000000004 is finer than a micro-dollar: refused, not rounded
        with pytest.raises(AmountError, match="finer than a millionth"):
            parse_usd(value)
    else:
        assert parse_usd(value) == micros


@pytest.mark.parametrize("value", ["-0.01", "abc", "nan", "inf", True, None, "1e20"])
def test_nonsense_amounts_are_refused(value: object) -> None:
    with pytest.raises(AmountError):
        parse_usd(value)


def test_format_shows_cents_at_least_and_every_digit_there_is() -> None:
    assert [format_usd(m) for m in (0, 1_000_000, 28_000, 1, -500_000)] == [
        "$0.00",
        "$1.00",
        "$0.028",
        "$0.000001",
        "-$0.50",
    ]


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(1, 9))
def test_a_job_costs_n_images_at_its_resolutions_price(one: int, two: int, n: int) -> None:
    assert job_price(one, two, "1k", n) == one * n
    assert job_price(one, two, "2k", n) == two * n


def test_registry_prices_default_to_free_and_2k_to_the_1k_price() -> None:
    text = '[models."a/b"]\nbackend = "mock"\ntasks = ["text-to-image"]\n'
    assert parse_registry(text, "t").routes["a/b"].price_of("2k", 2) == 0
    priced = parse_registry(text + "price = 0.028\n", "t").routes["a/b"]
    assert (priced.price_micros, priced.price_2k_micros) == (28_000, 28_000)
    with pytest.raises(RegistryError, match=r'models."a/b": price_2k: .* must not be negative'):
        parse_registry(text + 'price = 1\nprice_2k = "-1"\n', "t")
