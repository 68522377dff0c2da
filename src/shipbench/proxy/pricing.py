"""Cost of one call: the suite's Pricing override, else the genai-prices table, else unknown.

Invariants: the override always wins; genai-prices counts `input_tokens` as the WHOLE prompt (cache
reads and writes included) so our normalised Usage is converted before the lookup; an unknown model
gives cost None with price_source "unknown model", never an exception.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import genai_prices

from shipbench.agents.base import Usage
from shipbench.config import Pricing

# our provider names -> genai-prices provider ids (None: let genai-prices match on the model alone)
GENAI_PROVIDER: dict[str, str | None] = {
    "openrouter": "openrouter",
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "openai_compatible": None,
    "replay": None,
}
GENAI_SOURCE = f"genai-prices {genai_prices.__version__}"


@dataclass(frozen=True)
class Price:
    cost_usd: float | None
    source: str


def override_cost(usage: Usage, pricing: Pricing) -> float:
    return (usage.input_tokens * pricing.input_per_mtok
            + usage.output_tokens * pricing.output_per_mtok
            + usage.cache_read_tokens * pricing.cache_read_per_mtok
            + usage.cache_write_tokens * pricing.cache_write_per_mtok) / 1_000_000


def _lookup(usage: Usage, model: str, provider_id: str | None) -> float | None:
    gp_usage = genai_prices.Usage(
        input_tokens=usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calc = genai_prices.calc_price(gp_usage, model, provider_id=provider_id)
    except (LookupError, ValueError, KeyError):
        return None
    return float(calc.total_price)


def price_call(usage: Usage, *, provider: str, models: tuple[str | None, ...], pricing: Pricing | None) -> Price:
    """Price `usage`; `models` are tried in order (as served, then as requested)."""
    if pricing is not None:
        return Price(override_cost(usage, pricing), "suite override")
    provider_id = GENAI_PROVIDER.get(provider)
    for model in dict.fromkeys(m for m in models if m):
        cost = _lookup(usage, model, provider_id)
        if cost is not None:
            return Price(cost, GENAI_SOURCE)
    return Price(None, "unknown model")
