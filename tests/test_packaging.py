"""The installed environment has what pyproject.toml promises: every required dependency imports.

The test suite imports its dependencies plainly (no ``importorskip``), so a broken install fails
loudly; these tests name the distribution that is missing instead of leaving a collection error.
Only the genuinely optional extras (deepchem, io) are skipped without them (``requires_*`` marks).
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

#: distribution name (PEP 503 normalised) -> the module it installs, where the two differ
IMPORT_NAMES = {
    "torch-geometric": "torch_geometric",
    "scikit-learn": "sklearn",
    "pyyaml": "yaml",
}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _import_name(distribution: str) -> str:
    name = _normalise(distribution)
    return IMPORT_NAMES.get(name, name.replace("-", "_"))


def _requirements(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    listed = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return [Requirement(r) for r in listed]


REQUIRED = _requirements()
TRAIN = _requirements("train")  # every training, fine-tuning and benchmark test needs it


def test_the_lists_are_read() -> None:
    names = {_normalise(r.name) for r in REQUIRED}
    assert {"torch", "torch-geometric", "rdkit", "numpy", "safetensors"} <= names
    assert {"lightning", "scikit-learn"} <= {_normalise(r.name) for r in TRAIN}
    assert _import_name("torch-geometric") == "torch_geometric" and _import_name("scikit-learn") == "sklearn"
    assert _import_name("PyYAML") == "yaml" and _import_name("jsonargparse") == "jsonargparse"


@pytest.mark.parametrize(
    "requirement", [*REQUIRED, *TRAIN], ids=lambda r: _normalise(r.name) if isinstance(r, Requirement) else r
)
def test_dependency_imports_at_a_supported_version(requirement: Requirement) -> None:
    module = _import_name(requirement.name)
    try:
        importlib.import_module(module)
    except Exception as exc:  # an ImportError, or a broken install failing inside the import
        pytest.fail(
            f"{requirement} is a dependency in pyproject.toml, but `import {module}` fails: {exc!r}. "
            "Install the project with its extras: pip install -e '.[dev]'"
        )
    version = metadata.version(requirement.name)
    assert requirement.specifier.contains(version, prereleases=True), (
        f"{requirement.name} {version} is installed, pyproject.toml asks for {requirement}"
    )


def test_test_folders_mirror_the_package() -> None:
    """Every test folder is named after a layer (docs/architecture.md, "Tests")."""
    root = PYPROJECT.parent
    layers = {p.name for p in (root / "molchannel").iterdir() if (p / "__init__.py").is_file()}
    layers |= {name for name in ("pretrain", "finetune") if (root / name / "__init__.py").is_file()}
    not_layers = {"fixtures", "__pycache__"}
    folders = {p.name for p in (root / "tests").iterdir() if p.is_dir() and p.name not in not_layers}
    assert folders, "no test folders found"
    assert folders <= layers, f"test folders without a package layer: {sorted(folders - layers)}"
    stray = [p for p in (root / "tests" / "fixtures").rglob("test_*.py")]
    assert not stray, f"tests inside tests/fixtures are never meant to be there: {stray}"


def _run_setup_with_stub_python(tmp_path: Path, env_extra: dict[str, str]) -> list[str]:
    """Run scripts/setup.sh against a venv whose ``python`` is a stub: it has no torch and logs every
    ``pip install`` it is asked for (nothing is installed, nothing touches the network)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "pip.log"
    stub = venv / "bin" / "python"
    stub.write_text(
        "#!/usr/bin/env bash\n"
        'if [[ "$1" == "-c" ]]; then exit 1; fi\n'  # `import torch` fails: no torch yet
        f'echo "$*" >> "{log}"\n'
    )
    stub.chmod(0o755)
    env = {**os.environ, "MOLCHANNEL_VENV": str(venv), "PYTHON": sys.executable, **env_extra}
    script = PYPROJECT.parent / "scripts" / "setup.sh"
    subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True, text=True)
    return log.read_text().splitlines()


def test_setup_installs_torch_first_from_the_index_asked_for(tmp_path: Path) -> None:
    calls = _run_setup_with_stub_python(tmp_path, {"MOLCHANNEL_TORCH_INDEX": "https://example.org/whl/cpu"})
    assert len(calls) == 2 and calls[0].endswith("--index-url https://example.org/whl/cpu torch==2.13.0")
    assert "-e " in calls[1] and "[train,io]" in calls[1]  # then the package itself, from its own index
    plain = _run_setup_with_stub_python(tmp_path / "plain", {"MOLCHANNEL_TORCH_INDEX": ""})
    assert plain[0].endswith("install --quiet --disable-pip-version-check torch==2.13.0")
