"""Environments: an episode of one or more turns, each role's turns sampled by a policy.

A single-turn prompt is the one-turn case: ``OneTurnEnv`` (a data set's question) runs through the
same runner as a game or a tool-use episode, so GRPO has one path for both.

Modules: ``protocol`` (``Env``, ``EnvGroup``, ``StepResult``: what an environment implements),
``episode`` (what a run records: turns with their exact tokens and logprobs, the outcome),
``render`` (the next turn's prompt: the previous one + sampled tokens + only the new messages'
tokens), ``runner`` (drives episodes in lockstep rounds and enforces turn, token and time limits),
``one_turn`` (a data set prompt as an environment), ``guess_number`` (a game a tiny model learns).
"""

from tinkerx.envs.episode import Episode, Turn
from tinkerx.envs.protocol import Env, EnvGroup, Observation, StepResult
from tinkerx.envs.runner import EpisodeLimits, EpisodeRunner

__all__ = ["Env", "EnvGroup", "Episode", "EpisodeLimits", "EpisodeRunner", "Observation", "StepResult", "Turn"]
