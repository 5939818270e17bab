"""Policy-gradient training of the debaters on the verdict reward (``method.training=rl``).

Per group (one question, ``group_size`` debates) and per debater role, each debate's advantage is
its reward minus the group's mean for that role (GRPO; divided by the group's std with
``method.normalize_std``, which matters for a judge that hardly separates the debates); with zero-sum rewards debater B's advantages
are A's negated. Each datum is one debater's whole context in one debate (tinkerx/envs/episode.py
``trained_tokens``): its sampled tokens at that advantage, everything else -- the question, the
opponent's arguments, the template -- at 0, so the judge's and the other side's tokens are never
trained. Tinker's ``importance_sampling`` loss, summed over tokens (tinkerx's plain GRPO recipe).
In self-play both roles' datums train the one shared policy; with two policies each trains its own.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tinkerx.envs.debate import DEBATERS
from tinkerx.envs.episode import Episode, trained_tokens
from tinkerx.methods.debate.training import policies_record
from tinkerx.methods.shared.advantages import group_advantages
from tinkerx.methods.shared.rollouts import Sample, rl_datum

LOSS = "importance_sampling"


def debater_data(groups: Sequence[Sequence[Episode]], policy_of_role: Mapping[str, str], normalize_std: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Per policy, its datums with what they were built from; debates with zero advantage are left out
    (they would change nothing), so a group the judge scored alike trains nothing."""
    out: dict[str, list[dict[str, Any]]] = {}
    for g, episodes in enumerate(groups):
        for role in DEBATERS:
            played = [(k, e, trained_tokens(e, role)) for k, e in enumerate(episodes)]
            played = [(k, e, seen) for k, e, seen in played if seen is not None]
            if not played:
                continue
            rewards = [e.reward_of(role) for _, e, _ in played]
            for (k, e, seen), reward, advantage in zip(played, rewards, group_advantages(rewards, normalize_std)):
                if advantage == 0.0:
                    continue
                last = e.role_turns(role)[-1]
                sample = Sample(seen.tokens_T, seen.logprobs_T, last.stop_reason, last.text, reward, advantage, mask_T=seen.mask_T, episode=e)
                out.setdefault(policy_of_role[role], []).append(
                    {"group": g, "debate": k, "role": role, "reward": reward, "advantage": advantage, "sample": sample,
                     "datum": rl_datum(seen.prompt_T, sample), "tokens": sample.policy_tokens}  # fmt: skip
                )
    return out


def train_rl(client: Any, items: Sequence[dict[str, Any]], adam: Any) -> dict[str, Any]:
    """One forward-backward on the debaters' datums and one optimizer step."""
    fwd = client.forward_backward([i["datum"] for i in items], LOSS)
    opt = client.optim_step(adam)
    out, opt_out = fwd.result(), opt.result()
    tokens = sum(i["tokens"] for i in items)
    return {"loss": out.metrics["loss:sum"] / max(tokens, 1), "tokens": tokens, "optim": dict(opt_out.metrics or {})}


def rl_record(step: int, learning_rate: float, trained: Mapping[str, tuple[Sequence[dict[str, Any]], dict[str, Any]]], debate_ids: Sequence[Sequence[str]]) -> dict[str, Any]:
    """``debates/training_step_*.json`` for RL: per policy, every datum (whose debate, role, reward,
    advantage, tokens trained) and the step's loss."""

    def datums(items: Sequence[dict[str, Any]], result: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"debate_id": debate_ids[i["group"]][i["debate"]], "role": i["role"], "reward": i["reward"], "advantage": i["advantage"],
             "trained_tokens": i["tokens"], "model_input": i["datum"].model_input.to_ints(),
             "advantages": i["datum"].loss_fn_inputs["advantages"].tolist()}  # fmt: skip
            for i in items
        ]

    return {"step": step, "learning_rate": learning_rate, "loss_fn": LOSS, "policies": policies_record(trained, datums)}
