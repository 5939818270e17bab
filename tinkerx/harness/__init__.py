"""Evaluation harnesses people already report numbers from, run on tinkerx models and checkpoints:
lm-evaluation-harness (``tinkerx.harness.lm_eval``), and the prompt scoring they share with the
server's ``/v1/completions`` (``tinkerx.harness.scoring``)."""
