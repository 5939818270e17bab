"""Rubric judges (tinkerx/judges): rubrics and their mistakes, verdicts from label probabilities and
from parsed replies, both orders for pairs, the judgments cache, the reward and evaluator hooks, and
the shipped labelled sets. A fake client decides from what the judge was shown, so every verdict is known."""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future
from pathlib import Path

import pytest

from tinkerx.errors import ConfigError, DataError
from tinkerx.judges.agreement import (
    labelled_path,
    load_labelled,
    measure_agreement,
    wilson_interval,
)
from tinkerx.judges.cache import JudgmentCache
from tinkerx.judges.evaluation import judge_records, judged_metrics
from tinkerx.judges.judge import Case, LLMJudge
from tinkerx.judges.prompts import parse_label
from tinkerx.judges.reward import JudgeReward
from tinkerx.judges.rubric import load_rubric
from tinkerx.rewards.guarded import GuardedReward
from tinkerx.sampler import TextSample


def _done(value):
    f: Future = Future()
    f.set_result(value)
    return f


@pytest.fixture(scope="module")
def tokenizer():
    from tinkerx.models.tiny import TinyModel

    return TinyModel().load_tokenizer()


class LogprobClient:
    """Scores a label by what the judged case says: ' Yes' likelier when the reply (the last case
    shown) contains GOOD. ``first_bias`` adds to whichever reply is shown first in a pair."""

    def __init__(self, tokenizer, first_bias: float = 0.0) -> None:
        self.tok, self.first_bias, self.requests = tokenizer, first_bias, 0

    def compute_logprobs(self, model_input):
        self.requests += 1
        text = self.tok.decode(model_input.to_ints())
        case = text[text.rfind("Request:"):]
        label = text.rsplit(" ", 1)[-1]
        if "Reply A:" in case:  # pairwise: A is whichever reply is shown first
            first, second = case.split("Reply A:")[1].split("Reply B:")
            good = {"A": ("GOOD" in first) + self.first_bias, "B": float("GOOD" in second)}[label]
            value = 2.0 * good
        else:
            good = "GOOD" in case.split("Reply:")[-1]
            value = 0.0 if (label == "Yes") == good else -3.0
        ids = model_input.to_ints()
        return _done([0.0] * (len(ids) - 1) + [value])


class ChatClient:
    """An endpoint: no logprobs, replies as text; ``replies(case_text) -> reply``."""

    def __init__(self, replies) -> None:
        self.replies, self.requests = replies, 0

    def sample_chats(self, conversations, num_samples, params):
        self.requests += len(conversations)
        out = []
        for messages in conversations:
            reply = self.replies(messages[-1]["content"])
            out.append(_done([TextSample(reply, 3, "stop") if reply is not None else TextSample("", 0, "stop", error="HTTP 503 after 4 retries")]))
        return out


class Service:
    def __init__(self, client) -> None:
        self.client = client

    def create_sampling_client(self, base_model=None, **_):
        return _done(self.client) if hasattr(self.client, "compute_logprobs") else self.client


def _rubric_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return str(path)


def _judge(tmp_path, client, tokenizer, rubric="tutoring", run_dir=None, **kwargs) -> LLMJudge:
    judge = LLMJudge(rubric, **kwargs)
    judge.start(Service(client), "tinkerx/tiny", tokenizer, run_dir)
    return judge


# ---- rubrics -------------------------------------------------------------------------------
def test_shipped_rubrics_load_with_their_labels_and_scores():
    for name in ("tutoring", "safety"):
        rubric = load_rubric(name)
        assert rubric.labels == ("Yes", "No") and rubric.scores == (1.0, 0.0) and rubric.question and len(rubric.criteria) == 3
    assert load_rubric("tutoring").show_reference and not load_rubric("safety").show_reference


@pytest.mark.parametrize("text, message", [
    ("labels: ['Yes', 'No']\n", "missing 'question'"),
    ("question: Is it good?\n", "missing 'labels'"),
    ("question: q\nlabels: [Yes, No]\n", "holds a boolean: quote the labels"),
    ("criteria: [x]\n", "missing 'question' and 'labels'"),
    ("question: q\nlabels: ['Yes']\n", "two or more distinct labels"),
    ("question: q\nlabels: ['Yes', 'No']\nscores: [1]\n", "'scores' has 1 values for 2 labels"),
    ("question: q\nlabels: ['Yes', 'No']\nkind: triple\n", "kind 'triple' is not valid; valid: pointwise, pairwise"),
    ("question: q\nlabels: ['Yes', 'No']\nexamples: [{reply: r, label: Maybe}]\n", "examples[0] has label 'Maybe'; valid: Yes, No"),
    ("question: [unclosed\n", "is not valid YAML"),
])
def test_a_broken_rubric_is_one_line_naming_what_is_wrong(tmp_path, text, message):
    with pytest.raises(ConfigError) as e:
        load_rubric(_rubric_file(tmp_path, text))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_an_unknown_rubric_names_the_shipped_ones():
    with pytest.raises(ConfigError, match="rubric 'tutor' not found; shipped: .*safety, .*tutoring"):
        load_rubric("tutor")


def test_a_score_scale_scores_evenly_from_best_to_worst(tmp_path):
    rubric = load_rubric(_rubric_file(tmp_path, "question: How good?\nlabels: ['5', '4', '3', '2', '1']\n"))
    assert rubric.scores == (1.0, 0.75, 0.5, 0.25, 0.0)


def test_labels_are_read_from_replies_strongest_pattern_first():
    rubric = load_rubric("safety")
    assert parse_label("Verdict: No", rubric) == "No"
    assert parse_label("**Verdict:** yes.", rubric) == "Yes"
    assert parse_label("No. The reply refuses. Verdict: Yes", rubric) == "Yes"  # the explicit verdict wins
    assert parse_label("Yes, it refuses appropriately.", rubric) == "Yes"
    assert parse_label("The assistant did fine, I would say yes", rubric) == "Yes"  # the only label named
    assert parse_label("It is hard to say whether yes or no.", rubric) is None
    assert parse_label("Nobody knows", rubric) is None and parse_label("", rubric) is None


# ---- verdicts --------------------------------------------------------------------------------
def test_logprob_verdicts_come_from_the_labels_probabilities(tmp_path, tokenizer):
    client = LogprobClient(tokenizer)
    judge = _judge(tmp_path, client, tokenizer)
    assert judge.mode == "logprobs"
    good, bad = judge.judge_replies(["2+3?", "2+3?"], ["GOOD: what do you get?", "It is 5."], ["5", "5"])
    assert good.label == "Yes" and bad.label == "No" and good.outcome == bad.outcome == "judged"
    assert good.score == pytest.approx(1 / (1 + pytest.importorskip("math").exp(-3.0)))  # P(Yes) renormalised over the labels
    assert good.probabilities["Yes"] + good.probabilities["No"] == pytest.approx(1.0)
    assert client.requests == 4  # two labels per reply, in one batch


def test_an_endpoint_without_logprobs_is_judged_by_its_parsed_reply(tmp_path, tokenizer):
    client = ChatClient(lambda case: "Verdict: Yes" if "GOOD" in case else "Verdict: No")
    judge = _judge(tmp_path, client, tokenizer)
    assert judge.mode == "text"
    judgments = judge.judge_replies(["q"] * 3, ["GOOD", "bad", "GOOD again"])
    assert [j.label for j in judgments] == ["Yes", "No", "Yes"] and [j.score for j in judgments] == [1.0, 0.0, 1.0]
    with pytest.raises(ConfigError, match="verdict=logprobs needs a backend that gives prompt logprobs"):
        _judge(tmp_path, client, tokenizer, verdict="logprobs")


def test_a_judge_that_never_gives_a_verdict_is_counted_and_warned_once(tmp_path, tokenizer, caplog):
    judge = _judge(tmp_path, ChatClient(lambda case: "I think the reply is interesting."), tokenizer)
    with caplog.at_level(logging.WARNING, logger="tinkerx.judges.judge"):
        first = judge.judge_replies(["q"] * 3, ["a", "b", "c"])
        second = judge.judge_replies(["q"] * 2, ["d", "e"])
    assert all(j.outcome == "unparsed" and j.score == 0.0 and not j.passed for j in first + second)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "named no label (Yes, No)" in warnings[0].getMessage()
    assert judge.metrics()["judge/tutoring/unparsed"] == 5.0 and judge.metrics()["judge/tutoring/judged"] == 0.0


def test_failed_requests_are_errors_not_crashes_and_are_asked_again(tmp_path, tokenizer):
    answers = iter([None, "Verdict: Yes"])
    client = ChatClient(lambda case: next(answers))
    judge = _judge(tmp_path, client, tokenizer, run_dir=tmp_path)
    assert judge.judge_replies(["q"], ["r"])[0].outcome == "error"
    assert judge.judge_replies(["q"], ["r"])[0].label == "Yes"  # not cached as an error
    assert judge.metrics()["judge/tutoring/errors"] == 1.0 and client.requests == 2


def test_pairs_are_judged_in_both_orders_removing_position_bias(tmp_path, tokenizer):
    rubric = _rubric_file(tmp_path, "question: Which reply is better?\nkind: pairwise\nlabels: [A, B]\n")
    fair = _judge(tmp_path, LogprobClient(tokenizer), tokenizer, rubric=rubric)
    [pair] = fair.judge([Case("q", ("GOOD", "meh"))])
    assert pair.label == "A" and pair.score > 0.5 and set(pair.orders) == {"as_written", "swapped"}
    biased = _judge(tmp_path, LogprobClient(tokenizer, first_bias=5.0), tokenizer, rubric=rubric)
    [tie] = biased.judge([Case("q", ("same", "same"))])
    assert tie.score == pytest.approx(0.5)  # preferring whichever comes first cancels out
    text = _judge(tmp_path, ChatClient(lambda case: "Verdict: A"), tokenizer, rubric=rubric)
    assert text.judge([Case("q", ("x", "y"))])[0].score == 0.5  # says A in both orders: no preference


# ---- the cache -------------------------------------------------------------------------------
def test_judgments_are_cached_in_the_run_folder_and_reused_by_a_new_judge(tmp_path, tokenizer):
    client = LogprobClient(tokenizer)
    judge = _judge(tmp_path, client, tokenizer, run_dir=tmp_path)
    first = judge.judge_replies(["q1", "q2"], ["GOOD", "bad"], ["1", "2"])
    assert client.requests == 4
    lines = [json.loads(line) for line in (tmp_path / "judgments.jsonl").read_text().splitlines()]
    assert [(e["prompt"], e["replies"], e["judgment"]["label"]) for e in lines] == [("q1", ["GOOD"], "Yes"), ("q2", ["bad"], "No")]

    again = _judge(tmp_path, client, tokenizer, run_dir=tmp_path)  # a resumed run: a new judge, the same folder
    second = again.judge_replies(["q1", "q2", "q3"], ["GOOD", "bad", "GOOD"], ["1", "2", "3"])
    assert client.requests == 6  # only q3 asked
    assert [j.cached for j in second] == [True, True, False] and [j.score for j in second[:2]] == [j.score for j in first]
    assert again.metrics()["judge/tutoring/calls"] == 1.0 and again.metrics()["judge/tutoring/cached"] == 2.0
    other = _judge(tmp_path, client, tokenizer, rubric="safety", run_dir=tmp_path)
    other.judge_replies(["q1"], ["GOOD"])
    assert client.requests == 8  # another rubric is another question
    same = other.judge_replies(["q9"] * 3, ["GOOD"] * 3)  # identical samples of a group: asked once
    assert client.requests == 10 and len({j.score for j in same}) == 1
    reread = JudgmentCache(tmp_path / "judgments.jsonl")  # what a new process (a resumed run) reads
    assert len(reread) == 5 and len((tmp_path / "judgments.jsonl").read_text().splitlines()) == 5


# ---- reward and evaluation hooks ---------------------------------------------------------------
def test_the_judge_reward_scores_a_batch_in_one_call_with_the_questions(tmp_path, tokenizer):
    client = LogprobClient(tokenizer)
    reward = JudgeReward(_judge(tmp_path, client, tokenizer))
    seen = []
    original = reward.judge.judge
    reward.judge.judge = lambda cases: seen.append(cases) or original(cases)
    guarded = GuardedReward(reward, timeout_s=30)
    scores = guarded.score_batch(["GOOD hint?", "answer is 5", "GOOD"], ["5", "5", "7"], questions=["a", "b", "c"])
    assert [s > 0.5 for s in scores] == [True, False, True]
    assert len(seen) == 1 and [c.prompt for c in seen[0]] == ["a", "b", "c"] and [c.reference for c in seen[0]] == ["5", "5", "7"]
    assert guarded.compute_reward("GOOD", "5") > 0.5  # one completion, no question: still judged
    # The rollouts' outcomes since last asked (a trainer asks once a step), cached or not.
    assert reward.metrics() == {"judge/tutoring/judged": 3.0, "judge/tutoring/unparsed": 0.0, "judge/tutoring/errors": 0.0}
    guarded.score_batch(["GOOD hint?"], ["5"], questions=["a"])  # read back from the cache: the same figures
    assert reward.metrics()["judge/tutoring/judged"] == 1.0 and reward.judge.metrics()["judge/tutoring/cached"] == 1.0


def test_a_failing_batch_reward_scores_zero_and_counts_every_completion():
    class Broken:
        name = "broken"

        def compute_reward(self, completion, truth):
            return 1.0

        def score_batch(self, completions, truths, questions=None):
            raise RuntimeError("judge endpoint down")

    guarded = GuardedReward(Broken(), timeout_s=5)
    assert guarded.score_batch(["a", "b"], ["1", "2"]) == [0.0, 0.0]
    assert guarded.errors == 2 and "judge endpoint down" in guarded.last_error


def test_evaluated_records_carry_their_judgment_and_rates_beside_accuracy(tmp_path, tokenizer):
    judge = _judge(tmp_path, LogprobClient(tokenizer), tokenizer)
    records = [{"question": "q", "answer": "1", "completion": "GOOD"}, {"question": "q", "answer": "1", "completion": "no"},
               {"question": "q", "answer": "1", "completion": "", "error": "HTTP 500"}]  # fmt: skip
    judge_records([judge], records)
    assert records[0]["judge/tutoring"]["passed"] and not records[1]["judge/tutoring"]["passed"] and "judge/tutoring" not in records[2]
    metrics = judged_metrics(records)
    assert metrics["judge/tutoring/rate"] == 0.5 and metrics["judge/tutoring/unparsed"] == 0.0


# ---- labelled sets and agreement -----------------------------------------------------------
@pytest.mark.parametrize("name", ["tutoring", "safety"])
def test_the_shipped_labelled_sets_are_balanced_and_valid(name):
    rows = load_labelled(labelled_path(name), load_rubric(name))
    labels = [r["label"] for r in rows]
    assert 30 <= len(rows) <= 40 and labels.count("Yes") == labels.count("No")
    assert len({r["id"] for r in rows}) == len(rows)
    if name == "tutoring":
        assert all(r.get("reference") for r in rows)


def test_a_labelled_row_with_a_wrong_label_is_one_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "p", "reply": "r", "label": "Maybe"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1 needs 'reply' \(text\) and 'label' \(one of Yes, No\)"):
        load_labelled(path, load_rubric("safety"))


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(18, 36)
    assert (round(low, 3), round(high, 3)) == (0.345, 0.655)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_agreement_counts_unparsed_replies_as_disagreement(tmp_path, tokenizer):
    replies = {"GOOD one": "Verdict: Yes", "bad one": "Verdict: No", "odd one": "hmm"}
    judge = _judge(tmp_path, ChatClient(lambda case: next(v for k, v in replies.items() if k in case)), tokenizer, rubric="safety")
    rows = [{"id": 1, "prompt": "p", "reply": "GOOD one", "label": "Yes"}, {"id": 2, "prompt": "p", "reply": "bad one", "label": "Yes"},
            {"id": 3, "prompt": "p", "reply": "odd one", "label": "No"}]  # fmt: skip
    result = measure_agreement(judge, rows)
    assert result["agreement"] == pytest.approx(1 / 3) and result["unparsed"] == 1
    assert result["answered"] == {"No->unparsed": 1, "Yes->No": 1, "Yes->Yes": 1}
