"""Run folders written before methods moved to ``tinkerx/methods/<name>/`` still build.

``tests/fixtures/legacy_configs/*.yaml`` are resolved configs of each method (``--cfg job --resolve``)
written by the code before the move, as a run folder's ``config.yaml`` holds them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tinkerx.runs.legacy_targets import MOVED_TARGETS, upgrade_targets

LEGACY = Path(__file__).parent / "fixtures" / "legacy_configs"
METHOD_CLASSES = {
    "sft": "SFT", "grpo": "GRPO", "dpo": "DPO", "distill": "OnPolicyDistill", "distill_off_policy": "OffPolicyDistill",
    "debate": "Debate", "eval": "Evaluate",
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(METHOD_CLASSES))
def test_a_config_written_before_the_move_instantiates_its_method_and_components(name):
    cfg = OmegaConf.load(LEGACY / f"{name}.yaml")
    upgrade_targets(cfg)
    method = instantiate(cfg.method)
    assert type(method).__name__ == METHOD_CLASSES[name]
    assert type(method).__module__.startswith(f"tinkerx.methods.{name.split('_')[0]}."), type(method).__module__
    for key, node in (cfg.get("components") or {}).items():
        assert instantiate(node) is not None, key


def test_only_the_moved_paths_are_rewritten_and_the_old_ones_no_longer_import():
    upgraded = {}
    for path in sorted(LEGACY.glob("*.yaml")):
        cfg = OmegaConf.load(path)
        before = OmegaConf.to_container(cfg)
        upgraded[path.stem] = upgrade_targets(cfg)
        if not upgraded[path.stem]:
            assert OmegaConf.to_container(cfg) == before, path.stem  # nothing else touched
    assert upgraded["eval"] == ["method._target_"]
    assert upgraded["distill"] == upgraded["distill_off_policy"] == ["components.teacher._target_"]
    assert upgraded["sft"] == upgraded["grpo"] == upgraded["dpo"] == upgraded["debate"] == []
    # Without the rewrite an old eval run's config cannot build: the reason this module exists.
    with pytest.raises(Exception, match="evaluate"):
        instantiate(OmegaConf.load(LEGACY / "eval.yaml").method)
    assert set(MOVED_TARGETS.values()) <= {"tinkerx.methods.eval.Evaluate", "tinkerx.methods.distill.Teacher"}
