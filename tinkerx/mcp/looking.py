"""Sampling and evaluating the current weights on prompts the agent chooses.

Both go through the project's own pieces: the data set's prompt format and chat template,
``tinkerx.sampler.sample_prompts``, the run's reward, and ``tinkerx.eval.evaluator.Evaluator``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinkerx.build import instantiate
from tinkerx.chat import decode_completion, prompt_tokens
from tinkerx.data.jsonl import read_jsonl
from tinkerx.errors import ConfigError
from tinkerx.example import Example
from tinkerx.mcp.config import compose
from tinkerx.sampler import sample_prompts

MAX_PROMPTS = 256


def sample_completions(
    client: Any,
    p: Any,
    prompts: list[str] | None,
    prompts_path: str | None,
    n: int,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
) -> list[dict[str, Any]]:
    if (prompts is None) == (prompts_path is None):
        raise ConfigError("give exactly one of prompts (a list of strings) or prompts_path (a .jsonl file with a question field)")
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    if prompts is not None:
        examples = [Example(question=q, answer="", id=f"prompt:{i}") for i, q in enumerate(prompts)]
    else:
        examples = [Example(question=str(r["question"]), answer=str(r.get("answer") or ""), id=f"{prompts_path}:{i}") for i, r in enumerate(read_jsonl(prompts_path, ("question",)))]
    if not examples or len(examples) > MAX_PROMPTS:
        raise ConfigError(f"give between 1 and {MAX_PROMPTS} prompts, got {len(examples)}")
    overrides = {k: v for k, v in (("max_tokens", max_tokens), ("temperature", temperature)) if v is not None}
    params = p.sampling.params(seed=p.seed if seed is None else seed, **overrides)
    tokens = [prompt_tokens(p.tokenizer, p.dataset.messages(ex)) for ex in examples]
    futures = sample_prompts(client, tokens, n, params)
    rows = []
    for ex, future in zip(examples, futures):
        completions = [decode_completion(p.tokenizer, seq.tokens) for seq in future.result().sequences]
        row: dict[str, Any] = {"prompt": ex.question, "completions": completions}
        if ex.answer and p.reward is not None:  # a graded prompt: show the reward the run trains on
            row["answer"] = ex.answer
            row["rewards"] = [p.reward.compute_reward(c, ex.answer) for c in completions]
        rows.append(row)
    return rows


def evaluate_elsewhere(run: Any, name: str, holdout_path: str | None, dataset: str | None, max_examples: int | None) -> dict[str, Any]:
    """The run's evaluator settings on another holdout file or data set (or another example count)."""
    if holdout_path is not None and dataset is not None:
        raise ConfigError("give holdout_path or dataset, not both")
    groups, values = list(run.groups), dict(run.values)
    if dataset is not None:
        groups.append(f"dataset={dataset}")
        values = {k: v for k, v in values.items() if not k.startswith("dataset.")}
    elif holdout_path is not None:
        file = Path(holdout_path).expanduser().resolve()
        if not file.is_file():
            raise ConfigError(f"holdout_path: no file at {file}")
        values.update({"dataset.path": str(file), "dataset.test_path": str(file)})
    if max_examples is not None:
        values["evaluator.max_examples"] = max_examples
    cfg = compose(groups, values)
    p = run.pipeline
    data = instantiate(cfg.dataset, "dataset") if (dataset or holdout_path) else p.dataset
    evaluator = instantiate(cfg.evaluator, "evaluator", dataset=data, tokenizer=p.tokenizer, reward=p.reward)
    result = evaluator(run.method.sampling_client())
    p.recorder.write_jsonl(f"eval/{name}.jsonl", result.records)
    return result.metrics
