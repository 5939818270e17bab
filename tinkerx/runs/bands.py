"""Reference bands: the range an experiment's metrics must land in, checked when a run finishes.

An experiment declares them beside its recipe, each with the reward definition it was measured
with and where the band comes from, so a user whose run lands elsewhere can tell "it's my setup"
from "the model cannot":

    bands:
      - metric: accuracy       # an evaluation metric (at baseline/final) or a metrics.jsonl key (at a step or final)
        at: final              # baseline (the step-0 evaluation) | final (a metrics.jsonl key: the last step) | a step number
        range: [0.85, 1.0]     # or ">=": 0.9  or "<=": 0.1
        reward: numeric, exact final answer
        source: seeds 0-2 x torch threads 1, 2 on this project's CPU runner (README)

A run outside a band says so (a printed line; ``band: outside`` and every band's value in
``summary.json``) and still finishes: the band is evidence, not a test. A band naming a metric the run
does not record is refused before the run is built (one line).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinkerx.errors import ConfigError

# What the evaluator reports (summary.json's baseline/final; metrics.jsonl's eval/<key>).
EVAL_KEYS = ("accuracy", "reward_mean", "exact_match", "numeric_match", "ungradable", "mean_completion_tokens", "truncation_rate", "num_examples")
# A run with no reward on conversations (dataset=chat) is scored by its held-out NLL (tinkerx/eval/ungraded.py).
CONVERSATION_KEYS = ("nll", "perplexity", "nll_tokens")
# DPO's held-out evaluation adds its preference figures (tinkerx/methods/dpo/method.py).
PREFERENCE_KEYS = ("pref_accuracy", "pref_margin", "pref_logprob_accuracy")
# Families of held-out figures named by prefix: a code evaluation's pass@k.
EVAL_PREFIXES = ("pass@",)
# An environment run's held-out episodes (tinkerx/envs/evaluate.py), and env_<name> for each metric the environment reports.
ENV_EVAL_KEYS = ("success_rate", "reward_mean", "turns_mean", "num_episodes")
ENV_EVAL_PREFIXES = ("env_",)
# Namespaces of the per-step metrics the methods record in metrics.jsonl.
STEP_NAMESPACES = ("train/", "optim/", "time/", "reward/", "dpo/", "distill/", "debate/", "judge/", "rollout/", "eval/", "val/", "env/", "episodes/")
FORMS = "range: [low, high], '>=': low, or '<=': high"


@dataclass(frozen=True)
class Band:
    metric: str
    at: str | int          # "baseline" | "final" | a step
    low: float | None
    high: float | None
    reward: str
    source: str

    def where(self) -> str:
        return self.at if isinstance(self.at, str) else f"step {self.at}"

    def bounds(self) -> str:
        if self.low is not None and self.high is not None:
            return f"[{self.low:g}, {self.high:g}]"
        return f">= {self.low:g}" if self.low is not None else f"<= {self.high:g}"

    def holds(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


def declared(cfg: Any) -> list[Band]:
    """The config's ``bands``, each checked against what this run records; ConfigError (one line) if not."""
    raw = cfg.get("bands") if cfg is not None else None
    if not raw:
        return []
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(raw, resolve=True) if not isinstance(raw, list) else raw
    if not isinstance(raw, list):
        raise ConfigError(f"bands must be a list of {{metric, at, {FORMS}, reward, source}}, got {type(raw).__name__}")
    return [_checked(_band(i, entry), i, cfg) for i, entry in enumerate(raw)]


def _band(i: int, entry: Any) -> Band:
    where = f"bands[{i}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("metric"), str):
        raise ConfigError(f"{where}: needs metric (a name), at, {FORMS}, reward and source")
    at = entry.get("at", "final")
    if not (at in ("baseline", "final") or (isinstance(at, int) and not isinstance(at, bool) and at > 0)):
        raise ConfigError(f"{where} ({entry['metric']}): at={at!r} is not baseline, final or a step number >= 1")
    low = high = None
    if "range" in entry:
        bounds = entry["range"]
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds) and bounds[0] <= bounds[1]):
            raise ConfigError(f"{where} ({entry['metric']}): range must be [low, high] with low <= high, got {bounds!r}")
        low, high = float(bounds[0]), float(bounds[1])
    elif ">=" in entry or "<=" in entry:
        low = float(entry[">="]) if ">=" in entry else None
        high = float(entry["<="]) if "<=" in entry else None
    else:
        raise ConfigError(f"{where} ({entry['metric']}): give the band as {FORMS}")
    for key in ("reward", "source"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise ConfigError(f"{where} ({entry['metric']}): write the {key} beside the band (what was measured, and where the band comes from)")
    return Band(entry["metric"], at, low, high, entry["reward"], entry["source"])


def _eval_keys(cfg: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What the run's held-out evaluation reports, as (names, prefixes): the evaluator's figures (and
    DPO's preference ones), or an environment run's episode figures."""
    if cfg.get("env") is not None:
        return ENV_EVAL_KEYS, ENV_EVAL_PREFIXES
    if _method_is(cfg, "tinkerx.methods.dpo"):  # held-out pairs are scored with or without an evaluator; the evaluator adds the task's figures
        return (EVAL_KEYS if cfg.get("evaluator") is not None else ()) + PREFERENCE_KEYS, EVAL_PREFIXES
    keys = EVAL_KEYS
    if cfg.get("reward") is None and str((cfg.get("dataset") or {}).get("_target_", "")) == "tinkerx.data.chat.ChatDataset":
        keys += CONVERSATION_KEYS
    return keys, EVAL_PREFIXES


def _method_is(cfg: Any, package: str) -> bool:
    """Whether the run's method is built from ``package`` (its ``_target_``)."""
    return str((cfg.get("method") or {}).get("_target_", "")).startswith(package)


def _evaluated(metric: str, keys: tuple[tuple[str, ...], tuple[str, ...]]) -> bool:
    names, prefixes = keys
    return metric in names or metric.startswith(prefixes)


def _checked(band: Band, i: int, cfg: Any) -> Band:
    where = f"bands[{i}]"
    has_evaluator = cfg.get("evaluator") is not None or _method_is(cfg, "tinkerx.methods.dpo")
    if band.at in ("baseline", "final") and _per_step(band.metric):
        if band.at == "baseline":
            raise ConfigError(f"{where}: {band.metric} is recorded per training step; band it at a step or at final (the run's last step)")
        return band
    if band.at in ("baseline", "final"):
        if _method_is(cfg, "tinkerx.methods.debate"):
            raise ConfigError(f"{where}: a debate run has no baseline or final evaluation; band its per-step debate/ and judge/ metrics at a step or at final")
        if not has_evaluator:
            raise ConfigError(f"{where}: {band.metric} at {band.at} needs an evaluation, and this run has none (evaluator=null)")
        keys = _eval_keys(cfg)
        if not _evaluated(band.metric, keys):
            raise ConfigError(f"{where}: the evaluation records no {band.metric!r} at {band.at}; it records {', '.join(keys[0])}")
        return band
    steps = (cfg.get("training") or {}).get("max_steps")
    if isinstance(steps, int) and band.at > steps:
        raise ConfigError(f"{where}: {band.metric} at step {band.at}, but the run stops at step {steps} (training.max_steps)")
    if band.metric.startswith("eval/"):
        every = (cfg.get("training") or {}).get("eval_every") or 0
        keys = _eval_keys(cfg)
        if not _evaluated(band.metric[5:], keys):
            raise ConfigError(f"{where}: the evaluation records no {band.metric!r}; it records eval/ + {', '.join(keys[0])}")
        if not has_evaluator or not every or band.at % every:
            raise ConfigError(f"{where}: {band.metric} is not recorded at step {band.at} (held-out evaluation every {every or 'no'} steps, training.eval_every); use at: final")
    elif band.metric.startswith("val/"):  # SFT's validation loss: every method.validation_every steps and at the last
        every = (cfg.get("method") or {}).get("validation_every") or 0
        if not every or (band.at % every and band.at != steps):
            raise ConfigError(f"{where}: {band.metric} is not recorded at step {band.at} (validation every {every or 'no'} steps, method.validation_every, and at the last step)")
    elif not band.metric.startswith(STEP_NAMESPACES):
        raise ConfigError(f"{where}: the run records no {band.metric!r} per step; metrics.jsonl keys start with {', '.join(STEP_NAMESPACES)}")
    return band


def _per_step(metric: str) -> bool:
    """A metrics.jsonl key (not a held-out figure): ``at: final`` reads it at the run's last step, so a
    run shortened with training.max_steps is checked where it stopped."""
    return metric.startswith(STEP_NAMESPACES) and not metric.startswith("eval/")


def judge(bands: list[Band], summary: dict, run_dir: Path) -> tuple[dict, list[str]]:
    """The summary's additions (``band``: inside | outside | unchecked, and ``bands``: each band's
    value and verdict) and one line per band left or not checked."""
    if not bands:
        return {}, []
    steps = _steps(run_dir / "metrics.jsonl") if any(isinstance(b.at, int) or _per_step(b.metric) for b in bands) else {}
    results, lines = [], []
    for band in bands:
        if isinstance(band.at, int):
            value = steps.get(band.at, {}).get(band.metric)
        elif _per_step(band.metric):
            value = steps[max(steps)].get(band.metric) if steps else None
        else:
            value = (summary.get(band.at) or {}).get(band.metric)
        entry = {"metric": band.metric, "at": band.at, "band": band.bounds(), "value": value, "source": band.source}
        if not isinstance(value, (int, float)):
            entry["verdict"] = "unchecked"
            lines.append(f"band: {band.metric} at {band.where()} was not recorded, so its band {band.bounds()} was not checked")
        else:
            entry["verdict"] = "inside" if band.holds(float(value)) else "outside"
            if entry["verdict"] == "outside":
                lines.append(f"band: outside: {band.metric} at {band.where()} = {value:.4g}, its band is {band.bounds()} ({band.source})")
        results.append(entry)
    verdicts = {r["verdict"] for r in results}
    overall = "outside" if "outside" in verdicts else "unchecked" if "unchecked" in verdicts else "inside"
    return {"band": overall, "bands": results}, lines


def _steps(metrics: Path) -> dict[int, dict]:
    """metrics.jsonl by step; a step logged in several lines (train, then eval) merged."""
    by_step: dict[int, dict] = {}
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                by_step.setdefault(row["step"], {}).update(row)
    return by_step
