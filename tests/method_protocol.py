"""The three ``Method`` protocol members front doors use (``sampling_client``, ``load``,
``saved_checkpoints``) for method classes that do not define them yet.

The methods are being given these members in their own change; until it is merged, the MCP tests
that drive methods in-process add them here, written the way the MCP session used to reach into the
methods. A class that defines a member keeps its own: once every method has them, this adds nothing
(``missing_members`` then returns an empty list, which a test can assert).
"""

from __future__ import annotations

from typing import Any

import pytest


def _sampling_client(self: Any) -> Any:
    client = self.client.save_weights_and_get_sampling_client()
    return client if hasattr(client, "sample") else client.result()


def _load(self: Any, path: str, with_optimizer: bool = False) -> None:
    (self.client.load_state_with_optimizer if with_optimizer else self.client.load_state)(path).result()


def _saved_checkpoints(self: Any) -> list[dict[str, Any]]:
    return [{"name": f"auto_step_{c['step']:06d}", **c} for c in self.summary().get("auto_checkpoints", [])]


MEMBERS = {"sampling_client": _sampling_client, "load": _load, "saved_checkpoints": _saved_checkpoints}


def method_classes() -> list[type]:
    from tinkerx.methods.dpo import DPO
    from tinkerx.methods.grpo import GRPO
    from tinkerx.methods.sft import SFT

    return [SFT, GRPO, DPO]


def missing_members() -> list[str]:
    return [f"{cls.__name__}.{name}" for cls in method_classes() for name in MEMBERS if not hasattr(cls, name)]


@pytest.fixture
def method_protocol(monkeypatch):
    """Adds the members a method class lacks, for this test only."""
    for cls in method_classes():
        for name, member in MEMBERS.items():
            if not hasattr(cls, name):
                monkeypatch.setattr(cls, name, member, raising=False)
    yield
