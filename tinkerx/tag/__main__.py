"""``python -m tinkerx.tag IN.jsonl --taxonomy TAGS [--field tags] [--text-field question] [--out OUT.jsonl] [model=NAME ...]``

Tags every record of a JSON-lines data set against a taxonomy with a judge model (``model=`` and
``backend=``, as for a run: the tiny model, SmolLM2, a checkpoint's base, a Tinker model) and writes
the same records with the tag added (``--field``) and the judge's probability of each tag
(``FIELD_probabilities``), ready for ``evaluator.group_by=[FIELD]``. TAGS: a comma-separated list,
or a YAML file holding a list. ``--multi P`` gives every tag with probability >= P (a list).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tinkerx.errors import DataError, UserError


def main(argv: list[str] | None = None) -> int:
    from tinkerx.cli_errors import report_user_error

    parser = argparse.ArgumentParser(prog="python -m tinkerx.tag", description=__doc__.split("\n\n")[1])
    parser.add_argument("file", help="the data set: a JSON-lines file, one record a line")
    parser.add_argument("overrides", nargs="*", help="the judge: model=smollm2-135m backend=local ...")
    parser.add_argument("--taxonomy", required=True, help="tags, comma-separated, or a YAML file with a list of them")
    parser.add_argument("--field", default="tags", help="the field the tag is written to (default: tags)")
    parser.add_argument("--text-field", default="question", help="the field the judge reads (default: question)")
    parser.add_argument("--multi", type=float, default=None, help="every tag at least this probable, as a list")
    parser.add_argument("--out", default=None, help="output file (default: IN with .tagged.jsonl)")
    args = parser.parse_intermixed_args(argv)
    try:
        records, texts = _read(Path(args.file), args.text_field)
        from tinkerx.tag import check_taxonomy, tagged

        taxonomy = check_taxonomy(_taxonomy(args.taxonomy))
        if args.multi is not None and not 0 < args.multi <= 1:
            raise UserError(f"--multi must be a probability in (0, 1], got {args.multi}")
        started = time.time()
        probabilities, spent = _judge(args.overrides, texts, taxonomy)
        out = Path(args.out) if args.out else Path(args.file).with_suffix(".tagged.jsonl")
        with out.open("w", encoding="utf-8") as f:
            for record, p in zip(records, probabilities):
                f.write(json.dumps(tagged(record, p, args.field, args.multi)) + "\n")
    except UserError as e:
        report_user_error(e)
    print(f"tagged {len(records)} records in {time.time() - started:.1f}s ({spent}): {out}")
    return 0


def _read(path: Path, text_field: str) -> tuple[list[dict], list[str]]:
    from tinkerx.data.jsonl import jsonl_objects

    if not path.is_file():
        raise DataError(f"no data file at {path}")
    records, texts = [], []
    for line_no, record in jsonl_objects(path):
        value = record.get(text_field)
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise DataError(f"{path}:{line_no}: no text in field {text_field!r} (--text-field); its fields: {', '.join(record) or 'none'}")
        records.append(record)
        texts.append(str(value))
    if not records:
        raise DataError(f"{path} holds no records")
    return records, texts


def _taxonomy(spec: str) -> list:
    path = Path(spec)
    if path.suffix in (".yaml", ".yml", ".json") or path.is_file():
        import yaml

        if not path.is_file():
            raise UserError(f"--taxonomy: no file at {path}")
        tags = yaml.safe_load(path.read_text())
        if not isinstance(tags, list):
            raise UserError(f"--taxonomy: {path} must hold a list of tags")
        return tags
    return [t for t in spec.split(",")]


def _judge(overrides: list[str], texts: list[str], taxonomy: list[str]) -> tuple[list[dict[str, float]], str]:
    """The judge's probabilities, from the backend and model the overrides name; and what it spent."""
    import tempfile

    from tinkerx.build import instantiate
    from tinkerx.methods.shared.policy import resolved
    from tinkerx.runs.compose import compose_config
    from tinkerx.runs.metered_clients import MeteredService
    from tinkerx.runs.prices import PriceTable
    from tinkerx.runs.usage import UsageMeter
    from tinkerx.tag import tag_probabilities

    cfg = compose_config(overrides)
    loader, backend = instantiate(cfg.model.loader, "model.loader"), instantiate(cfg.backend, "backend")
    with tempfile.TemporaryDirectory(prefix="tinkerx-tag-") as scratch:
        meter = UsageMeter(PriceTable(), cfg.model.base_model)
        service = MeteredService(backend.open([loader], Path(scratch), seed=cfg.seed), meter)
        try:
            client = resolved(service.create_sampling_client(base_model=cfg.model.base_model))
            probabilities = tag_probabilities(client, loader.load_tokenizer(), texts, taxonomy)
        finally:
            backend.close()
    return probabilities, f"{meter.totals()['prefill_tokens']:,} tokens prefilled"


if __name__ == "__main__":
    sys.exit(main())
