"""Multi-turn episodes with the KV cache kept across turns vs re-prefilling the transcript each turn.

    nice -n 5 python benchmarks/bench_multiturn_cache.py [--smollm2] [--repeats 3] [--episodes 8]

Episodes run through the episode runner (tinkerx/envs/runner.py) on ``backend=local``, whose
sampler keeps each finished sequence's KV cache (``backend.prefix_cache_tokens``, from
conf/backend/local.yaml) so that a turn's prompt -- last prompt + reply + new observation --
prefills only its new tokens. Re-prefilling is the same sampler with the cache set to 0 tokens.
Two episode shapes, scripted so that every episode runs its full length whatever the model writes:

- debate: two debaters (roles A and B, one sampling client: self-play) alternating for 3 rounds,
  each seeing the other's argument as a new user message (6 policy turns, transcript growing);
- tool: one policy for 5 turns, each reply answered by a tool message (a tool-use episode).

Sampling is greedy, so both modes decode the same tokens and do the same work apart from the
prefill (the share of episodes whose tokens match in both modes is reported). The modes alternate
``--repeats`` times; reported: episodes per second of each and the median per-repeat ratio.
Goal: >= 2x episode throughput with the cache.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import SHARED_DATA, base_parser, console, interleave, machine_line, model_loaders, table, verdict

GOAL = 2.0
TOPICS = ["Is 91 a prime number?", "Which is larger, 2**10 or 10**3?", "Does ice float on water?", "Is the Sun a star?",
          "Is zero an even number?", "Can a square be a rectangle?", "Is 0.999... equal to 1?", "Is a tomato a fruit?",
          "Do bats lay eggs?", "Is glass a liquid?", "Is Pluto a planet?", "Is 1 a prime number?",
          "Can sound travel in a vacuum?", "Is the Great Wall visible from space?", "Is a whale a fish?", "Is 2 a prime number?"]  # fmt: skip
TOOLS = [{"name": "calculator", "description": "Evaluates an arithmetic expression.",
          "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}]  # fmt: skip
TOOL_SYSTEM = ('Call a tool with <tool_call>{"name": ..., "arguments": {...}}</tool_call>; results come as tool messages. '
               "Answer with the number alone.\nTools:\n" + json.dumps(TOOLS[0]))


class DebateEnv:
    """Debaters A and B take turns for ``rounds`` rounds; each hears the other's last argument."""

    def __init__(self, topic: str, rounds: int) -> None:
        self.topic, self.rounds, self.turns = topic, rounds, 0

    def _opening(self, side: str, stance: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": f"You are debater {side} in a debate judged by a careful reader. Argue {stance}, briefly and with reasons."},
                {"role": "user", "content": f"Question: {self.topic}"}]  # fmt: skip

    def initial_observation(self):
        from tinkerx.envs.protocol import Observation

        return Observation("A", self._opening("A", "that the answer is yes"))

    def step(self, role: str, text: str):
        from tinkerx.envs.protocol import Observation, StepResult

        self.turns += 1
        if self.turns >= 2 * self.rounds:
            return StepResult(done=True)
        other = "B" if role == "A" else "A"
        said = [{"role": "user", "content": f"Debater {role} argues: {text}\nYour reply:"}]
        if self.turns == 1:  # B's first turn: its opening and A's argument
            return StepResult(next=Observation("B", self._opening("B", "that the answer is no") + said))
        return StepResult(next=Observation(other, said))


class ToolEnv:
    """One policy for ``turns`` turns; every reply but the last gets a tool message."""

    def __init__(self, topic: str, turns: int) -> None:
        self.topic, self.turns, self.done = topic, turns, 0

    def initial_observation(self):
        from tinkerx.envs.protocol import Observation

        return Observation("policy", [{"role": "system", "content": TOOL_SYSTEM}, {"role": "user", "content": f"What is 37 * 43 + {len(self.topic)}?"}])

    def step(self, role: str, text: str):
        from tinkerx.envs.protocol import Observation, StepResult

        self.done += 1
        if self.done >= self.turns:
            return StepResult(done=True)
        return StepResult(next=Observation("policy", [{"role": "tool", "content": f"{1591 + self.done * 7}"}]))


class Group:
    def __init__(self, make, roles) -> None:
        self.make, self.roles, self.task = make, roles, None

    def make_envs(self, n: int):
        return [self.make() for _ in range(n)]

    def group_rewards(self, episodes):
        return [0.0 for _ in episodes]


def mmlu_debates(episodes: int) -> list[Group]:
    """The debate method's own episodes (tinkerx/envs/debate.py with the prompts of method=debate
    training=rl) on the first MMLU-STEM test questions, 3 rounds, no judge turn (the judge reads a
    fresh prompt in both modes). Empty when ../shared/data is absent."""
    from tinkerx.envs.debate import DEBATERS, DebateEnv as MethodDebate
    from tinkerx.methods.debate.episodes import DebatePrompts
    from tinkerx.methods.debate.transcript import Setup

    path = SHARED_DATA / "mmlu_stem" / "test.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines()[:episodes]]
    setups = [Setup(f"q{i}", f"q{i}", r["question"], (r["choices"][r["answer"]], r["choices"][(r["answer"] + 1) % len(r["choices"])]), "A", ("A", "B"))
              for i, r in enumerate(rows)]  # fmt: skip
    return [Group(lambda s=s: MethodDebate(s, 3, DebatePrompts(), judge_reads=False), DEBATERS) for s in setups]


def shapes(episodes: int) -> dict[str, tuple[list[Group], int]]:
    """shape -> (groups, policy turns per episode)."""
    topics = [TOPICS[i % len(TOPICS)] + ("" if i < len(TOPICS) else f" (case {i})") for i in range(episodes)]
    found = {
        "debate, 3 rounds": ([Group(lambda t=t: DebateEnv(t, 3), ("A", "B")) for t in topics], 6),
        "debate, MMLU-STEM, method prompts, 3 rounds": (mmlu_debates(episodes), 6),
        "tool, 5 turns": ([Group(lambda t=t: ToolEnv(t, 5), ("policy",)) for t in topics], 5),
    }
    return {shape: value for shape, value in found.items() if value[0]}


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=8, help="episodes per batch (one sampling request per turn for all of them)")
    parser.add_argument("--max-tokens", type=int, default=64, help="sampled tokens per turn at most")
    parser.add_argument("--skip-tiny", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--shapes", nargs="+", default=None, help="run only the shapes whose names start with these words (debate, tool)")
    parser.add_argument("--cache-tokens", type=int, default=None,
                        help="the cache's size in tokens (backend.prefix_cache_tokens); default: what auto gives a multi-turn run")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

    import torch
    from omegaconf import OmegaConf
    from tinker import types

    from tinkerx.backends.local import LocalBackend
    from tinkerx.build import MULTI_TURN_PREFIX_CACHE_TOKENS
    from tinkerx.envs.runner import EpisodeLimits, EpisodeRunner
    from tinkerx.paths import CONFIG_DIR

    if args.threads:
        torch.set_num_threads(args.threads)
    cache_tokens = args.cache_tokens or MULTI_TURN_PREFIX_CACHE_TOKENS
    defaults = OmegaConf.load(CONFIG_DIR / "backend" / "local.yaml")
    console.print(machine_line())
    results = []
    for label, loader in model_loaders(args.smollm2):
        if args.skip_tiny and label == "tiny":
            continue
        # backend.prefix_cache_tokens=auto gives multi-turn runs MULTI_TURN_PREFIX_CACHE_TOKENS: what they run with
        backend = LocalBackend(device="cpu", max_batch_rows=defaults.max_batch_rows, prefix_cache_tokens=cache_tokens)
        service = backend.open([loader], Path(tempfile.mkdtemp(prefix="tinkerx-bench-cache-")), seed=0)
        trainer = service.create_lora_training_client(loader.base_model, rank=8).result()
        sampler = trainer.save_weights_and_get_sampling_client()
        cache = trainer.engine.prefix_cache
        tokenizer = trainer.get_tokenizer()
        params = types.SamplingParams(max_tokens=args.max_tokens, temperature=0.0)
        for shape, (groups, turns) in shapes(args.episodes).items():
            if args.shapes and not any(shape.startswith(prefix) for prefix in args.shapes):
                continue
            runner = EpisodeRunner(tokenizer, params, EpisodeLimits(max_turns=turns))
            outputs: dict[str, list] = {}
            counts: dict[str, dict] = {}

            def episodes(cached: bool):
                def run() -> None:
                    nonlocal began
                    began = time.perf_counter()
                    cache.max_tokens = cache_tokens if cached else 0
                    cache.clear()
                    before = dict(cache.counters)
                    done = runner.launch(groups, 1, {role: sampler for role in groups[0].roles}).collect()
                    outputs["cached" if cached else "plain"] = [[t.tokens_T for t in e.turns] for g in done for e in g]
                    counts["cached" if cached else "plain"] = {k: cache.counters[k] - before[k] for k in ("hits", "tokens_saved", "lookups")}
                    console.print(f"  {shape}, {'cached' if cached else 're-prefill'}: {time.perf_counter() - began:.1f} s")
                return run

            began = time.perf_counter()
            runner.launch(groups[:1], 1, {role: sampler for role in groups[0].roles}).collect()  # warm-up: first-call costs out of the timings
            times = interleave(episodes(True), episodes(False), args.repeats)
            ratio = statistics.median(p / o for o, p in zip(times["ours"], times["plain"]))
            same = sum(a == b for a, b in zip(outputs["cached"], outputs["plain"])) / len(outputs["plain"])
            turns_run = [len(e) for e in outputs["cached"]]
            results.append({"model": label, "shape": shape, "episodes": args.episodes, "turns": statistics.mean(turns_run),
                            "cached_s": statistics.median(times["ours"]), "plain_s": statistics.median(times["plain"]), "ratio": ratio,
                            "same_tokens": same, **{f"cache_{k}": v for k, v in counts["cached"].items()}})  # fmt: skip
            console.print(results[-1])
        backend.close()
    t = table(f"Episode throughput, KV cache kept across turns vs re-prefilled (greedy, {args.max_tokens} tokens a turn at most, "
              f"median of {args.repeats})", ["model", "episodes", "turns", "cached ep/s", "re-prefill ep/s", "ratio", "prompt tokens reused",
                                             "same tokens", "goal >= 2x"])  # fmt: skip
    for r in results:
        t.add_row(r["model"], r["shape"], f"{r['turns']:.1f}", f"{r['episodes'] / r['cached_s']:.2f}", f"{r['episodes'] / r['plain_s']:.2f}",
                  f"{r['ratio']:.2f}x", str(r["cache_tokens_saved"]), f"{r['same_tokens']:.0%}", verdict(r["ratio"], GOAL, True))  # fmt: skip
    console.print(t)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
