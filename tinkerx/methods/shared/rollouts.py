"""Groups of sampled completions per prompt, their rewards, and the Tinker datums trained on.

Shapes in names: ``_G`` is one value per sample of a group, ``_T`` one per token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from tinkerx.chat import decode_completion, prompt_tokens
from tinkerx.methods.shared.advantages import group_advantages, group_kind
from tinkerx.sampler import sample_prompts


@dataclass
class Sample:
    tokens_T: list[int]
    logprobs_T: list[float]  # the sampler's logprobs of its own tokens
    stop_reason: str
    text: str
    reward: float = 0.0
    advantage: float = 0.0
    penalty: float = 0.0  # shaping added to the reward for the advantage only (e.g. overlong)


@dataclass
class Group:
    example: Any
    prompt_T: list[int]
    samples: list[Sample] = field(default_factory=list)

    @property
    def rewards_G(self) -> list[float]:
        return [s.reward for s in self.samples]

    @property
    def kind(self) -> str:
        return group_kind(self.rewards_G)


@dataclass
class PendingGroups:
    """Rollouts in flight: the requests are out; ``collect`` waits for them."""

    tokenizer: Any
    examples: Sequence[Any]
    prompts: list[list[int]]
    futures: list[Any]

    def collect(self) -> list[Group]:
        groups = []
        for example, prompt_T, future in zip(self.examples, self.prompts, self.futures):
            samples = [
                Sample(list(seq.tokens), list(seq.logprobs), seq.stop_reason, decode_completion(self.tokenizer, seq.tokens))
                for seq in future.result().sequences
            ]
            groups.append(Group(example, prompt_T, samples))
        return groups


def launch_groups(sampling_client: Any, tokenizer: Any, dataset: Any, examples: Sequence[Any], group_size: int, params: Any) -> PendingGroups:
    """Sends the requests for ``group_size`` completions of every example, all at once, and returns
    without waiting (a method can train meanwhile: overlapped rollouts)."""
    prompts = [prompt_tokens(tokenizer, dataset.messages(ex)) for ex in examples]
    return PendingGroups(tokenizer, list(examples), prompts, sample_prompts(sampling_client, prompts, group_size, params))


def sample_groups(sampling_client: Any, tokenizer: Any, dataset: Any, examples: Sequence[Any], group_size: int, params: Any) -> list[Group]:
    """``group_size`` completions of every example; all requests are in flight before any wait."""
    return launch_groups(sampling_client, tokenizer, dataset, examples, group_size, params).collect()


def score_groups(
    groups: Sequence[Group], reward: Any, normalize_std: bool = False, penalty: Callable[[Sample], float] | None = None
) -> None:
    """Sets every sample's reward (one concurrent batch through the guarded reward) and advantage.

    ``penalty`` (e.g. DAPO's overlong penalty) shapes the advantage but not the reward reported
    or the group's kind: a group is still ALL-1 when every answer is right, however long.
    """
    samples = [s for g in groups for s in g.samples]
    truths = [g.example.answer for g in groups for _ in g.samples]
    questions = [g.example.question for g in groups for _ in g.samples]  # what a judge reward reads the reply against
    for sample, score in zip(samples, reward.score_batch([s.text for s in samples], truths, questions=questions)):
        sample.reward = float(score)
        sample.penalty = penalty(sample) if penalty is not None else 0.0
    for g in groups:
        shaped_G = [s.reward + s.penalty for s in g.samples]
        for sample, advantage in zip(g.samples, group_advantages(shaped_G, normalize_std)):
            sample.advantage = advantage


def rl_datum(prompt_T: Sequence[int], sample: Sample, advantages_T: Sequence[float] | None = None, ratio_mask: bool = False):
    """A Datum for Tinker's RL losses: prompt + completion, shifted by one.

    Position i predicts ``target_tokens[i]``; prompt positions carry logprob 0 and advantage 0, so
    only the completion's tokens are pushed up or down. ``advantages_T`` (one per completion token)
    replaces the sample's single advantage; ``ratio_mask`` adds GSPO's ``sequence_ratio_mask``
    marking the completion, the tokens its sequence-level ratio is taken over.
    """
    from tinker import types

    tokens_T = list(prompt_T) + sample.tokens_T
    n_prompt = len(prompt_T) - 1  # target positions that are still prompt tokens
    completion_T = list(advantages_T) if advantages_T is not None else [sample.advantage] * len(sample.tokens_T)
    inputs = {
        "target_tokens": tokens_T[1:],
        "logprobs": [0.0] * n_prompt + sample.logprobs_T,
        "advantages": [0.0] * n_prompt + completion_T,
    }
    if ratio_mask:
        inputs["sequence_ratio_mask"] = [0.0] * n_prompt + [1.0] * len(sample.tokens_T)
    return types.Datum(model_input=types.ModelInput.from_ints(tokens_T[:-1]), loss_fn_inputs=inputs)
