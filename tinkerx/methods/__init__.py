"""Training and evaluation recipes, one package each (``sft``, ``grpo``, ``dpo``, ``distill``, ``debate``,
``eval``), every one a ``tinkerx.pipeline.Method``; ``shared`` holds what they do the same way."""
