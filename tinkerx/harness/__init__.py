"""Evaluation harnesses people already report numbers from, run on tinkerx models and checkpoints:
lm-evaluation-harness (``python -m tinkerx.harness.lm_eval``, the ``tinkerx`` model in ``lm_eval_model``,
local task files in ``lm_eval_tasks``). The prompt scoring it shares with the server's
``/v1/completions`` is ``tinkerx.eval.prompt_scores``."""
