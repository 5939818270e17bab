"""``python -m tinkerx.harness.lm_eval --model tinkerx --model_args model=smollm2-135m,checkpoint=RUN_DIR --tasks tinkerx_mmlu_stem --limit 100``

lm-evaluation-harness's own command line (every flag of ``lm_eval``), with the ``tinkerx`` model
registered and the local tasks (``tinkerx_mmlu_stem``, ``tinkerx_gsm8k``, over ``$TINKERX_DATA`` or
../shared/data) on the include path. lm-eval finds models only in its registry (it reads no entry
points), so the plain ``lm_eval`` command does not know ``--model tinkerx``; this one does. A tinkerx
mistake (an unknown model, a checkpoint path that holds nothing) is one line and exit status 2.
"""

from __future__ import annotations

import sys
import tempfile

from tinkerx.errors import UserError


def main(argv: list[str] | None = None) -> int:
    from tinkerx.cli_errors import report_user_error

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        import tinkerx.harness.lm_eval_model  # noqa: F401 - registers --model tinkerx
        from tinkerx.harness.lm_eval_tasks import write_tasks

        tasks = write_tasks(tempfile.mkdtemp(prefix="tinkerx-lm-eval-tasks-"))
    except ImportError as e:
        report_user_error(f"lm-evaluation-harness is not installed ({e}): pip install 'tinkerx[lm-eval]'")
    except UserError as e:
        report_user_error(e)
    if "--include_path" not in args:
        args += ["--include_path", str(tasks)]
    from lm_eval.__main__ import cli_evaluate

    sys.argv = ["lm_eval", *args]
    try:
        cli_evaluate()
    except UserError as e:
        report_user_error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
