"""What methods do the same way: the policy's clients, evaluation and saving (``policy``), and the
pieces of on-policy sampling several methods use (prompt pool, rollouts, group advantages, metrics)."""
