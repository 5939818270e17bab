"""The debate recipe: each step debates ``num_debates`` questions, has them judged, and trains on the winners.

A step: pick questions (seeded, no repeats within an epoch), assign sides (balanced), run
``rounds`` rounds of turns, ask the judge after the debate and, as the in-run baseline, with no
debate on the same two answers, then (unless ``dry_run``) one cross-entropy step per policy on its
winning turns. Everything a step saw goes to ``debates/``; its numbers to ``metrics.jsonl``.
"""

from __future__ import annotations

import random
import time
from typing import Any

from tinkerx.errors import ConfigError
from tinkerx.methods.debate.loop import assign_sides, run_debates
from tinkerx.methods.debate.metrics import RunTally, step_metrics
from tinkerx.methods.debate.training import step_record, train_on, winning_turns
from tinkerx.pipeline import Pipeline
from tinkerx.runs.display import StepProgress, console, show

SPLITS = ("train", "validation", "test")


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
    ) -> None:
        if num_debates < 1:
            raise ConfigError(f"method.num_debates must be >= 1, got {num_debates}")
        if rounds < 1:
            raise ConfigError(f"method.rounds must be >= 1, got {rounds}")
        if split not in SPLITS:
            raise ConfigError(f"method.split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.num_debates, self.rounds, self.dry_run = num_debates, rounds, dry_run
        self.self_play, self.split, self.save_final = self_play, split, save_final
        # Which policy argues each side: one shared policy, or one per side, each trained on its own wins.
        self.policy_of = {"A": "policy", "B": "policy"} if self_play else {"A": "debater_a", "B": "debater_b"}

    def run(self, p: Pipeline) -> dict[str, Any]:
        judge = p.components.get("judge")
        if judge is None:
            raise ConfigError("method=debate needs a judge: components.judge (set in conf/method/debate.yaml)")
        questions = _multiple_choice(p.dataset.split(self.split), self.split)
        judge.start(p.service, p.base_model, p.tokenizer)
        policies = {} if self.dry_run else self._training_clients(p)
        base = p.service.create_sampling_client(base_model=p.base_model) if self.dry_run else None
        rng = random.Random(p.seed)
        order: list[int] = []
        params = p.sampling.params()
        tally = RunTally()
        total = p.training.max_steps
        show_keys = ("judge/accuracy_with_debate", "judge/accuracy_without_debate", "judge/unparsed_with_debate", "train/loss")
        with StepProgress(total, "debate" + (" (dry run)" if self.dry_run else ""), show=show_keys) as bar:
            for step in range(1, total + 1):
                started = time.perf_counter()
                if len(order) < self.num_debates:  # a new epoch of questions, reshuffled
                    epoch = list(range(len(questions)))
                    rng.shuffle(epoch)
                    order += epoch
                batch = [questions[i] for i in order[: self.num_debates]]
                del order[: self.num_debates]
                setups = assign_sides(batch, rng, step)

                clients = {name: c.save_weights_and_get_sampling_client() for name, c in policies.items()}
                debaters = {side: base if self.dry_run else clients[name] for side, name in self.policy_of.items()}
                transcripts = run_debates(debaters, p.tokenizer, setups, self.rounds, params)
                debated = time.perf_counter()
                judge.judge(transcripts)
                judged = time.perf_counter()
                tally.add(transcripts)
                metrics = step_metrics(transcripts)
                if not self.dry_run:
                    metrics.update(self._train(p, policies, transcripts, step, total))
                for t in transcripts:
                    p.recorder.write_json(f"debates/debate_{t.setup.id}.json", t.to_json(step, self.policy_of))
                now = time.perf_counter()
                metrics.update({"time/debate_s": debated - started, "time/judge_s": judged - debated, "time/train_s": now - judged, "time/step_s": now - started})
                p.recorder.log_metrics(step, metrics)
                bar.advance(metrics)

        summary: dict[str, Any] = {"steps": total, "debates": total * self.num_debates, "dry_run": self.dry_run, **tally.summary()}
        if self.save_final and not self.dry_run:
            summary["checkpoints"] = {name: c.save_state("final").result().path for name, c in policies.items()}
        show(tally.table())
        return summary

    def _training_clients(self, p: Pipeline) -> dict[str, Any]:
        names = sorted(set(self.policy_of.values()))
        # Distinct seeds give two policies distinct LoRA initialisations.
        return {name: p.service.create_lora_training_client(p.base_model, rank=p.lora_rank, seed=p.seed + i).result() for i, name in enumerate(names)}

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
        tokens = sum(r["tokens"] for _, r in trained.values())
        metrics: dict[str, Any] = {
            "train/loss": sum(r["loss"] * r["tokens"] for _, r in trained.values()) / tokens,
            "train/tokens": tokens,
            "train/datums": sum(len(items) for items, _ in trained.values()),
            "optim/lr": adam.learning_rate,
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
