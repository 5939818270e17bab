"""Chat messages to tokens, through the tokenizer's own chat template.

Every method builds prompts and training data here, so the prompt a model is trained on is
byte-for-byte the prompt it is sampled and evaluated on.
"""

from __future__ import annotations

from typing import Any, Sequence

Messages = Sequence[dict[str, str]]


def prompt_tokens(tokenizer: Any, messages: Messages) -> list[int]:
    """Tokens of ``messages`` followed by the template's assistant header."""
    text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    return tokenizer.encode(text, add_special_tokens=False)


def completion_tokens(tokenizer: Any, completion: str) -> list[int]:
    """An assistant reply as the model should produce it: its text, then the end-of-turn token."""
    return tokenizer.encode(completion, add_special_tokens=False) + [tokenizer.eos_token_id]


def decode_completion(tokenizer: Any, tokens: Sequence[int]) -> str:
    return tokenizer.decode(list(tokens), skip_special_tokens=True)


def supervised_datum(prompt: Sequence[int], completion: Sequence[int], completion_weight: float = 1.0):
    """A Tinker ``Datum`` for next-token prediction with loss on the completion tokens only.

    Position i of ``model_input`` predicts ``target_tokens[i]``, so the sequence is shifted by one
    and the first completion token is predicted from the last prompt position.
    """
    from tinker import types

    tokens = list(prompt) + list(completion)
    weights = [0.0] * (len(prompt) - 1) + [completion_weight] * len(completion)
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={"target_tokens": tokens[1:], "weights": weights},
    )
