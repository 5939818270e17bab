"""Guidance for the agent: the server's ``instructions`` and the ``playbook`` prompt."""

INSTRUCTIONS = """\
tinkerx trains a language model step by step on the configured backend and model: SFT and GRPO
through the guided init_sft / init_grpo, any method (dpo, distill, debate, eval, ...) through
start_run(overrides) with the command line's overrides, then train_step.
Every call is recorded in the session folder (status() shows it); a session can be replayed exactly.

Playbook:
- Choose GRPO (init_grpo) when a program can check an answer (numbers, exact strings, unit tests);
  SFT (init_sft) when you only have good reference answers. A weak model usually needs SFT first,
  then GRPO from the SFT checkpoint (init_grpo(init_from=NAME)).
- Always keep a holdout the model never trains on (holdout_path, or the split carved automatically)
  and judge progress by evaluate(), not by training loss or training reward.
- Take small steps: train 10-50 steps, then look at sample() outputs and the metrics, then decide.
- SFT: watch val_loss; an overfitting_warning means stop, or load an earlier checkpoint.
- GRPO: use a constant learning rate. Watch all_0 / all_1: groups where every sample scored 0 or 1
  carry no signal. Mostly ALL-0: the task is too hard or completions are truncated
  (truncation_rate high -> raise max_tokens); mostly ALL-1: the data is too easy.
- save(name) before risky changes; load(name) to go back. finish() evaluates and closes the run.
- Long calls report progress; pass wait=false to get a job id at once and follow it with
  wait(job_id) / status(), or stop it between steps with cancel(job_id).
"""


def playbook_prompt(goal: str) -> str:
    return f"{INSTRUCTIONS}\nYour goal: {goal}\nStart by calling status(), then init_sft, init_grpo or start_run."
