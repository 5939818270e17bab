"""Per-million-token prices from config (``conf/prices/``), and what a run's tokens cost at them.

Prices are never guessed: a model the table does not list, or a kind of token it has no price for
(a null), makes the cost *unknown* (``None``), never zero. Each table says when its prices were
taken and where from, and the run's summary repeats both beside the cost.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping

from tinkerx.errors import ConfigError

KINDS = ("prefill", "sample", "train")


@dataclass(frozen=True)
class Prices:
    """US dollars per million tokens of each kind; None where the source gives no price."""

    prefill: float | None = None
    sample: float | None = None
    train: float | None = None

    def cost(self, tokens: Mapping[str, int]) -> float | None:
        """The cost of ``tokens`` (kind -> count); None when a kind used has no price."""
        total = 0.0
        for kind in KINDS:
            count = tokens.get(kind, 0)
            if not count:
                continue
            price = getattr(self, kind)
            if price is None:
                return None
            total += count * price / 1e6
        return total


@dataclass(frozen=True)
class PriceTable:
    """Prices by model (the service's model names), with the date they were taken and their source."""

    models: dict[str, Prices] = field(default_factory=dict)
    taken: str | None = None
    source: str | None = None
    name: str = "prices"

    def for_model(self, model: str) -> Prices | None:
        return self.models.get(model)

    def describe(self) -> str:
        """Where the prices come from, for the summary: ``prices of DATE from URL``."""
        when = f" of {self.taken}" if self.taken else ""
        where = f" from {self.source}" if self.source else ""
        return f"{self.name}{when}{where}"


def prices_from(node: Any, where: str) -> Prices:
    if not isinstance(node, Mapping):
        raise ConfigError(f"{where} must map prefill/sample/train to a price per million tokens, got {node!r}")
    unknown = sorted(set(node) - set(KINDS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(KINDS)}")
    values = {}
    for kind in KINDS:
        value = node.get(kind)
        ok = value is None or (isinstance(value, numbers.Real) and not isinstance(value, bool) and value >= 0)
        if not ok:
            raise ConfigError(f"{where}.{kind} must be a price per million tokens >= 0, or null (unknown), got {value!r}")
        values[kind] = None if value is None else float(value)
    return Prices(**values)


def table_from(node: Mapping[str, Any] | None, where: str = "prices") -> PriceTable:
    """The ``prices`` config group as a ``PriceTable`` (its ``models``, ``taken``, ``source``)."""
    node = dict(node or {})
    models = node.get("models") or {}
    if not isinstance(models, Mapping):
        raise ConfigError(f"{where}.models must map model names to prices, got {models!r}")
    return PriceTable(
        models={str(m): prices_from(p, f"{where}.models.{m}") for m, p in models.items()},
        taken=None if node.get("taken") is None else str(node["taken"]),
        source=node.get("source"),
        name=str(node.get("name") or where),
    )


def endpoint_table(node: Mapping[str, Any] | None, model: str, where: str = "prices.endpoint") -> PriceTable:
    """An endpoint's own prices (``prices.endpoint``: prefill = prompt tokens, sample = completion
    tokens), for the model it serves; empty prices when none are given."""
    node = dict(node or {})
    prices = prices_from({k: node.get(k) for k in ("prefill", "sample")}, where)
    return PriceTable(models={model: prices}, taken=node.get("taken"), source=node.get("source"), name="endpoint prices")


def check_priced(prices: PriceTable, models: list[str]) -> None:
    """``training.max_cost`` needs a price for every model the run uses: refused before any step otherwise."""
    missing = [m for m in models if prices.for_model(m) is None]
    if missing:
        listed = ", ".join(prices.models) or "none"
        raise ConfigError(f"training.max_cost: {prices.name} have no price for {', '.join(missing)} (they list: {listed}), "
                          "so the cost is unknown; add the model to conf/prices or budget tokens with training.max_tokens")  # fmt: skip


def check_priced_endpoint(prices: PriceTable, model: str) -> None:
    """``training.max_cost`` on an endpoint needs its prompt and completion prices (``prices.endpoint``)."""
    p = prices.for_model(model)
    if p is None or p.prefill is None or p.sample is None:
        raise ConfigError("training.max_cost on backend=openai needs the endpoint's prices: set prices.endpoint.prefill and "
                          "prices.endpoint.sample (dollars per million prompt / completion tokens), or budget tokens with training.max_tokens")  # fmt: skip
