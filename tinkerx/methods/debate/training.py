"""Winners' turns as training data: weight 1 on the winning debater's own tokens, 0 on everything else.

Each winning turn is one datum: the exact prompt the debater was sampled from (question, answers,
the transcript so far, the opponent's words included) at weight 0, then the tokens it wrote at
weight 1. Training on the very tokens sampled keeps the data on-policy, with no re-tokenisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from tinkerx.chat import supervised_datum
from tinkerx.methods.debate.transcript import Transcript, Turn


@dataclass
class WinningTurn:
    debate_id: str
    turn: Turn
    datum: Any  # tinker.types.Datum


def winning_turns(transcripts: Sequence[Transcript]) -> list[WinningTurn]:
    """Every turn of every debate's winner; debates without a parsed verdict give nothing."""
    return [
        WinningTurn(t.setup.id, turn, supervised_datum(turn.prompt_tokens, turn.tokens))
        for t in transcripts
        if t.winner is not None
        for turn in t.turns
        if turn.speaker == t.winner
    ]


def train_on(client: Any, items: Sequence[WinningTurn], adam: Any) -> dict[str, Any]:
    """One forward-backward on ``items`` and one optimizer step; the loss is measured before the step."""
    data = [w.datum for w in items]
    out_future = client.forward_backward(data, "cross_entropy")
    optim_future = client.optim_step(adam)
    out, optim_out = out_future.result(), optim_future.result()
    tokens = sum(len(w.turn.tokens) for w in items)
    per_datum = [_mean_nll(o["logprobs"].tolist(), w.datum.loss_fn_inputs["weights"].tolist()) for o, w in zip(out.loss_fn_outputs, items)]
    return {
        "loss": out.metrics["loss:sum"] / max(tokens, 1),
        "tokens": tokens,
        "per_datum_loss": per_datum,
        "optim": dict(optim_out.metrics or {}),
    }


def _mean_nll(logprobs: Sequence[float], weights: Sequence[float]) -> float:
    total = sum(weights)
    return -sum(lp * w for lp, w in zip(logprobs, weights)) / total if total else 0.0


def policies_record(
    trained: Mapping[str, tuple[Sequence[Any], dict[str, Any]]], datums: Callable[[Sequence[Any], dict[str, Any]], list[dict[str, Any]]]
) -> dict[str, Any]:
    """Per policy of a training step: its loss, tokens and optimizer figures, and ``datums(items, result)``,
    a row per datum it trained on (rejection sampling and RL record different rows)."""
    return {
        policy: {"loss": result["loss"], "tokens": result["tokens"], "optim": result["optim"], "datums": datums(items, result)}
        for policy, (items, result) in trained.items()
    }


def step_record(step: int, learning_rate: float, trained: Mapping[str, tuple[Sequence[WinningTurn], dict[str, Any]]]) -> dict[str, Any]:
    """``training_step_*.json``: per policy, every datum trained on (tokens, weights, its loss) and the step's loss."""

    def datums(items: Sequence[WinningTurn], result: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "debate_id": w.debate_id,
                "speaker": w.turn.speaker,
                "round": w.turn.round,
                "text": w.turn.text,
                "loss": loss,
                "model_input": w.datum.model_input.to_ints(),
                "target_tokens": w.datum.loss_fn_inputs["target_tokens"].tolist(),
                "weights": w.datum.loss_fn_inputs["weights"].tolist(),
            }
            for w, loss in zip(items, result["per_datum_loss"])
        ]

    return {"step": step, "learning_rate": learning_rate, "policies": policies_record(trained, datums)}
