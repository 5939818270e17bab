"""``python -m tinkerx.judges rubric=NAME [labelled=FILE] [verdict=auto|logprobs|text] [out=FILE] [OVERRIDES ...]``

Measures a rubric judge's agreement with a labelled set of replies (by default the rubric's shipped
set, tinkerx/judges/labelled/NAME.jsonl): the rate with its 95% Wilson interval. The judge is the
run config's model on its backend, chosen with the run's own overrides: ``model=smollm2-135m``, or
``backend=openai backend.base_url=http://127.0.0.1:8000/v1`` for an endpoint.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from tinkerx.errors import ConfigError, UserError
from tinkerx.runs.compose import compose_config

OWN_KEYS = ("rubric", "labelled", "verdict", "out")


def main(argv: list[str] | None = None) -> int:
    from tinkerx.cli_errors import report_user_error

    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return 0
    own = {k: v for k, _, v in (a.partition("=") for a in args) if k in OWN_KEYS}
    overrides = [a for a in args if a.partition("=")[0] not in OWN_KEYS]
    try:
        if "rubric" not in own:
            raise ConfigError("rubric=NAME is required (a conf/rubric name such as tutoring or safety, or a .yaml path)")
        result = measure(own, overrides)
    except UserError as e:
        report_user_error(e)
    print(f"{result['rubric']} judged by {result['judge']}: agreement {result['agreement']:.1%} "
          f"[{result['interval95'][0]:.1%}, {result['interval95'][1]:.1%}] on {result['n']} labelled replies, "
          f"unparsed {result['unparsed']}, errors {result['errors']}, {result['seconds']:.1f} s; answered {result['answered']}")
    if own.get("out"):
        Path(own["out"]).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"written: {own['out']}")
    return 0


def measure(own: dict[str, str], overrides: list[str]) -> dict:
    from hydra.utils import instantiate

    from tinkerx.judges.agreement import labelled_path, load_labelled, measure_agreement
    from tinkerx.judges.judge import LLMJudge

    cfg = compose_config(overrides)
    judge = LLMJudge(own["rubric"], verdict=own.get("verdict", "auto"), cache=False)
    rows = load_labelled(Path(own["labelled"]) if own.get("labelled") else labelled_path(judge.rubric.name), judge.rubric)
    backend = instantiate(cfg.backend)
    loader = instantiate(cfg.model.loader)
    with tempfile.TemporaryDirectory(prefix="tinkerx-judge-") as run_dir:
        service = backend.open([loader], Path(run_dir), seed=cfg.seed)
        try:
            base_model = getattr(service, "served_model", None) or cfg.model.base_model
            judge.start(service, base_model, loader.load_tokenizer())
            started = time.perf_counter()
            result = measure_agreement(judge, rows)
            result["seconds"] = time.perf_counter() - started
        finally:
            backend.close()
    return result


if __name__ == "__main__":
    sys.exit(main())
