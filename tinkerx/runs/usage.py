"""What a run has spent: tokens prefilled, sampled and trained, per model, and their cost.

The clients the service hands out are wrapped (``tinkerx.runs.metered_clients``) so every request
adds its tokens here, whatever method sends it; the lifecycle reads the meter after each step
(``step_metrics``: that step's tokens and the running totals, into ``metrics.jsonl``) and at the end
(``summary``: the totals, into ``summary.json``).

What counts, per request as sent to the service: ``forward_backward`` (and its custom-loss form)
trains every token of each datum; ``forward`` and ``compute_logprobs`` prefill theirs; ``sample``
prefills its prompt once and samples the tokens it returns. An endpoint (``backend=openai``) reports
its own ``usage`` per request: its prompt tokens count as prefilled, its completion tokens as sampled.

``frozen`` tokens are the share sampled or prefilled on a base model's frozen weights
(``create_sampling_client``): a judge, a teacher, or the base model evaluated as itself.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from tinkerx.runs.prices import KINDS, PriceTable

PREFIX = "usage/"


class UsageMeter:
    def __init__(self, prices: PriceTable, default_model: str, reported: Callable[[], dict[str, Any]] | None = None) -> None:
        self.prices = prices
        self.default_model = default_model  # the policy's: what a client of unknown model is counted as
        self._reported = reported  # an endpoint's own running usage (prompt_tokens / completion_tokens)
        self._reported_seen = {"prompt_tokens": 0, "completion_tokens": 0}
        self._lock = threading.Lock()
        self._by_model: dict[str, dict[str, int]] = {}
        self._frozen = 0
        self._at_last_read: dict[str, Any] = self._snapshot()

    # ---- counting ------------------------------------------------------------------------------
    def add(self, kind: str, tokens: int, model: str | None = None, frozen: bool = False) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown token kind {kind!r}; valid: {', '.join(KINDS)}")
        if tokens <= 0:
            return
        with self._lock:
            counts = self._by_model.setdefault(model or self.default_model, dict.fromkeys(KINDS, 0))
            counts[kind] += int(tokens)
            self._frozen += int(tokens) if frozen else 0

    def _pull_reported(self) -> None:
        """Adds what the endpoint reported since the last pull."""
        if self._reported is None:
            return
        usage = self._reported()
        for key, kind in (("prompt_tokens", "prefill"), ("completion_tokens", "sample")):
            now = int(usage.get(key) or 0)
            self.add(kind, now - self._reported_seen[key])
            self._reported_seen[key] = now

    def restore(self, totals: dict[str, Any], unread: dict[str, Any] | None = None) -> None:
        """Continues from a resumed run's totals (``by_model``: model -> ``KIND_tokens``, None for the
        policy's model; ``frozen_tokens``); ``unread`` (the same shape, ``unread()`` of the session that
        saved the point) is counted as spent but not yet reported, so the next step's line reports it."""
        self._add_counts(totals)
        self._at_last_read = self._snapshot()
        self._add_counts(unread or {})

    def _add_counts(self, totals: dict[str, Any]) -> None:
        with self._lock:
            for model, counts in (totals.get("by_model") or {}).items():
                mine = self._by_model.setdefault(model or self.default_model, dict.fromkeys(KINDS, 0))
                for kind in KINDS:
                    mine[kind] += int(counts.get(f"{kind}_tokens", 0) or 0)
            self._frozen += int(totals.get("frozen_tokens") or 0)

    def unread(self) -> dict[str, Any]:
        """What was spent since the last ``step_metrics`` and is in no line yet (``restore``'s shape)."""
        now, before, delta = self._since_last_read()
        by_model = {m: {f"{k}_tokens": c[k] for k in KINDS} for m, c in delta.items() if any(c.values())}
        return {"by_model": by_model, "frozen_tokens": now["frozen"] - before["frozen"]}

    def _since_last_read(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, int]]]:
        """(now, the last read, per model and kind the tokens between them), the endpoint's report pulled first."""
        self._pull_reported()
        now, before = self._snapshot(), self._at_last_read
        delta = {m: {k: c[k] - before["by_model"].get(m, {}).get(k, 0) for k in KINDS} for m, c in now["by_model"].items()}
        return now, before, delta

    # ---- reading -------------------------------------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"by_model": {m: dict(c) for m, c in self._by_model.items()}, "frozen": self._frozen}

    def cost(self, by_model: dict[str, dict[str, int]]) -> float | None:
        """Dollars at the table's prices; None when any model or kind used has no price."""
        total = 0.0
        for model, counts in by_model.items():
            prices = self.prices.for_model(model)
            cost = prices.cost(counts) if prices is not None else (0.0 if not any(counts.values()) else None)
            if cost is None:
                return None
            total += cost
        return total

    def totals(self) -> dict[str, Any]:
        self._pull_reported()
        snap = self._snapshot()
        kinds = {k: sum(c[k] for c in snap["by_model"].values()) for k in KINDS}
        return {**{f"{k}_tokens": v for k, v in kinds.items()}, "total_tokens": sum(kinds.values()),
                "frozen_tokens": snap["frozen"], "cost_usd": self.cost(snap["by_model"]), "by_model": snap["by_model"]}  # fmt: skip

    def step_metrics(self) -> dict[str, Any]:
        """This step's tokens (since the last read) and the running totals, as ``usage/`` metrics.
        A cost the prices cannot give is left out, never written as 0."""
        now, before, delta = self._since_last_read()
        self._at_last_read = now
        metrics: dict[str, Any] = {f"{PREFIX}{k}_tokens": sum(d[k] for d in delta.values()) for k in KINDS}
        if now["frozen"] - before["frozen"]:
            metrics[f"{PREFIX}frozen_tokens"] = now["frozen"] - before["frozen"]
        step_cost, total_cost = self.cost(delta), self.cost(now["by_model"])
        if step_cost is not None:
            metrics[f"{PREFIX}cost_usd"] = step_cost
        metrics[f"{PREFIX}total_tokens"] = sum(c[k] for c in now["by_model"].values() for k in KINDS)
        if total_cost is not None:
            metrics[f"{PREFIX}total_cost_usd"] = total_cost
        return metrics

    def summary(self) -> dict[str, Any]:
        """The totals for ``summary.json``, with per-model counts and the cost in words."""
        totals = self.totals()
        by_model = {m: {f"{k}_tokens": c[k] for k in KINDS} for m, c in totals.pop("by_model").items()}
        return {**totals, "cost": self.cost_text(totals["cost_usd"]), "prices": self.prices.describe(), "by_model": by_model}

    def cost_text(self, cost: float | None) -> str:
        if cost is not None:
            return f"${cost:.4f}"
        missing = [m for m, c in self._snapshot()["by_model"].items() if any(c.values()) and self._unpriced(m, c)]
        return f"unknown (no {self.prices.name} for {', '.join(missing) or 'this run'})"

    def _unpriced(self, model: str, counts: dict[str, int]) -> bool:
        prices = self.prices.for_model(model)
        return prices is None or prices.cost(counts) is None


def budget_reached(totals: dict[str, Any], max_cost: float | None, max_tokens: int | None) -> str | None:
    """Why the run must stop (``training.max_cost`` / ``training.max_tokens`` crossed), or None."""
    if max_tokens is not None and totals["total_tokens"] >= max_tokens:
        return f"{totals['total_tokens']} tokens reached training.max_tokens={max_tokens}"
    if max_cost is not None and totals["cost_usd"] is not None and totals["cost_usd"] >= max_cost:
        return f"${totals['cost_usd']:.4f} reached training.max_cost={max_cost:g}"
    return None

