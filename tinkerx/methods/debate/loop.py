"""Setting debates up (balanced, seeded sides) and running their turns, all debates of a step in lockstep."""

from __future__ import annotations

import random
from typing import Any, Mapping, Sequence

from tinkerx.chat import decode_completion, prompt_tokens
from tinkerx.example import Example
from tinkerx.methods.debate.prompts import SIDES, debater_messages
from tinkerx.methods.debate.transcript import Setup, Transcript, Turn
from tinkerx.sampler import sample_prompts


def assign_sides(examples: Sequence[Example], rng: random.Random, step: int) -> list[Setup]:
    """The correct answer against one random distractor, the correct one on side A in half the debates.

    Exactly balanced within a step (off by one when odd), so a judge that always picks one side
    scores 50% and the first speaker's advantage cancels out of the accuracy.
    """
    correct_sides = [SIDES[i % 2] for i in range(len(examples))]
    rng.shuffle(correct_sides)
    setups = []
    for i, (ex, side) in enumerate(zip(examples, correct_sides)):
        truth = ord(ex.answer) - ord("A")
        wrong = rng.choice([j for j in range(len(ex.choices)) if j != truth])
        pair = (truth, wrong) if side == "A" else (wrong, truth)
        setups.append(
            Setup(
                id=f"{step:06d}_{i:03d}",
                example_id=ex.id,
                question=ex.question,
                answers=(ex.choices[pair[0]], ex.choices[pair[1]]),
                correct=side,
                letters=(chr(65 + pair[0]), chr(65 + pair[1])),
            )
        )
    return setups


def run_debates(debaters: Mapping[str, Any], tokenizer: Any, setups: Sequence[Setup], rounds: int, params: Any) -> list[Transcript]:
    """``rounds`` rounds of A-then-B turns; each turn sees the transcript so far.

    ``debaters`` maps a side to its sampling client (the same client twice in self-play). Every
    debate's turn goes out in one request, so a step costs ``2 * rounds`` batched samplings.
    """
    transcripts = [Transcript(s) for s in setups]
    for round_ in range(1, rounds + 1):
        for side in SIDES:
            prompts = [prompt_tokens(tokenizer, debater_messages(t.setup, t.turns, side, round_, rounds)) for t in transcripts]
            futures = sample_prompts(debaters[side], prompts, 1, params)
            for t, prompt, future in zip(transcripts, prompts, futures):
                seq = future.result().sequences[0]
                tokens = list(seq.tokens)
                t.turns.append(
                    Turn(side, round_, decode_completion(tokenizer, tokens), prompt, tokens, list(seq.logprobs or []), seq.stop_reason)
                )
    return transcripts
