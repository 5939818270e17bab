"""What a judge reads: a rubric's question and criteria, its few-shot examples, then the reply (or
the two replies) to judge, as chat messages; and reading a label back out of a free-text reply."""

from __future__ import annotations

import re
from typing import Sequence

from tinkerx.judges.rubric import Rubric

Messages = list[dict[str, str]]
SYSTEM = "You are a careful, strict grader. You answer with a verdict label only."


def instructions(rubric: Rubric) -> str:
    lines = [rubric.question]
    if rubric.criteria:
        lines += ["", "A good reply:"] + [f"- {c}" for c in rubric.criteria]
    lines += ["", f"Answer with \"{rubric.verdict_prefix} LABEL\", LABEL one of: {', '.join(rubric.labels)}."]
    return "\n".join(lines)


def _case(rubric: Rubric, prompt: str, replies: Sequence[str], reference: str | None) -> str:
    parts = [f"Request:\n{prompt.strip() or '(not shown)'}"]
    if rubric.show_reference and reference:
        parts.append(f"Reference answer (for you only): {reference.strip()}")
    if rubric.kind == "pairwise":
        parts += [f"Reply {label}:\n{reply.strip()}" for label, reply in zip(rubric.labels, replies)]
    else:
        parts.append(f"Reply:\n{replies[0].strip()}")
    return "\n\n".join(parts)


def judge_messages(rubric: Rubric, prompt: str, replies: Sequence[str], reference: str | None = None) -> Messages:
    """The conversation a judge answers; its few-shot examples come first as earlier turns."""
    messages: Messages = [{"role": "system", "content": SYSTEM + "\n\n" + instructions(rubric)}]
    for example in rubric.examples:
        shown = [example["reply_a"], example["reply_b"]] if rubric.kind == "pairwise" else [example["reply"]]
        messages.append({"role": "user", "content": _case(rubric, example.get("prompt", ""), shown, example.get("reference"))})
        messages.append({"role": "assistant", "content": f"{rubric.verdict_prefix} {example['label']}"})
    messages.append({"role": "user", "content": _case(rubric, prompt, replies, reference)})
    return messages


def parse_label(text: str, rubric: Rubric) -> str | None:
    """The label a free-text reply names, or None. Strongest first: the label after the verdict
    prefix ("Verdict: No"), then a reply that opens with a label ("Yes, because..."), then the only
    label named anywhere in it. Two different labels with nothing to choose between them: None."""
    text = (text or "").strip()
    if not text:
        return None
    alternatives = "|".join(re.escape(label) for label in sorted(rubric.labels, key=len, reverse=True))
    found = re.findall(rf"{re.escape(rubric.verdict_prefix.rstrip(':'))}\s*[:=\-]?[\s*_`\"']*({alternatives})(?![\w])", text, re.IGNORECASE)
    if found:
        return _canonical(found[-1], rubric.labels)
    opening = re.match(rf"[\s*_`\"'(\[]*({alternatives})(?![\w])", text, re.IGNORECASE)
    if opening:
        return _canonical(opening.group(1), rubric.labels)
    named = {_canonical(m, rubric.labels) for m in re.findall(rf"(?<![\w])({alternatives})(?![\w])", text, re.IGNORECASE)}
    return named.pop() if len(named) == 1 else None


def _canonical(found: str, labels: Sequence[str]) -> str:
    return next(label for label in labels if label.lower() == found.lower())

