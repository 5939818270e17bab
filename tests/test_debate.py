"""method=debate: sides, verdict parsing, training data on the winners, logs, and the CLI end to end.

Offline and on the tiny model. The in-process tests debate a small synthetic multiple-choice file
and script the judge's replies (messy ones included): a random tiny model never writes a
parseable verdict, and the mechanics must be tested on debates that have winners.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers.compose import compose
from tests.helpers.paths import ROOT
from tests.helpers.resume import DEBATE_CONTEXT
from tinkerx.build import build
from tinkerx.driver import drive
from tinkerx.example import Example
from tinkerx.errors import ConfigError
from tinkerx.methods.debate import Debate, Judge
from tinkerx.methods.debate.loop import assign_sides, run_debates
from tinkerx.methods.debate.training import winning_turns
from tinkerx.methods.debate.verdict import parse_verdict
from tinkerx.methods.debate.metrics import step_metrics
from tinkerx.methods.debate.prompts import judge_messages
from tinkerx.chat import prompt_tokens
from tinkerx.paths import EXPERIMENT_DIR
import torch

MMLU = ROOT.parent / "shared" / "data" / "mmlu_stem" / "test.jsonl"

# --- verdict parsing ------------------------------------------------------------------------------

ANSWERS = ("17", "42")


@pytest.mark.parametrize(
    "reply, side",
    [
        ("Winner: B", "B"),
        ("**Winner:** debater a.", "A"),
        ("winner: b", "B"),
        ("Winner - **Answer B**", "B"),
        ("The winner is Answer A, clearly.", "A"),
        ("I think Debater A wins.", "A"),
        ("Debater B's argument is stronger", "B"),
        ("Answer A is incorrect, so Answer B is correct.", "B"),
        ("The correct answer is (B)", "B"),
        ("The correct answer is Answer A.", "A"),
        ("I side with A", "A"),
        ("b.", "B"),
        ("  (A)  ", "A"),
        ("Debater A argued x. Debater B argued y. Final verdict: A", "A"),
        ('Reply with "Winner: A" or "Winner: B". Winner: A', "A"),  # the echoed instruction does not count
        ("After weighing both, the answer is 42.", "B"),  # the text of exactly one answer
        ("A: 17", "A"),  # a label, read by the answer text after it
        ("A: A\n\nThe correct answer is A.", "A"),
        ("Debater A (for Answer A) is the winner.", "A"),
        # nothing to go on: discarded, never guessed
        ("", None),
        ("I cannot decide between them.", None),
        ('Reply with "Winner: A" or "Winner: B".', None),
        ("the winner is a debater who argued well", None),  # the article "a" is not side A
        ("A cat sat on the mat", None),
        ("Debater A says 17. Debater B says 42.", None),  # naming the sides is not picking one
        ("Answer A: 17\nAnswer B: 42", None),  # the answers echoed
        ("A: 17\nB: 42", None),
        ("Debater A (for Answer A)\nDebater B (for Answer B)", None),
        ("Winner: C", None),  # neither debated answer
        ("The answer is (D)", None),
        ("\x00\ufffd<|im_end|>", None),
    ],
)
def test_parse_verdict_on_messy_replies(reply, side):
    assert parse_verdict(reply, ANSWERS) == side


def test_parse_verdict_by_answer_text_needs_one_unambiguous_match():
    assert parse_verdict("it is 42", ("4", "42")) is None  # "4" is inside "42": proves nothing
    assert parse_verdict("it is 17 or 42", ANSWERS) is None


# --- sides --------------------------------------------------------------------------------------


def _examples(n: int, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(1, 40), rng.randint(1, 40)
        total = a + b
        choices = [str(total), str(total + 1), str(total - 1), str(total + 10)]
        rng.shuffle(choices)
        out.append(Example(question=f"{a}+{b}=?", answer="ABCD"[choices.index(str(total))], id=f"q{i}", choices=tuple(choices)))
    return out


@pytest.mark.parametrize("n", [1, 2, 7, 8, 33])
def test_sides_hold_the_correct_answer_and_a_distractor_balanced(n):
    examples = _examples(n)
    setups = assign_sides(examples, random.Random(0), step=1)
    for ex, s in zip(examples, setups):
        truth = ex.choices["ABCD".index(ex.answer)]
        correct_index = "AB".index(s.correct)
        assert s.answers[correct_index] == truth
        assert s.answers[1 - correct_index] in ex.choices and s.answers[1 - correct_index] != truth
        assert s.letters[correct_index] == ex.answer and s.letters[1 - correct_index] != ex.answer
    counts = Counter(s.correct for s in setups)
    assert abs(counts["A"] - counts["B"]) <= 1


def test_sides_are_seeded_and_randomised():
    examples = _examples(64)
    first = assign_sides(examples, random.Random(3), step=1)
    assert first == assign_sides(examples, random.Random(3), step=1)
    assert [s.correct for s in first] != [s.correct for s in assign_sides(examples, random.Random(4), step=1)]
    # not a fixed pattern such as ABAB...
    assert [s.correct for s in first] != ["A", "B"] * 32 and [s.correct for s in first] != ["B", "A"] * 32


# --- a tiny pipeline ------------------------------------------------------------------------------


def _write_mcq(path: Path, n: int = 40) -> Path:
    with path.open("w") as f:
        for ex in _examples(n, seed=1):
            f.write(json.dumps({"question": ex.question, "choices": list(ex.choices), "answer": "ABCD".index(ex.answer)}) + "\n")
    return path


def _pipeline(tmp_path: Path, *overrides: str):
    cfg = compose(
        [
            "method=debate",
            "model=tiny",
            DEBATE_CONTEXT,
            "dataset=mcq_jsonl",
            f"dataset.path={_write_mcq(tmp_path / 'mcq.jsonl')}",
            "dataset.validation_size=5",
            "dataset.test_size=5",
            "method.num_debates=4",
            "method.rounds=1",
            "sampling.max_tokens=8",
            "components.judge.max_tokens=4",
            "components.judge.verdict=text",  # scripted replies below: the text path's mechanics
            "training.max_steps=2",
            "optim.lr=3e-3",
            *overrides,
        ]
    )
    return build(cfg, tmp_path / "run")


SCRIPT = ["**Winner: A**", "I think Debater B wins.", "no idea, both sound fine", "winner: b"]


def _script(judge: Judge, replies: list[str] = SCRIPT) -> None:
    """The judge's replies, in turn; parsing and everything after it run for real."""
    judge.complete = lambda conversations: [(replies[i % len(replies)], [0]) for i in range(len(conversations))]


def _run(tmp_path: Path, *overrides: str, replies: list[str] = SCRIPT):
    method, pipeline, closers = _pipeline(tmp_path, *overrides)
    _script(pipeline.components["judge"], replies)
    try:
        summary = drive(method, pipeline)
    finally:
        for c in closers:
            c.close()
    pipeline.recorder.finish(summary)
    return summary, pipeline.run_dir


def test_bad_options_are_rejected_before_any_work():
    for kwargs in ({"num_debates": 0}, {"rounds": 0}, {"split": "dev"}):
        with pytest.raises(ConfigError):
            Debate(**kwargs)
    with pytest.raises(ConfigError):
        Judge(model={"base_model": "x"})
    with pytest.raises(ConfigError):
        Judge(max_tokens=0)


def test_winner_tokens_weigh_one_and_everything_else_zero(tmp_path):
    method, p, closers = _pipeline(tmp_path, "method.rounds=2")
    try:
        judge = p.components["judge"]
        _script(judge)
        judge.start(p.service, p.base_model, p.tokenizer)
        client = p.service.create_sampling_client(base_model=p.base_model)
        setups = assign_sides(p.dataset.train[:4], random.Random(0), step=1)
        transcripts = run_debates({"A": client, "B": client}, p.tokenizer, setups, 2, p.sampling.params())
        judge.judge(transcripts)
    finally:
        for c in closers:
            c.close()
    assert [t.winner for t in transcripts] == ["A", "B", None, "B"]  # SCRIPT, parsed
    assert all(len(t.turns) == 4 and [turn.speaker for turn in t.turns] == ["A", "B", "A", "B"] for t in transcripts)
    # Turns are sequential: each debater's prompt holds the whole transcript before it.
    t0 = transcripts[0]
    assert t0.turns[1].prompt_tokens != t0.turns[0].prompt_tokens and t0.turns[1].text.strip() in p.tokenizer.decode(t0.turns[1 + 1].prompt_tokens)

    items = winning_turns(transcripts)
    expected = [(t.setup.id, turn) for t in transcripts if t.winner for turn in t.turns if turn.speaker == t.winner]
    assert [(w.debate_id, w.turn) for w in items] == expected and len(items) == 6  # 3 decided debates x 2 rounds
    for w in items:
        inputs, targets = w.datum.model_input.to_ints(), w.datum.loss_fn_inputs["target_tokens"].tolist()
        weights = w.datum.loss_fn_inputs["weights"].tolist()
        full = w.turn.prompt_tokens + w.turn.tokens
        assert inputs == full[:-1] and targets == full[1:]  # position i predicts token i+1
        assert set(weights) <= {0.0, 1.0}
        assert [tok for tok, wt in zip(targets, weights) if wt == 1.0] == w.turn.tokens  # exactly its own tokens
        assert weights == [0.0] * (len(w.turn.prompt_tokens) - 1) + [1.0] * len(w.turn.tokens)


def test_loss_on_winning_turns_falls_and_logs_are_complete(tmp_path):
    # Greedy debaters write alike turns step after step, so a falling loss on them shows the winners'
    # turns being learnt; at temperature 1 a random tiny model's turns are fresh noise every step.
    summary, run_dir = _run(tmp_path, "training.max_steps=6", "method.num_debates=6", "sampling.temperature=0.0")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 7))
    losses = [r["train/loss"] for r in rows]  # measured before each step's update
    assert losses[-1] < 0.7 * losses[0] and sum(losses[-2:]) < sum(losses[:2]), losses
    for r in rows:
        assert r["debate/count"] == 6 and r["judge/unparsed_with_debate"] == 1  # "no idea..." once per 4
        assert 0.0 <= r["judge/accuracy_with_debate"] <= 1.0 and 0.0 <= r["judge/accuracy_without_debate"] <= 1.0
        assert r["debate/win_rate_correct"] + r["debate/win_rate_incorrect"] == pytest.approx(1.0)
        assert r["debate/turns"] == 2 and r["debate/tokens_mean"] > 0 and r["train/tokens"] > 0
        assert all(not k.startswith("time") or k.startswith("time/") for k in r)

    debates = sorted((run_dir / "debates").glob("debate_*.json"))
    assert len(debates) == 36
    for path in debates:
        d = json.loads(path.read_text())
        assert set(d["sides"].values()) == {"correct", "distractor"} and d["sides"][d["correct_side"]] == "correct"
        assert len(d["turns"]) == 2 and all(len(t["tokens"]) == len(t["logprobs"]) > 0 for t in d["turns"])
        assert d["verdict"]["raw"] in SCRIPT and d["judge_alone"]["raw"] in SCRIPT
        assert d["discarded"] == (d["verdict"]["winner"] is None)
    steps = sorted((run_dir / "debates").glob("training_step_*.json"))
    assert len(steps) == 6
    for path in steps:
        record = json.loads(path.read_text())
        datums = record["policies"]["policy"]["datums"]
        for d in datums:  # zeros over the prompt, then ones over the winner's own tokens
            ones = int(sum(d["weights"]))
            assert ones > 0 and d["weights"] == [0.0] * (len(d["weights"]) - ones) + [1.0] * ones
        assert all(isinstance(d["loss"], float) for d in datums)
    saved = json.loads((run_dir / "summary.json").read_text())
    assert saved["judge"]["with_debate"]["questions"] == 36 and saved["judge"]["with_debate"]["parsed"] == 30
    assert Path(saved["checkpoints"]["policy"]).is_dir()


def test_two_policies_each_train_on_their_own_wins(tmp_path):
    summary, run_dir = _run(tmp_path, "method.self_play=false", "training.max_steps=1")
    record = json.loads((run_dir / "debates" / "training_step_000001.json").read_text())
    assert set(record["policies"]) == {"debater_a", "debater_b"}
    assert {d["speaker"] for d in record["policies"]["debater_a"]["datums"]} == {"A"}
    assert {d["speaker"] for d in record["policies"]["debater_b"]["datums"]} == {"B"}
    assert set(summary["checkpoints"]) == {"debater_a", "debater_b"}


def test_unparseable_verdicts_are_counted_and_discarded(tmp_path):
    summary, run_dir = _run(tmp_path, replies=["", "I refuse.", "Winner: C", "\ufffd\ufffd"])
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(r["judge/unparsed_with_debate"] == 4 and r["train/datums"] == 0 for r in rows)
    assert not list((run_dir / "debates").glob("training_step_*.json"))
    assert summary["judge_accuracy_with_debate"] is None and summary["judge"]["with_debate"]["accuracy_unparsed_as_wrong"] == 0.0


def test_dry_run_debates_without_training(tmp_path):
    summary, run_dir = _run(tmp_path, "method.dry_run=true")
    assert summary["dry_run"] and "checkpoints" not in summary
    assert len(list((run_dir / "debates").glob("debate_*.json"))) == 8
    assert not list((run_dir / "debates").glob("training_step_*.json"))
    assert not (run_dir / "checkpoints").exists()
    assert all("train/loss" not in json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines())


def test_judge_on_another_model_is_served_by_the_same_backend(tmp_path):
    _, p, closers = _pipeline(
        tmp_path,
        "+model@components.judge.model=tiny",
        "components.judge.model.base_model=tinkerx/tiny-judge",
        "components.judge.model.loader.hidden_size=64",
    )
    try:
        judge = p.components["judge"]
        assert judge.base_model == "tinkerx/tiny-judge" and judge.model_loader.hidden_size == 64
        assert p.service.loader("tinkerx/tiny-judge") is judge.model_loader  # build passed it to backend.open
        judge.start(p.service, p.base_model, p.tokenizer)
        assert judge._client.get_base_model() == "tinkerx/tiny-judge"
        assert judge._client.engine.model.config.hidden_size == 64
    finally:
        for c in closers:
            c.close()


def test_debate_experiments_compose():
    names = [path.stem for path in sorted(EXPERIMENT_DIR.glob("debate_*.yaml"))]
    assert len(names) >= 3
    for name in names:
        cfg = compose([f"experiment={name}"])
        assert cfg.method._target_ == "tinkerx.methods.debate.Debate" and cfg.method.num_debates >= 1
        assert cfg.components.judge._target_ == "tinkerx.methods.debate.Judge"
        base_model = "HuggingFaceTB/SmolLM2-135M-Instruct" if "_smollm2_" in name else "tinkerx/tiny"
        assert cfg.model.base_model == base_model and cfg.dataset.path.endswith("mmlu_stem/test.jsonl"), name


# --- the CLI ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_debate_on_mmlu_stem(tmp_path):
    if not MMLU.is_file():
        pytest.skip(f"MMLU-STEM data not found at {MMLU} (the shared data folder ../shared/data is absent)")
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "tinkerx", "method=debate", "model=tiny", "dataset=mmlu_stem",
        f"dataset.path={MMLU}", "method.num_debates=2", "method.rounds=1", "training.max_steps=2",
        "sampling.max_tokens=8", "components.judge.max_tokens=8", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    env = {**os.environ, "COLUMNS": "200"}  # the summary table unwrapped, to read it below
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "judge accuracy" in out.stderr and "without debate" in out.stderr
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # Step 0 counts the questions too long for the tiny model's 512-token context (dataset.overlong=drop).
    assert rows[0]["step"] == 0 and rows[0]["data/train_dropped"] > 0
    rows = rows[1:]
    assert [r["step"] for r in rows] == [1, 2]
    assert {"judge/accuracy_with_debate", "judge/accuracy_without_debate", "debate/win_rate_correct", "debate/tokens_mean"} <= set(rows[0])
    debates = sorted((run_dir / "debates").glob("debate_*.json"))
    assert len(debates) == 4 and all(json.loads(p.read_text())["question"] for p in debates)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["method"] == "debate" and summary["judge"]["without_debate"]["questions"] == 4


# --- verdicts from the judge's label probabilities ------------------------------------------------


def test_label_probabilities_and_order_combination():
    from tinkerx.methods.debate.verdict import combine_orders, label_probability

    assert label_probability(-1.0, -1.0) == pytest.approx(0.5)
    assert label_probability(math.log(0.3), math.log(0.1)) == pytest.approx(0.75)
    assert label_probability(0.0, -1e6) == pytest.approx(1.0)  # no overflow on a huge gap
    # A judge that always prefers the answer shown first ends exactly undecided from that bias alone ...
    assert combine_orders(0.9, 0.9) == pytest.approx(0.5)
    # ... and one that follows the answer, whichever position it is in, keeps its belief.
    assert combine_orders(0.8, 0.2) == pytest.approx(0.8) and combine_orders(0.3, 0.6) == pytest.approx(0.35)


def test_swapped_order_relabels_answers_and_speakers():
    from tinkerx.methods.debate.transcript import Setup, Turn
    from tinkerx.methods.debate.verdict import swapped

    setup = Setup("d1", "q1", "2+2?", ("4", "5"), "A", ("C", "D"))
    turns = [Turn("A", 1, "Answer A is right; Debater B is wrong. A.", [], [], [], "stop"), Turn("B", 1, "answer B holds.", [], [], [], "stop")]
    s2, t2 = swapped(setup, turns)
    assert s2.answers == ("5", "4") and s2.correct == "B" and s2.letters == ("D", "C")
    assert [t.speaker for t in t2] == ["B", "A"]
    assert t2[0].text == "Answer B is right; Debater A is wrong. A." and t2[1].text == "answer A holds."
    assert swapped(*swapped(setup, turns)) == (setup, turns)


def _debated(p):
    """The pipeline's judge, started, and four one-round debates to judge."""
    judge = p.components["judge"]
    judge.start(p.service, p.base_model, p.tokenizer)
    client = p.service.create_sampling_client(base_model=p.base_model)
    setups = assign_sides(p.dataset.train[:4], random.Random(0), step=1)
    return judge, run_debates({"A": client, "B": client}, p.tokenizer, setups, 1, p.sampling.params())


def test_logprob_judge_decides_every_debate_and_keeps_its_reply(tmp_path):
    from tinkerx.methods.debate.verdict import combine_orders

    method, p, closers = _pipeline(tmp_path, "components.judge.verdict=logprobs", "components.judge.max_tokens=3")
    try:
        judge, transcripts = _debated(p)
        judge.judge(transcripts)
        # The judge's own reading, checked against an independent computation on one conversation.
        conv = judge_messages(transcripts[0].setup, transcripts[0].turns)
        prompt = prompt_tokens(p.tokenizer, conv) + p.tokenizer.encode("Winner:", add_special_tokens=False)
        logits = judge._client.engine.model(input_ids=torch.tensor([prompt])).logits[0, -1].float()
        a, b = (p.tokenizer.encode(x, add_special_tokens=False) for x in (" A", " B"))
    finally:
        for c in closers:
            c.close()
    for t in transcripts:
        for v in (t.verdict, t.alone):
            assert v.winner in ("A", "B") and 0.0 < v.p_a < 1.0
            assert v.p_a == pytest.approx(combine_orders(v.orders["as_written"], v.orders["swapped"]))
            assert v.winner == ("A" if v.p_a > 0.5 else "B") and isinstance(v.raw, str) and len(v.tokens) <= 3
    if len(a) == len(b) == 1:  # single-token labels: P(first) is the softmax of the two next-token logits
        expected = float(torch.softmax(torch.stack([logits[a[0]], logits[b[0]]]), 0)[0])
        assert transcripts[0].verdict.orders["as_written"] == pytest.approx(expected, rel=1e-4)
    m = step_metrics(transcripts)
    assert m["judge/unparsed_with_debate"] == 0 and m["judge/unparsed_without_debate"] == 0
    assert 0.0 <= m["judge/position_flip_rate"] <= 1.0 and m["judge/text_parsed_with_debate"] <= 4


def test_paired_difference_interval():
    from tinkerx.methods.debate.metrics import paired_difference

    d = paired_difference([True, True, False, True, None], [False, True, False, False, True])
    assert d["pairs"] == 4 and d["difference"] == pytest.approx(0.5)
    diffs = [1.0, 0.0, 0.0, 1.0]
    sd = math.sqrt(sum((x - 0.5) ** 2 for x in diffs) / 3)
    assert d["ci95"] == pytest.approx([0.5 - 1.96 * sd / 2, 0.5 + 1.96 * sd / 2])


# --- batching: the judge's requests go out together, with the results of one-at-a-time requests ---


class _OneAtATime:
    """A sampling client with only the SDK's per-request calls (as on ``backend=tinker``), counting them."""

    def __init__(self, client) -> None:
        self._client, self.logprob_requests = client, 0

    def sample(self, **kwargs):
        return self._client.sample(**kwargs)

    def compute_logprobs(self, prompt):
        self.logprob_requests += 1
        return self._client.compute_logprobs(prompt)


def test_batched_logprobs_equal_one_request_at_a_time_and_share_forwards(tmp_path):
    from tinker import types

    _, p, closers = _pipeline(tmp_path)
    try:
        client = p.service.create_sampling_client(base_model=p.base_model)
        prompt = p.tokenizer.encode("Which answer is right? Winner:", add_special_tokens=False)
        labels = [p.tokenizer.encode(x, add_special_tokens=False)[-1] for x in (" A", " B")]
        prompts = [prompt + [labels[0]], prompt + [labels[1]], prompt[:5] + [labels[0]], prompt[:1]]
        forwards = []
        engine_model = client.engine.model
        handle = engine_model.register_forward_hook(lambda *_: forwards.append(1))
        batched = [f.result() for f in client.compute_logprobs_many([types.ModelInput.from_ints(x) for x in prompts])]
        shared_forwards = len(forwards)
        alone = [client.compute_logprobs(types.ModelInput.from_ints(x)).result() for x in prompts]
        handle.remove()
    finally:
        for c in closers:
            c.close()
    assert shared_forwards == 3  # the two labels after the same prompt share one forward
    assert [len(row) for row in batched] == [len(x) for x in prompts] and batched[3] == [None]
    for got, want in zip(batched, alone):
        assert got[0] is None and want[0] is None
        assert got[1:] == pytest.approx(want[1:], abs=1e-5)


def test_judge_sends_all_label_requests_at_once_and_agrees_with_per_request_clients(tmp_path):
    _, p, closers = _pipeline(tmp_path, "components.judge.verdict=logprobs", "components.judge.max_tokens=3")
    try:
        judge, transcripts = _debated(p)
        calls = []
        batched = judge._client.compute_logprobs_many
        judge._client.compute_logprobs_many = lambda prompts: calls.append(len(prompts)) or batched(prompts)
        judge.judge(transcripts)
        by_batch = [(t.verdict.orders, t.alone.orders) for t in transcripts]
        judge._client = _OneAtATime(judge._client)  # the Tinker-backend path: one request per label
        judge.judge(transcripts)
    finally:
        for c in closers:
            c.close()
    # 4 debates, judged after the debate and alone, in two orders, with two labels each: one call.
    assert calls == [4 * 2 * 2 * 2]
    assert judge._client.logprob_requests == 4 * 2 * 2 * 2
    for (with_, alone), t in zip(by_batch, transcripts):
        for got, want in ((t.verdict.orders, with_), (t.alone.orders, alone)):
            assert got.keys() == want.keys() and all(got[k] == pytest.approx(want[k], abs=1e-5) for k in got)
