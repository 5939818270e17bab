"""``method=sft``: supervised fine-tuning on the data set's answers."""

from tinkerx.methods.sft.method import SFT
from tinkerx.methods.sft.overfit import OverfitWatch

__all__ = ["SFT", "OverfitWatch"]
