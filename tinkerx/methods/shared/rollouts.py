"""Groups of episodes per task, their rewards, and the Tinker datums trained on.

Every rollout runs through the episode runner (tinkerx/envs): a data set's prompt is a one-turn
environment (``launch_groups``), a game or a tool-use task a multi-turn one (``launch_env_groups``).
A ``Sample`` is one episode as the trained role saw it: its first prompt, then every token after it --
sampled tokens (``mask_T`` 1, trained) and the environment's, tools' and template's tokens between
turns (``mask_T`` 0, never trained). A one-turn episode has no such tokens and no mask.

Shapes in names: ``_G`` is one value per sample of a group, ``_T`` one per token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from tinkerx.envs.episode import Episode, trained_tokens
from tinkerx.envs.one_turn import POLICY, OneTurnGroup
from tinkerx.envs.runner import EpisodeLimits, EpisodeRunner, PendingEpisodes
from tinkerx.methods.shared.advantages import group_advantages, group_kind


@dataclass
class Sample:
    tokens_T: list[int]
    logprobs_T: list[float]  # the sampler's logprobs of its own tokens (0.0 on tokens it did not sample)
    stop_reason: str
    text: str
    reward: float = 0.0
    advantage: float = 0.0
    penalty: float = 0.0  # shaping added to the reward for the advantage only (e.g. overlong)
    mask_T: list[float] | None = None  # 1.0 where the policy sampled the token; None: every token
    episode: Episode | None = None

    @property
    def policy_tokens(self) -> int:
        return len(self.tokens_T) if self.mask_T is None else int(sum(self.mask_T))


@dataclass
class Group:
    example: Any
    prompt_T: list[int]
    samples: list[Sample] = field(default_factory=list)
    env_group: Any = None  # the environment's group (scores its own episodes); None: the run's reward scores the replies
    episodes: list[Episode] = field(default_factory=list)  # every episode, also those with no policy turn

    @property
    def rewards_G(self) -> list[float]:
        return [s.reward for s in self.samples]

    @property
    def kind(self) -> str:
        return group_kind(self.rewards_G) if self.samples else "all_0"


@dataclass
class PendingGroups:
    """Rollouts in flight: the first turns are sent; ``collect`` runs the episodes and waits for them."""

    tokenizer: Any
    env_groups: Sequence[Any]
    episodes: PendingEpisodes

    def collect(self) -> list[Group]:
        return [as_group(g, episodes) for g, episodes in zip(self.env_groups, self.episodes.collect())]


def as_group(env_group: Any, episodes: list[Episode], role: str = POLICY) -> Group:
    """One task's episodes as the trained ``role`` saw them; episodes where it never acted are kept
    in ``episodes`` (counted, recorded) but not trained on."""
    samples: list[Sample] = []
    prompt_T: list[int] = []
    for episode in episodes:
        seen = trained_tokens(episode, role)
        if seen is None:
            continue
        prompt_T = prompt_T or seen.prompt_T
        if seen.prompt_T != prompt_T:
            raise ValueError("episodes of one group must open with the same prompt (one task per group)")
        last = episode.role_turns(role)[-1]
        one_turn = all(m == 1.0 for m in seen.mask_T)
        samples.append(Sample(seen.tokens_T, seen.logprobs_T, last.stop_reason, last.text, mask_T=None if one_turn else seen.mask_T, episode=episode))
    scored_by_reward = getattr(env_group, "scored_by_reward", False)
    return Group(env_group.task, prompt_T, samples, None if scored_by_reward else env_group, episodes)


def launch_groups(sampling_client: Any, tokenizer: Any, dataset: Any, examples: Sequence[Any], group_size: int, params: Any) -> PendingGroups:
    """Sends the requests for ``group_size`` one-turn episodes of every example, all at once, and
    returns without waiting (a method can train meanwhile: overlapped rollouts)."""
    groups = [OneTurnGroup(ex, dataset.messages(ex)) for ex in examples]
    return launch_env_groups({POLICY: sampling_client}, tokenizer, groups, group_size, params, EpisodeLimits())


def launch_env_groups(policies: dict[str, Any], tokenizer: Any, env_groups: Sequence[Any], group_size: int, params: Any, limits: EpisodeLimits) -> PendingGroups:
    runner = EpisodeRunner(tokenizer, params, limits)
    return PendingGroups(tokenizer, list(env_groups), runner.launch(env_groups, group_size, policies))


def sample_groups(sampling_client: Any, tokenizer: Any, dataset: Any, examples: Sequence[Any], group_size: int, params: Any) -> list[Group]:
    """``group_size`` completions of every example; all requests are in flight before any wait."""
    return launch_groups(sampling_client, tokenizer, dataset, examples, group_size, params).collect()


def score_groups(
    groups: Sequence[Group], reward: Any, normalize_std: bool = False, penalty: Callable[[Sample], float] | None = None
) -> None:
    """Sets every sample's reward and advantage.

    A data set's replies are scored by the run's ``reward`` (one concurrent batch through the guarded
    reward); an environment's episodes carry their own reward (turn rewards + group reward).
    ``penalty`` (e.g. DAPO's overlong penalty) shapes the advantage but not the reward reported
    or the group's kind: a group is still ALL-1 when every answer is right, however long.
    """
    by_reward = [s for g in groups if g.env_group is None for s in g.samples]
    truths = [g.example.answer for g in groups if g.env_group is None for _ in g.samples]
    questions = [g.example.question for g in groups if g.env_group is None for _ in g.samples]  # what a judge reward reads the reply against
    for sample, score in zip(by_reward, reward.score_batch([s.text for s in by_reward], truths, questions=questions) if by_reward else []):
        sample.reward = float(score)
    for g in groups:
        if g.env_group is not None:
            for sample in g.samples:
                sample.reward = float(sample.episode.reward)
        for sample in g.samples:
            sample.penalty = penalty(sample) if penalty is not None else 0.0
        shaped_G = [s.reward + s.penalty for s in g.samples]
        for sample, advantage in zip(g.samples, group_advantages(shaped_G, normalize_std) if shaped_G else []):
            sample.advantage = advantage


def rl_datum(prompt_T: Sequence[int], sample: Sample, advantages_T: Sequence[float] | None = None, ratio_mask: bool = False):
    """A Datum for Tinker's RL losses: prompt + the tokens after it, shifted by one.

    Position i predicts ``target_tokens[i]``; prompt positions -- and, in a multi-turn episode, every
    token the policy did not sample -- carry logprob 0 and advantage 0, so only the policy's own tokens
    are pushed up or down. ``advantages_T`` (one per token after the prompt) replaces the sample's
    single advantage; ``ratio_mask`` adds GSPO's ``sequence_ratio_mask`` marking the sampled tokens,
    the tokens its sequence-level ratio is taken over.
    """
    from tinker import types

    tokens_T = list(prompt_T) + sample.tokens_T
    n_prompt = len(prompt_T) - 1  # target positions that are still prompt tokens
    if advantages_T is not None:
        completion_T = list(advantages_T)
    elif sample.mask_T is None:
        completion_T = [sample.advantage] * len(sample.tokens_T)
    else:
        completion_T = [sample.advantage * m for m in sample.mask_T]
    inputs = {
        "target_tokens": tokens_T[1:],
        "logprobs": [0.0] * n_prompt + sample.logprobs_T,
        "advantages": [0.0] * n_prompt + completion_T,
    }
    if ratio_mask:
        inputs["sequence_ratio_mask"] = [0.0] * n_prompt + (sample.mask_T if sample.mask_T is not None else [1.0] * len(sample.tokens_T))
    return types.Datum(model_input=types.ModelInput.from_ints(tokens_T[:-1]), loss_fn_inputs=inputs)
