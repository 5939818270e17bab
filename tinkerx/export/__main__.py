"""``python -m tinkerx.export CHECKPOINT --format hf|gguf --out PATH [--model NAME]``

CHECKPOINT is a checkpoint folder or a run folder (its final checkpoint). The base model comes from
the ``conf/model/`` option whose ``base_model`` the checkpoint names (``--model`` to choose one).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinkerx.errors import UserError

FORMATS = ("hf", "gguf")


def export(checkpoint: str, fmt: str, out: str, model: str | None = None, loader: object | None = None) -> Path:
    """``loader``: a model loader object, for callers that build the base model themselves."""
    from tinkerx.export.weights import checkpoint_meta, merged_model, model_loader

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    meta = checkpoint_meta(checkpoint)
    loader = loader or model_loader(meta["base_model"], model)
    if fmt == "gguf":
        from tinkerx.export.gguf import check_supported

        check_supported(loader)  # before the minutes of merging, not after
    merged, tokenizer = merged_model(meta, loader)
    if fmt == "hf":
        from tinkerx.export.hf import write_hf

        return write_hf(merged, tokenizer, Path(out))
    from tinkerx.export.gguf import write_gguf

    return write_gguf(merged, tokenizer, Path(out))


def main(argv: list[str] | None = None) -> int:
    from tinkerx.cli_errors import report_user_error

    parser = argparse.ArgumentParser(prog="python -m tinkerx.export", description=__doc__.split("\n\n")[1])
    parser.add_argument("checkpoint")
    parser.add_argument("--format", default="hf", choices=FORMATS)
    parser.add_argument("--out", required=True, help="a folder (hf) or a .gguf file (gguf)")
    parser.add_argument("--model", default=None, help="the conf/model option of the base model (default: found from the checkpoint)")
    args = parser.parse_args(argv)
    try:
        path = export(args.checkpoint, args.format, args.out, args.model)
    except UserError as e:
        report_user_error(e)
    print(f"exported {args.checkpoint} as {args.format}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
