"""Rewards grade one completion against a ground truth.

The contract is an object with ``name: str`` and
``compute_reward(completion: str, ground_truth: str) -> float``; ``guarded.GuardedReward`` wraps
any of them so failures score 0.0 instead of stopping a run.
"""
