"""``pip install .`` ships a tinkerx that runs from any directory: configs included, outputs under the cwd.

The wheel is built from a copy of the project's source (so nothing stale in a local ``build/``
folder can slip in), installed without ``-e`` into a fresh virtual environment that reuses this
interpreter's packages (torch, transformers, ...) but not its tinkerx, and every front door is
started from an empty temporary directory with no ``PYTHONPATH``. An editable install and a plain
checkout find their configs too (``tinkerx.paths``: the repository's ``conf/``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import CONF_DIR, ROOT

pytestmark = pytest.mark.slow

# What a source distribution holds (MANIFEST.in, setup.py): enough to build the wheel.
SOURCES = ["tinkerx", "conf", "experiments", "setup.py", "pyproject.toml", "README.md", "MANIFEST.in"]


def _run(args: list[str], cwd: Path, timeout: float = 600, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"WANDB_MODE": "offline", "TINKER_TELEMETRY": "0", "HF_HUB_OFFLINE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{' '.join(map(str, result.args))}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def _copy_sources(to: Path) -> Path:
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, to / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, to / name)
    return to


def _venv(at: Path) -> Path:
    """A venv over this interpreter's packages. Without a pip of its own it uses this one's pip and
    setuptools, so installing needs no network (a venv's bundled setuptools may be too old to build)."""
    _ok(_run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(at)], at.parent))
    return at / "bin" / "python"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The python of a fresh venv holding the wheel of this checkout."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = _copy_sources(tmp / "source")
    _ok(_run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "wheels"), str(source)], tmp))
    (wheel,) = (tmp / "wheels").glob("tinkerx-*.whl")
    python = _venv(tmp / "venv")
    _ok(_run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], tmp))
    return python


@pytest.fixture
def empty_dir(tmp_path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def test_the_venv_imports_the_wheels_tinkerx_with_every_config(installed, empty_dir):
    out = _ok(_run([str(installed), "-c", "import tinkerx, tinkerx.paths as p; print(tinkerx.__file__); print(p.CONFIG_DIR)"], empty_dir))
    package_file, config_dir = (Path(line) for line in out.stdout.split())
    venv = installed.parent.parent
    assert package_file.is_relative_to(venv) and not package_file.is_relative_to(ROOT), package_file
    assert config_dir == package_file.parent / "conf"
    shipped = sorted(str(p.relative_to(config_dir)) for p in config_dir.rglob("*.yaml"))
    assert shipped == sorted(str(p.relative_to(CONF_DIR)) for p in CONF_DIR.rglob("*.yaml"))
    assert {"config.yaml", "serve.yaml", "hydra/launcher/slurm.yaml", "suite/quick.yaml", "experiment/sft_tiny_arithmetic.yaml"} <= set(shipped)


def test_cfg_job_composes_from_an_empty_directory(installed, empty_dir):
    out = _ok(_run([str(installed), "-m", "tinkerx", "experiment=sft_tiny_arithmetic", "--cfg", "job"], empty_dir))
    assert "max_steps: 1000" in out.stdout and "tinkerx.methods.sft" in out.stdout
    assert not any(empty_dir.iterdir())  # composing writes nothing


def test_a_short_run_writes_under_the_current_directory_and_reproduces(installed, empty_dir):
    _ok(_run([str(installed), "-m", "tinkerx", "training.max_steps=3", "evaluator.max_examples=8"], empty_dir))
    (run_dir,) = (empty_dir / "outputs").glob("*/*")
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3
    assert sorted(p.name for p in empty_dir.iterdir()) == ["outputs"]
    out = _ok(_run([str(installed), "-m", "tinkerx.reproduce", str(run_dir)], empty_dir))
    assert "metrics.jsonl matches the original line for line" in out.stderr


@pytest.mark.parametrize("module,expected", [
    ("tinkerx.serve", "Configuration groups"),  # Hydra's help lists the groups it found in the packaged conf/
    ("tinkerx.resume", "Continue a run"),
    ("tinkerx.reproduce", "Re-run a finished run"),
    ("tinkerx.mcp", "usage: python -m tinkerx.mcp"),
])
def test_every_front_door_starts(installed, empty_dir, module, expected):
    out = _ok(_run([str(installed), "-m", module, "--help"], empty_dir))
    assert expected in out.stdout
    assert not any(empty_dir.iterdir())


def test_an_editable_install_uses_the_checkouts_conf(tmp_path, empty_dir):
    source = _copy_sources(tmp_path / "checkout")
    python = _venv(tmp_path / "venv")
    _ok(_run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-e", str(source)], tmp_path))
    out = _ok(_run([str(python), "-c", "import tinkerx, tinkerx.paths as p; print(tinkerx.__file__); print(p.CONFIG_DIR)"], empty_dir))
    package_file, config_dir = (Path(line) for line in out.stdout.split())
    assert package_file.is_relative_to(source) and config_dir == source / "conf"
    out = _ok(_run([str(python), "-m", "tinkerx", "experiment=sft_tiny_arithmetic", "--cfg", "job"], empty_dir))
    assert "max_steps: 1000" in out.stdout


def test_a_plain_checkout_uses_its_conf(empty_dir):
    out = _ok(_run([sys.executable, "-c", "import tinkerx.paths as p; print(p.CONFIG_DIR)"], empty_dir, pythonpath=ROOT))
    assert Path(out.stdout.strip()) == ROOT / "conf" == CONF_DIR


def test_every_code_folder_is_a_package_and_its_data_is_declared():
    # find_packages skips a folder without __init__.py, so a wheel would lack its modules (and its
    # data files unless setup.py's package_data names them): checked here, before any wheel is built.
    source = ROOT / "tinkerx"
    code_dirs = {p.parent for p in source.rglob("*.py") if "__pycache__" not in p.parts}
    assert [str(d.relative_to(ROOT)) for d in sorted(code_dirs) if not (d / "__init__.py").is_file()] == []
    setup_py = (ROOT / "setup.py").read_text()
    data = [p for p in source.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    for path in data:
        package = path.parent
        while not (package / "__init__.py").is_file():
            package = package.parent
        dotted = ".".join(package.relative_to(ROOT).parts)
        pattern = "/".join(path.relative_to(package).parts[:-1] + ("*" + path.suffix,))
        assert f'"{dotted}": [' in setup_py and pattern in setup_py, f"{path.relative_to(ROOT)} is not in setup.py's package_data"
