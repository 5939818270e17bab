"""Packaging beyond what pyproject.toml can say: the top-level ``conf/`` folder installs as
``tinkerx/conf/``, so a wheel or ``pip install .`` carries every config (the repository keeps
``conf/`` at the top, its documented place; ``tinkerx.paths`` finds it in either place)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["tinkerx", "tinkerx.*"]), "tinkerx.conf"],
    package_dir={"tinkerx.conf": "conf"},
    package_data={"tinkerx": ["py.typed"], "tinkerx.conf": ["*.yaml", "**/*.yaml"], "tinkerx.judges": ["labelled/*.jsonl"]},
)
