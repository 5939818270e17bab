"""Pieces of distillation: the teacher component, per-token advantages, the teacher's sample cache."""

from tinkerx.methods.distillation.teacher import Teacher

__all__ = ["Teacher"]
