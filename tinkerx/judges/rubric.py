"""A rubric: what a judge is asked, read from YAML (``conf/rubric/NAME.yaml`` or any file path).

Keys:
- ``question`` (required): what the judge answers about a reply, e.g. "Is this a good tutoring reply?"
- ``labels`` (required, two or more): the answers it may give, best first ("Yes", "No"; or a score
  scale "5" ... "1"). ``scores`` (optional, one per label) are what each label is worth as a
  reward; by default the best label 1.0, the worst 0.0, evenly between. A judgment "passes" at >= 0.5.
- ``criteria``: what a good reply does, listed to the judge.
- ``kind``: ``pointwise`` (one reply judged) or ``pairwise`` (which of two replies is better;
  labels are then the two replies' names, e.g. "A", "B").
- ``examples``: few-shot examples, each ``{prompt, reply, label}`` (pairwise: ``reply_a, reply_b``).
- ``show_reference``: give the judge the data set's reference answer (a tutoring judge needs it to
  tell whether a reply reveals it).
- ``verdict_prefix``: the text the judge's answer starts with ("Verdict:"); its label follows.
- ``max_tokens``: the judge's reply budget when its reply is parsed rather than its labels scored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from tinkerx.errors import ConfigError
from tinkerx.paths import CONFIG_DIR

RUBRIC_DIR = CONFIG_DIR / "rubric"
KINDS = ("pointwise", "pairwise")


@dataclass(frozen=True)
class Rubric:
    name: str
    question: str
    labels: tuple[str, ...]
    scores: tuple[float, ...]
    criteria: tuple[str, ...] = ()
    kind: str = "pointwise"
    examples: tuple[Mapping[str, str], ...] = field(default_factory=tuple)
    show_reference: bool = False
    verdict_prefix: str = "Verdict:"
    max_tokens: int = 16

    def score(self, label: str) -> float:
        return self.scores[self.labels.index(label)]

    def fingerprint(self) -> str:
        """Changes whenever anything the judge is shown or how it is scored changes: part of the cache key."""
        text = json.dumps([self.question, self.labels, self.scores, self.criteria, self.kind, [dict(e) for e in self.examples],
                           self.show_reference, self.verdict_prefix], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def available_rubrics() -> list[str]:
    return sorted(p.stem for p in RUBRIC_DIR.glob("*.yaml"))


def load_rubric(name_or_path: str) -> Rubric:
    """A shipped rubric by name (``tutoring``) or a YAML file by path; ConfigError naming what is wrong."""
    import yaml

    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = RUBRIC_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(f"rubric {name_or_path!r} not found; shipped: {', '.join(available_rubrics())} (or give a .yaml path)")
    elif not path.is_file():
        raise ConfigError(f"rubric file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"rubric {path} is not valid YAML: {' '.join(str(e).split())[:200]}") from None
    return rubric_from_mapping(raw, name=path.stem, where=str(path))


def rubric_from_mapping(raw: Any, name: str, where: str) -> Rubric:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"rubric {where} must be a mapping with at least 'question' and 'labels'")
    missing = [key for key in ("question", "labels") if not raw.get(key)]
    if missing:
        raise ConfigError(f"rubric {where} is missing {' and '.join(repr(k) for k in missing)} (required: question, labels; optional: criteria, scores, kind, examples, show_reference, verdict_prefix, max_tokens)")
    raw_labels = _sequence(raw["labels"], "labels", where)
    if any(isinstance(label, bool) for label in raw_labels):  # YAML reads a bare Yes / No as true / false
        raise ConfigError(f"rubric {where}: 'labels' {list(raw_labels)} holds a boolean: quote the labels, e.g. labels: [\"Yes\", \"No\"]")
    labels = tuple(str(label) for label in raw_labels)
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ConfigError(f"rubric {where}: 'labels' needs two or more distinct labels, got {list(labels)}")
    scores = _scores(raw.get("scores"), labels, where)
    kind = str(raw.get("kind", "pointwise"))
    if kind not in KINDS:
        raise ConfigError(f"rubric {where}: kind {kind!r} is not valid; valid: {', '.join(KINDS)}")
    if kind == "pairwise" and len(labels) != 2:
        raise ConfigError(f"rubric {where}: a pairwise rubric has exactly two labels (the replies' names), got {list(labels)}")
    examples = tuple(dict(e) for e in _sequence(raw.get("examples") or [], "examples", where))
    for i, example in enumerate(examples):
        if isinstance(example.get("label"), bool) or str(example.get("label")) not in labels:
            raise ConfigError(f"rubric {where}: examples[{i}] has label {example.get('label')!r}; valid: {', '.join(labels)} (quoted)")
    max_tokens = int(raw.get("max_tokens", 16))
    if max_tokens < 1:
        raise ConfigError(f"rubric {where}: max_tokens must be >= 1, got {max_tokens}")
    return Rubric(
        name=str(raw.get("name", name)),
        question=str(raw["question"]).strip(),
        labels=labels,
        scores=scores,
        criteria=tuple(str(c) for c in _sequence(raw.get("criteria") or [], "criteria", where)),
        kind=kind,
        examples=examples,
        show_reference=bool(raw.get("show_reference", False)),
        verdict_prefix=str(raw.get("verdict_prefix", "Verdict:")),
        max_tokens=max_tokens,
    )


def _sequence(value: Any, key: str, where: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"rubric {where}: {key!r} must be a list, got {type(value).__name__}")
    return value


def _scores(raw: Any, labels: tuple[str, ...], where: str) -> tuple[float, ...]:
    if raw is None:  # best label 1.0, worst 0.0, evenly between
        return tuple(1.0 - i / (len(labels) - 1) for i in range(len(labels)))
    scores = tuple(float(s) for s in _sequence(raw, "scores", where))
    if len(scores) != len(labels):
        raise ConfigError(f"rubric {where}: 'scores' has {len(scores)} values for {len(labels)} labels")
    return scores
