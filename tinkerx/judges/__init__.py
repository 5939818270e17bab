"""LLM judges with rubrics: ``reward=judge``, ``evaluator.judges=[...]`` and ``python -m tinkerx.judges``
(a rubric's agreement with its labelled replies in ``labelled/``)."""
