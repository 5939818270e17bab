"""Small pieces of on-policy RL shared by RL methods: prompt pool, group advantages, rollouts, metrics."""
