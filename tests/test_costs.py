"""PriceBook: catalog prices per provider id, cache tokens, tiers, overrides, unknown models, speed."""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest
from genai_prices import Usage as CatalogUsage
from genai_prices import calc_price
from genai_prices.types import ConditionalPrice, ModelPrice, StartDateConstraint, TimeOfDateConstraint

from ccm_tui.config import ProviderSettings
from ccm_tui.core.contract import Variant
from ccm_tui.core.events import Usage
from ccm_tui.telemetry.costs import PriceBook, _expiry

PROVIDERS = (
    ProviderSettings(name="anthropic", kind="anthropic"),
    ProviderSettings(name="bedrock", kind="bedrock", region="us-west-2"),
    ProviderSettings(name="vertex", kind="vertex", region="us-east5", project="p"),
    ProviderSettings(name="gemini", kind="gemini"),
    ProviderSettings(name="openrouter", kind="openai", base_url="https://openrouter.ai/api/v1"),
    ProviderSettings(name="openai", kind="openai", base_url="https://api.openai.com/v1"),
    ProviderSettings(name="groq", kind="openai", base_url="https://api.groq.com/openai/v1"),
    ProviderSettings(name="github", kind="openai", base_url="https://models.github.ai/inference"),
    ProviderSettings(name="local", kind="openai", base_url="http://127.0.0.1:1234/v1"),
    ProviderSettings(
        name="local-priced", kind="openai", base_url="http://127.0.0.1:1234/v1", price_input_mtok=2, price_output_mtok=8
    ),
    ProviderSettings(name="anthropic-deal", kind="anthropic", price_input_mtok=1.0, price_output_mtok=5.0),
    ProviderSettings(
        name="github-paid", kind="openai", base_url="https://models.github.ai/inference", price_input_mtok=0.5
    ),
    ProviderSettings(name="mistral", kind="openai", base_url="https://api.mistral.ai/v1", vendor="mistral"),
)

MILLION_IN_100K_OUT = Usage(input_tokens=1_000_000, output_tokens=100_000)
# §5 cache example: 1M input in total, of which 200k written to and 700k read from the cache.
CACHE_EXAMPLE = Usage(input_tokens=100_000, cache_creation_input_tokens=200_000, cache_read_input_tokens=700_000)


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook(PROVIDERS)


@pytest.mark.parametrize(
    ("provider", "model", "usage", "expected"),
    [
        ("anthropic", "claude-sonnet-4", MILLION_IN_100K_OUT, 4.50),
        ("bedrock", "anthropic.claude-sonnet-4-20250514-v1:0", MILLION_IN_100K_OUT, 4.50),
        ("bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", MILLION_IN_100K_OUT, 4.50),
        ("vertex", "claude-sonnet-4@20250514", MILLION_IN_100K_OUT, 4.50),
        ("openrouter", "anthropic/claude-sonnet-4", MILLION_IN_100K_OUT, 4.50),
        ("anthropic", "claude-sonnet-4", CACHE_EXAMPLE, 1.26),
        ("openai", "gpt-4o-mini", MILLION_IN_100K_OUT, 0.21),
        ("openrouter", "openai/gpt-4o-mini", MILLION_IN_100K_OUT, 0.21),
        ("github", "openai/gpt-4.1", MILLION_IN_100K_OUT, 0.0),
        ("local", "gpt-4o-mini", MILLION_IN_100K_OUT, 0.21),  # custom endpoint: matched without a provider id
        ("local-priced", "my-finetune", MILLION_IN_100K_OUT, 2.0 + 0.8),
        ("anthropic-deal", "claude-sonnet-4", MILLION_IN_100K_OUT, 1.0 + 0.5),  # override beats the catalog
        ("anthropic-deal", "claude-sonnet-4", Usage(cache_read_input_tokens=1_000_000), 0.1),  # keeps 0.1x ratio
        ("github-paid", "openai/gpt-4.1", MILLION_IN_100K_OUT, 0.5),  # input override only; output stays free
        ("gemini", "models/gemini-2.5-flash", MILLION_IN_100K_OUT, 0.3 + 0.25),
        ("anthropic", "claude-sonnet-4", Usage(), 0.0),
    ],
)
def test_cost_usd_known_prices(book: PriceBook, provider: str, model: str, usage: Usage, expected: float) -> None:
    assert book.cost_usd(provider, model, usage) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("anthropic", "claude-from-the-future-9"),
        ("local", "totally-unknown-model-xyz"),
        ("openai", "no-such-gpt"),
        ("not-configured", "claude-sonnet-4"),
    ],
)
def test_unknown_price_is_none(book: PriceBook, provider: str, model: str) -> None:
    assert book.cost_usd(provider, model, MILLION_IN_100K_OUT) is None
    assert book.price_per_mtok(provider, model) is None


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("anthropic", "claude-sonnet-4", (3.0, 15.0)),
        ("openai", "gpt-4o-mini", (0.15, 0.6)),
        ("github", "openai/gpt-4.1", (0.0, 0.0)),
        ("local-priced", "anything", (2.0, 8.0)),
        ("anthropic-deal", "claude-opus-4-1", (1.0, 5.0)),
    ],
)
def test_price_per_mtok(book: PriceBook, provider: str, model: str, expected: tuple[float, float]) -> None:
    assert book.price_per_mtok(provider, model) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("provider", "provider_id", "model"),
    [
        ("anthropic", "anthropic", "claude-sonnet-4-5"),  # tiered above 200k input tokens
        ("anthropic", "anthropic", "claude-opus-4-1"),
        ("anthropic", "anthropic", "claude-haiku-4-5"),
        ("bedrock", "aws", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("vertex", "google", "claude-sonnet-4-5@20250929"),
        ("gemini", "google", "gemini-2.5-pro"),
        ("openrouter", "openrouter", "anthropic/claude-sonnet-4.5"),
        ("openai", "openai", "gpt-5"),
        ("groq", "groq", "openai/gpt-oss-120b"),
        ("groq", "groq", "llama-3.1-8b-instant"),  # no cache price: cache tokens cost input
        ("mistral", "mistral", "mistral-large-latest"),  # vendor string used as a catalog provider id
    ],
)
@pytest.mark.parametrize(
    "usage",
    [
        Usage(1_000, 200),
        Usage(100_000, 2_000, 50_000, 80_000),
        Usage(150_000, 5_000, 10_000, 100_000),  # 260k total: above the 200k tier
    ],
)
def test_cost_matches_genai_prices_calc_price(
    book: PriceBook, provider: str, provider_id: str, model: str, usage: Usage
) -> None:
    reference = calc_price(
        CatalogUsage(
            input_tokens=usage.total_input_tokens,  # genai-prices counts cache tokens inside input_tokens
            output_tokens=usage.output_tokens,
            cache_write_tokens=usage.cache_creation_input_tokens,
            cache_read_tokens=usage.cache_read_input_tokens,
        ),
        model,
        provider_id=provider_id,
    )
    assert book.cost_usd(provider, model, usage) == pytest.approx(float(reference.total_price), rel=1e-12)


def test_tier_applies_to_the_whole_request_above_200k(book: PriceBook) -> None:
    below = book.cost_usd("anthropic", "claude-sonnet-4-5", Usage(input_tokens=200_000))
    above = book.cost_usd("anthropic", "claude-sonnet-4-5", Usage(input_tokens=200_001))
    assert below == pytest.approx(0.6)
    assert above == pytest.approx(200_001 * 6 / 1e6)


def test_warm_resolves_configured_pairs_without_network_updates() -> None:
    openrouter = ProviderSettings(
        name="or",
        kind="openai",
        base_url="https://openrouter.ai/api/v1",
        models={"sonnet": (Variant("anthropic/claude-sonnet-4"),), "haiku": (Variant("no-such/model"),)},
    )
    book = PriceBook([openrouter])
    assert book.configured_pairs() == [("or", "anthropic/claude-sonnet-4"), ("or", "no-such/model")]
    book.warm([*book.configured_pairs(), ("nobody", "x")])
    assert book.cost_usd("or", "anthropic/claude-sonnet-4", MILLION_IN_100K_OUT) == pytest.approx(4.5)
    assert book.cost_usd("or", "no-such/model", MILLION_IN_100K_OUT) is None
    assert not any(thread.name.startswith("genai_prices") for thread in threading.enumerate())


def test_cost_usd_is_fast_after_warm_up(book: PriceBook) -> None:
    usage = Usage(12_000, 800, 3_000, 40_000)
    book.warm([("anthropic", "claude-sonnet-4-5")])
    calls = 20_000
    start = time.perf_counter()
    for _ in range(calls):
        book.cost_usd("anthropic", "claude-sonnet-4-5", usage)
    per_call = (time.perf_counter() - start) / calls
    assert per_call < 50e-6  # ~1 µs measured; generous for a loaded 2-core machine


def _model_with(prices: list[ConditionalPrice]) -> SimpleNamespace:
    return SimpleNamespace(prices=prices)


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        (ModelPrice(), math.inf),
        ([ConditionalPrice(prices=ModelPrice())], math.inf),
        (
            [
                ConditionalPrice(prices=ModelPrice()),
                ConditionalPrice(constraint=StartDateConstraint(start_date=date(2030, 1, 1)), prices=ModelPrice()),
            ],
            datetime(2030, 1, 1, tzinfo=UTC).timestamp(),
        ),
        (
            [ConditionalPrice(constraint=StartDateConstraint(start_date=date(2020, 1, 1)), prices=ModelPrice())],
            math.inf,
        ),
    ],
)
def test_resolved_prices_expire_when_the_catalog_schedules_a_change(prices: object, expected: float) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
    assert _expiry(SimpleNamespace(prices=prices), now) == expected


def test_time_of_day_prices_are_rechecked_every_minute() -> None:
    from datetime import time as time_of_day

    now = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
    constraint = TimeOfDateConstraint(start_time=time_of_day(16, 30), end_time=time_of_day(0, 30))
    model = _model_with(
        [ConditionalPrice(prices=ModelPrice()), ConditionalPrice(constraint=constraint, prices=ModelPrice())]
    )
    assert _expiry(model, now) == now + 60
