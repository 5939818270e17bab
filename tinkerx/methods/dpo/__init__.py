"""``method=dpo``: direct preference optimisation; ``loss`` holds the DPO losses, ``pairs`` the pairs."""

from tinkerx.methods.dpo.method import DPO

__all__ = ["DPO"]
