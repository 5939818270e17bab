"""GRPO variants named after their papers: each is a preset of the same few switches.

The presets themselves live in YAML (``conf/method/grpo.yaml``, ``variants:``); this module only
merges them: a switch set explicitly (non-null) wins over the chosen variant's value, which wins
over the ``base`` row (tinkerx's plain recipe). The result is one ``RLRecipe`` of plain values.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

from omegaconf import OmegaConf

from tinkerx.errors import ConfigError
from tinkerx.paths import CONFIG_DIR

RL_LOSSES = ("importance_sampling", "ppo", "cispo", "gspo", "dro")
AGGREGATIONS = ("sum", "sequence_mean", "token_mean", "constant")
OVERLONG = ("keep", "filter", "soft")


@dataclass(frozen=True)
class RLRecipe:
    """Every switch a GRPO variant is made of (plain values, validated)."""

    loss_fn: str               # the Tinker loss the datums are trained with
    clip_low: float | None     # epsilon below 1: ratio clipped at 1 - clip_low (PPO, GSPO, CISPO)
    clip_high: float | None    # epsilon above 1: ratio clipped at 1 + clip_high (clip-higher: > clip_low)
    normalize_std: bool        # advantages divided by the group's reward std
    aggregation: str           # how token losses are combined into the batch loss (see objective.py)
    kl_coef: float             # weight of the per-token KL penalty to the frozen base model (0: off)
    dynamic_sampling: bool     # draw more prompts until the batch has enough groups with signal
    dynamic_sampling_max_rounds: int  # ... at most this many extra draws per step
    overlong: str              # truncated completions: keep | filter (not trained on) | soft (penalised)
    overlong_buffer: float     # soft: the last fraction of max_tokens over which the penalty ramps to -1
    dro_beta: float            # dro only: weight of the quadratic penalty

    def loss_fn_config(self) -> dict[str, float] | None:
        """Tinker's loss_fn_config: clip thresholds bound the ratio itself (1 - eps, 1 + eps)."""
        if self.loss_fn == "dro":
            return {"beta": self.dro_beta}
        if self.loss_fn == "importance_sampling":
            return None
        config = {}
        if self.clip_low is not None:
            config["clip_low_threshold"] = 1.0 - self.clip_low
        if self.clip_high is not None:
            config["clip_high_threshold"] = 1.0 + self.clip_high
        return config or None


SWITCHES = tuple(f.name for f in fields(RLRecipe))


def resolve_recipe(variant: str | None, presets: Mapping[str, Mapping[str, Any]], explicit: Mapping[str, Any]) -> RLRecipe:
    """``base`` row, then the variant's row, then every explicitly set (non-null) switch."""
    if "base" not in presets:
        raise ConfigError("method.variants needs a 'base' row (the switches' defaults)")
    names = [n for n in presets if n != "base"]
    if variant is not None and variant not in names:
        raise ConfigError(f"method.variant {variant!r} is unknown; valid: {', '.join(names)} (or null)")
    unknown = set(explicit) - set(SWITCHES)
    if unknown:
        raise ConfigError(f"method.{sorted(unknown)[0]} is not a GRPO option; the recipe's switches: {', '.join(SWITCHES)}")
    merged: dict[str, Any] = {}
    for row_name in ("base", variant):
        row = (presets.get(row_name) or {}) if row_name else {}
        unknown = set(row) - set(SWITCHES)
        if unknown:
            raise ConfigError(f"method.variants.{row_name} has unknown switch {sorted(unknown)[0]!r}; valid: {', '.join(SWITCHES)}")
        merged.update(row)
    merged.update({k: v for k, v in explicit.items() if v is not None})
    missing = [s for s in SWITCHES if s not in merged]
    if missing:
        raise ConfigError(f"method.variants.base does not set {', '.join(missing)}")
    return _checked(RLRecipe(**{s: merged[s] for s in SWITCHES}))


def _checked(r: RLRecipe) -> RLRecipe:
    def bad(switch: str, valid: str) -> ConfigError:
        return ConfigError(f"method.{switch} {getattr(r, switch)!r} is not valid; valid: {valid}")

    if r.loss_fn not in RL_LOSSES:
        raise ConfigError(f"method.loss_fn {r.loss_fn!r} is not usable for grpo; valid: {', '.join(RL_LOSSES)}")
    if r.aggregation not in AGGREGATIONS:
        raise bad("aggregation", ", ".join(AGGREGATIONS))
    if r.overlong not in OVERLONG:
        raise bad("overlong", ", ".join(OVERLONG))
    if r.clip_low is not None and not 0.0 <= r.clip_low <= 1.0:
        raise bad("clip_low", "an epsilon in [0, 1] (the ratio is clipped at 1 - clip_low)")
    if r.clip_high is not None and r.clip_high < 0.0:
        raise bad("clip_high", "an epsilon >= 0 (the ratio is clipped at 1 + clip_high)")
    if r.kl_coef < 0:
        raise bad("kl_coef", "a coefficient >= 0 (0 turns the KL penalty off)")
    if r.dynamic_sampling_max_rounds < 0:
        raise bad("dynamic_sampling_max_rounds", "an integer >= 0")
    if not 0.0 < r.overlong_buffer <= 1.0:
        raise bad("overlong_buffer", "a fraction of sampling.max_tokens in (0, 1]")
    return r


def yaml_presets() -> dict[str, dict[str, Any]]:
    """The presets of ``conf/method/grpo.yaml``, for a GRPO built in code without a config."""
    return OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "method" / "grpo.yaml").method.variants)  # type: ignore[return-value]
