"""The debate recipe: each step debates ``num_debates`` questions, has them judged, and trains on the winners.

A step: pick questions (seeded, no repeats within an epoch), assign sides (balanced), run
``rounds`` rounds of turns, ask the judge after the debate and, as the in-run baseline, with no
debate on the same two answers, then (unless ``dry_run``) one cross-entropy step per policy on its
winning turns. Everything a step saw goes to ``debates/``; its numbers to ``metrics.jsonl``.

``training``: ``rejection_sampling`` (the default, above) or ``rl``: each question is debated
``group_size`` times as episodes of tinkerx/envs/debate.py (roles debater_a, debater_b and the frozen
judge), the judge's verdict is the zero-sum reward, and each debater policy takes one policy-gradient
step on its own sampled tokens (rl.py). The same ``debates/`` records, plus ``episodes/step_*.jsonl``.
"""

from __future__ import annotations

import random
import time
from typing import Any

from tinkerx.envs.debate import JUDGE, ROLE_OF, debate_limits
from tinkerx.envs.episode import OUTCOMES
from tinkerx.envs.records import episode_record
from tinkerx.envs.runner import EpisodeRunner
from tinkerx.errors import ConfigError, UserError
from tinkerx.methods.debate.episodes import JudgedGroups
from tinkerx.methods.debate.loop import assign_sides, run_debates
from tinkerx.methods.debate.metrics import RunTally, step_metrics
from tinkerx.methods.debate.prompts import longest_prompts
from tinkerx.methods.debate.rl import debater_data, rl_record, train_rl
from tinkerx.methods.debate.training import step_record, train_on, winning_turns
from tinkerx.methods.shared.policy import base_sampler, load_policy, open_policy, policy_sampler, resume_policy, save_policy
from tinkerx.pipeline import Pipeline, ResumeState
from tinkerx.runs.display import console, show
from tinkerx.runs.rng import restore_random_state

SPLITS = ("train", "validation", "test")
TRAININGS = ("rejection_sampling", "rl")


class Debate:
    name = "debate"

    def __init__(
        self,
        num_debates: int = 8,
        rounds: int = 2,
        dry_run: bool = False,
        self_play: bool = True,
        split: str = "train",
        save_final: bool = True,
        training: str = "rejection_sampling",
        group_size: int = 4,
        normalize_std: bool = False,
    ) -> None:
        if num_debates < 1:
            raise ConfigError(f"method.num_debates must be >= 1, got {num_debates}")
        if rounds < 1:
            raise ConfigError(f"method.rounds must be >= 1, got {rounds}")
        if split not in SPLITS:
            raise ConfigError(f"method.split must be one of {', '.join(SPLITS)}, got {split!r}")
        if training not in TRAININGS:
            raise ConfigError(f"method.training must be one of {', '.join(TRAININGS)}, got {training!r}")
        if training == "rl" and group_size < 2:
            raise ConfigError(f"method.group_size must be >= 2 with method.training=rl (advantages are relative to the group), got {group_size}")
        self.training, self.group_size, self.normalize_std = training, group_size, normalize_std
        self.num_debates, self.rounds, self.dry_run = num_debates, rounds, dry_run
        self.self_play, self.split, self.save_final = self_play, split, save_final
        # Which policy argues each side: one shared policy, or one per side, each trained on its own wins.
        self.policy_of = {"A": "policy", "B": "policy"} if self_play else {"A": "debater_a", "B": "debater_b"}

    def length_prompts(self, example: Any) -> list[list[dict[str, str]]]:
        """What the length check (tinkerx/data/lengths.py) counts for a question: the prompts a debate
        of it renders at their longest, not the data set's own prompt."""
        return longest_prompts(example, self.rounds, self.training)

    shown = ("judge/accuracy_with_debate", "judge/accuracy_without_debate", "judge/unparsed_with_debate", "train/loss")

    def setup(self, p: Pipeline, resume: ResumeState | None = None) -> None:
        self.judge = p.components.get("judge")
        if self.judge is None:
            raise ConfigError("method=debate needs a judge: components.judge (set in conf/method/debate.yaml)")
        self.p = p
        self.questions = _multiple_choice(p.dataset.split(self.split), self.split)
        self.judge.start(p.service, p.base_model, p.tokenizer)
        self.base = base_sampler(p) if self.dry_run else None
        # RL: the judge writes its reply as a role of the episode when it reads the debaters' tokens
        # (no model of its own); a judge on another model replies through its own tokenizer in scoring.
        self.judge_reads = self.judge.model_loader is None
        self.limits = debate_limits(self.rounds, self.judge_reads)
        self.rng = random.Random(p.seed)
        self.order: list[int] = []
        self.tally = RunTally()
        self.total_steps, self.step_index = p.training.max_steps, 0
        if resume is None:
            self.policies = {} if self.dry_run else self._training_clients(p)
            return
        self.policies = {name: resume_policy(p, path) for name, path in resume.checkpoints.items()}
        s = resume.method_state
        self.step_index, self.order = s["step_index"], list(s["order"])
        self.rng.setstate(restore_random_state(s["rng"]))
        self.tally.with_debate.outcomes = list(s["outcomes_with_debate"])
        self.tally.without_debate.outcomes = list(s["outcomes_without_debate"])

    def state(self) -> dict[str, Any]:
        return {
            "step_index": self.step_index,
            "order": list(self.order),
            "rng": self.rng.getstate(),
            "outcomes_with_debate": self.tally.with_debate.outcomes,
            "outcomes_without_debate": self.tally.without_debate.outcomes,
        }

    def start(self) -> dict[str, Any] | None:
        return None  # the judge answering alone, every step, is the baseline

    def step(self) -> dict[str, Any]:
        p = self.p
        step = self.step_index + 1
        started = time.perf_counter()
        if len(self.order) < self.num_debates:  # a new epoch of questions, reshuffled
            epoch = list(range(len(self.questions)))
            self.rng.shuffle(epoch)
            self.order += epoch
        batch = [self.questions[i] for i in self.order[: self.num_debates]]
        del self.order[: self.num_debates]
        setups = assign_sides(batch, self.rng, step)

        clients = {name: policy_sampler(c) for name, c in self.policies.items()}
        debaters = {side: self.base if self.dry_run else clients[name] for side, name in self.policy_of.items()}
        if self.training == "rl":
            transcripts, metrics, debated, judged = self._rl_step(p, debaters, setups, step, started)
        else:
            transcripts = run_debates(debaters, p.tokenizer, setups, self.rounds, p.sampling.params())
            debated = time.perf_counter()
            self.judge.judge(transcripts)
            judged = time.perf_counter()
            self.tally.add(transcripts)
            metrics = step_metrics(transcripts)
            if not self.dry_run:
                metrics.update(self._train(p, self.policies, transcripts, step, self.total_steps))
        for t in transcripts:
            p.recorder.write_json(f"debates/debate_{t.setup.id}.json", t.to_json(step, self.policy_of))
        now = time.perf_counter()
        metrics.update({"time/debate_s": debated - started, "time/judge_s": judged - debated, "time/train_s": now - judged, "time/step_s": now - started})
        self.step_index = step
        return metrics

    def evaluate(self, name: str) -> dict[str, Any]:
        return self.tally.summary()

    def save(self, name: str) -> dict[str, str]:
        return {policy: save_policy(c, name) for policy, c in self.policies.items()}

    def sampling_client(self) -> Any:
        """Debater A's policy (the one policy in self-play); the base model in a dry run, which trains none."""
        return self.base if self.dry_run else policy_sampler(self.policies[self.policy_of["A"]])

    def load(self, path: str, with_optimizer: bool = False) -> None:
        if len(self.policies) != 1:
            what = "none (method.dry_run=true)" if not self.policies else f"{len(self.policies)} ({', '.join(self.policies)})"
            raise UserError(f"method=debate can load one checkpoint only into its one policy (method.self_play=true); this run trains {what}")
        load_policy(next(iter(self.policies.values())), path, with_optimizer)

    def saved_checkpoints(self) -> list[dict[str, Any]]:
        return []  # the final and resume-point checkpoints only, which the driver asks for

    def summary(self) -> dict[str, Any]:
        return {"steps": self.step_index, "debates": self.step_index * self.num_debates, "dry_run": self.dry_run, **self.tally.summary()}

    def finish(self) -> dict[str, Any]:
        summary = self.summary()
        if self.save_final and not self.dry_run:
            summary["checkpoints"] = self.save("final")
        show(self.tally.table())
        return summary

    def _training_clients(self, p: Pipeline) -> dict[str, Any]:
        names = sorted(set(self.policy_of.values()))
        # Distinct seeds give two policies distinct LoRA initialisations.
        return {name: open_policy(p, seed=p.seed + i) for i, name in enumerate(names)}

    def _rl_step(self, p: Pipeline, debaters: dict[str, Any], setups: list[Any], step: int, started: float) -> tuple[list[Any], dict[str, Any], float, float]:
        """The step's debates as episodes, judged per question group, then one RL update per policy."""
        policies = {ROLE_OF[side]: client for side, client in debaters.items()}
        if self.judge_reads:
            policies[JUDGE] = self.judge.reply_client()
        judged = JudgedGroups(self.judge, self.rounds, self.judge_reads)
        groups = judged.groups(setups)
        by_group = EpisodeRunner(p.tokenizer, p.sampling.params(), self.limits).launch(groups, self.group_size, policies).collect()
        done = time.perf_counter()
        transcripts = judged.in_order(setups)
        self.tally.add(transcripts)
        metrics = step_metrics(transcripts)
        metrics.update(_episode_metrics(by_group))
        ids = [[f"{s.id}_{k:02d}" for k in range(self.group_size)] for s in setups]
        p.recorder.write_jsonl(f"episodes/step_{step:06d}.jsonl", [episode_record(e, step=step, group=g, debate_id=ids[g][k]) for g, es in enumerate(by_group) for k, e in enumerate(es)])
        if not self.dry_run:
            metrics.update(self._train_rl(p, by_group, ids, step))
        # The judge scores inside the episodes' collection: its share of that time is judged.seconds.
        return transcripts, metrics, done - judged.seconds, done

    def _train_rl(self, p: Pipeline, by_group: list[list[Any]], ids: list[list[str]], step: int) -> dict[str, Any]:
        adam = p.optim.adam_params(step - 1, self.total_steps)
        data = debater_data(by_group, {ROLE_OF[side]: name for side, name in self.policy_of.items()}, self.normalize_std)
        trained = {name: (items, train_rl(self.policies[name], items, adam)) for name, items in sorted(data.items())}
        if not trained:
            console.print(f"[yellow]warning:[/yellow] step {step}: every group's debates were judged alike, no training")
            return {"train/datums": 0, "optim/lr": adam.learning_rate}
        p.recorder.write_json(f"debates/training_step_{step:06d}.json", rl_record(step, adam.learning_rate, trained, ids))
        return self._step_metrics(trained, adam.learning_rate)

    def _train(self, p: Pipeline, policies: dict[str, Any], transcripts: list[Any], step: int, total: int) -> dict[str, Any]:
        adam = p.optim.adam_params(step - 1, total)
        items = winning_turns(transcripts)
        trained = {}
        for name, client in policies.items():
            mine = [w for w in items if self.policy_of[w.turn.speaker] == name]
            if mine:  # a step where every verdict was unparsed leaves nothing to learn from
                trained[name] = (mine, train_on(client, mine, adam))
        if not trained:
            console.print(f"[yellow]warning:[/yellow] step {step}: no parsed verdicts, no training")
            return {"train/datums": 0, "optim/lr": adam.learning_rate}
        p.recorder.write_json(f"debates/training_step_{step:06d}.json", step_record(step, adam.learning_rate, trained))
        return self._step_metrics(trained, adam.learning_rate)


    def _step_metrics(self, trained: dict[str, tuple[list[Any], dict[str, Any]]], learning_rate: float) -> dict[str, Any]:
        """A training step's metrics, the same for rejection sampling and RL: the token-weighted loss over
        the trained policies, and each policy's own loss when the debaters do not share one."""
        tokens = sum(r["tokens"] for _, r in trained.values())
        metrics: dict[str, Any] = {
            "train/loss": sum(r["loss"] * r["tokens"] for _, r in trained.values()) / max(tokens, 1),
            "train/tokens": tokens,
            "train/datums": sum(len(items) for items, _ in trained.values()),
            "optim/lr": learning_rate,
        }
        if not self.self_play:
            metrics.update({f"train/loss_{name}": r["loss"] for name, (_, r) in trained.items()})
        return metrics

def _multiple_choice(examples: list[Any], split: str) -> list[Any]:
    if not examples:
        raise ConfigError(f"method=debate: the data set's {split} split is empty (method.split={split})")
    if any(len(ex.choices) < 2 for ex in examples):
        raise ConfigError("method=debate needs a multiple-choice data set (dataset=mmlu_stem, gpqa_diamond or mcq_jsonl)")
    return examples


def _episode_metrics(by_group: list[list[Any]]) -> dict[str, Any]:
    """The debate episodes' outcomes (cut by a limit, an environment error) and the debaters' mean rewards."""
    episodes = [e for es in by_group for e in es]
    n = max(len(episodes), 1)
    metrics: dict[str, Any] = {f"episodes/{o}": sum(e.outcome == o for e in episodes) for o in OUTCOMES if o != "done"}
    metrics.update({f"reward/{role}_mean": sum(e.reward_of(role) for e in episodes) / n for role in ROLE_OF.values()})
    return metrics
