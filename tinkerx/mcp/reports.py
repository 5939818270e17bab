"""What a training call tells the agent: the figures it needs to decide the next step, from the
metrics the method returned (the full rows are in the run's metrics.jsonl)."""

from __future__ import annotations

from typing import Any

_ITERATION_KEYS = {
    "reward/mean": "reward_mean",
    "reward/std": "reward_std",
    "reward/accuracy": "accuracy",
    "groups/all_0": "all_0",
    "groups/all_1": "all_1",
    "sample/truncation_rate": "truncation_rate",
    "train/datums": "datums_trained",
    "reward/errors": "reward_errors",
}


def sft(rows: list[dict[str, Any]], history: list[dict[str, Any]]) -> dict[str, Any]:
    """Train loss over the call, the latest validation loss, and the overfitting warning if raised."""
    validated = [r for r in history if "val/loss" in r]
    report: dict[str, Any] = {
        "train_loss_first": rows[0]["train/loss"] if rows else None,
        "train_loss_last": rows[-1]["train/loss"] if rows else None,
        "lr": rows[-1]["optim/lr"] if rows else None,
        "val_loss": validated[-1]["val/loss"] if validated else None,
        "val_loss_step": validated[-1]["step"] if validated else None,
        "val_loss_history": [[r["step"], round(r["val/loss"], 5)] for r in validated[-6:]],
        "overfitting_warning": None,
    }
    flagged = [r for r in rows if r.get("val/overfitting")]
    if flagged:
        report["overfitting_warning"] = (
            f"validation loss kept rising while training loss fell (flagged at step {flagged[-1]['step']}): "
            "overfitting; stop here, load an earlier checkpoint, or lower the LR"
        )
    return report


def grpo(rows: list[dict[str, Any]], summary: dict[str, Any], saved: list[dict[str, Any]]) -> dict[str, Any]:
    """Per iteration: reward, accuracy, no-signal groups (ALL-0 / ALL-1), truncation, holdout."""
    iterations = []
    for r in rows:
        it = {"step": r["step"], **{short: r[key] for key, short in _ITERATION_KEYS.items() if key in r}}
        holdout = {k.removeprefix("eval/"): r[k] for k in ("eval/accuracy", "eval/reward_mean") if k in r}
        if holdout:
            it["holdout"] = holdout
        code = {k.removeprefix("code/"): r[k] for k in r if k.startswith("code/")}
        if code:  # a code reward's outcomes this iteration: why rewards are 0 (compile errors, timeouts...)
            it["code"] = code
        iterations.append(it)
    report: dict[str, Any] = {
        "iterations": iterations,
        "updates_total": summary.get("updates", 0),
        "updates_this_call": sum(1 for r in rows if r.get("train/datums", 0) > 0),
        "all_0_groups": sum(r.get("groups/all_0", 0) for r in rows),
        "all_1_groups": sum(r.get("groups/all_1", 0) for r in rows),
        "auto_checkpoints": saved,
    }
    if rows and report["updates_this_call"] == 0:
        report["warning"] = "no update: every group scored alike (ALL-0 or ALL-1); raise max_tokens, change the data or the reward"
    return report
