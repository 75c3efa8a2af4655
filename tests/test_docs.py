"""The README's journeys work as written: every ``bash`` and ``python`` block is executed, in order.

Blocks run in one scratch working directory that looks like the repository root (``configs/`` and
``examples/`` linked in), so commands that write ``runs/...`` and blocks that read what an earlier
command wrote chain as they do for a user. Commands that would train for hours get the extra options
listed in ``SHORTER`` appended (later options override earlier ones), so what runs is the README's
command itself, shortened; a command the table does not know fails the test, so a new README command
cannot go untested. The "Set up" block is what CI itself runs (``scripts/test.sh``) and is skipped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SKIPPED_SECTIONS = ("Set up",)

# (pattern on the command, options appended to shorten it, why)
SHORTER: list[tuple[str, str]] = [
    (r"^molchannel prepare ", "--limit 300 --processes 1 --leakage-datasets bace"),
    # the cluster command only parses here (no GPU): --print_config validates every option and exits
    (r"^molchannel pretrain .*--trainer\.num_nodes", "--print_config"),
    (r"^molchannel pretrain ", "--trainer.max_steps 3 --trainer.limit_val_batches 1 --data.limit 300"),
    (r"^molchannel finetune .*zinc_logp", "--optim.epochs 2"),
    (r"^molchannel finetune ", "--data.limit 200 --optim.epochs 1"),
    (r"^molchannel benchmark moleculenet", "--datasets bace --seeds 0 --epochs 1 --limit 150"),
    (r"^molchannel benchmark moleculeace", "--datasets CHEMBL2047_EC50 --seeds 0 --epochs 1 --limit 150"),
    (r"^molchannel benchmark probe", "--datasets bace esol --limit 300"),
    (r"^molchannel (embed|predict|info|export) ", ""),  # quick: run exactly as written
]


@dataclass
class Block:
    section: str
    language: str
    code: str
    line: int


def readme_blocks(text: str) -> list[Block]:
    """Fenced ``bash``/``python`` blocks with the ``##`` section they sit in."""
    blocks, section = [], ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = re.match(r"^```(\w+)\s*$", line)
        if fence:
            start = i
            i += 1
            body = []
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            if fence.group(1) in ("bash", "python"):
                blocks.append(Block(section, fence.group(1), "\n".join(body), start + 1))
        i += 1
    return blocks


def shell_commands(code: str) -> list[str]:
    """One string per command: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in joined.splitlines():
        command = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if command:
            commands.append(command)
    return commands


def shortened(command: str) -> str:
    for pattern, extra in SHORTER:
        if re.search(pattern, command):
            return f"{command} {extra}".strip()
    raise AssertionError(
        f'README command {command!r} has no entry in tests/test_docs.py SHORTER: add one ("" runs it as is)'
    )


def test_readme_blocks_are_found() -> None:
    blocks = readme_blocks(README.read_text())
    sections = {b.section for b in blocks}
    for journey in ("Journey 1", "Journey 2", "Journey 3"):
        assert any(s.startswith(journey) for s in sections), f"README has no '{journey}' section with code"
    with pytest.raises(AssertionError, match="SHORTER"):
        shortened("molchannel frobnicate --everything")


@pytest.mark.slow
def test_readme_journeys_run_as_written(data_dir: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for name in ("configs", "examples"):
        (work / name).symlink_to(REPO / name)
    env = {
        **os.environ,
        "MOLCHANNEL_DATA_DIR": str(data_dir),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "OMP_NUM_THREADS": "1",
        "MOLCHANNEL_PROGRESS": "none",
    }
    namespace: dict[str, object] = {}
    ran = 0
    cwd = Path.cwd()
    for block in readme_blocks(README.read_text()):
        if block.section.startswith(SKIPPED_SECTIONS):
            continue
        where = f"README.md line {block.line} ({block.section})"
        if block.language == "bash":
            for command in shell_commands(block.code):
                full = shortened(command)
                started = time.perf_counter()
                result = subprocess.run(
                    ["bash", "-c", full], cwd=work, env=env, capture_output=True, text=True, timeout=900
                )
                print(f"{time.perf_counter() - started:6.1f} s  {full}")  # shown with pytest -s
                assert result.returncode == 0, f"{where}: `{full}` failed:\n{result.stderr[-3000:]}"
                ran += 1
        else:
            os.chdir(work)
            started = time.perf_counter()
            try:
                exec(compile(block.code, where, "exec"), namespace)  # noqa: S102 - the README's own code
            finally:
                os.chdir(cwd)
            print(f"{time.perf_counter() - started:6.1f} s  python block at {where}")
            ran += 1
    assert ran >= 12, f"only {ran} README blocks/commands ran"
    # what the journeys promise to leave behind
    for path in ("embeddings.npy", "embeddings.parquet", "predictions.csv", "runs/finetune/logp/model",
                 "my_model/README.md", "runs/benchmark/moleculenet/results.md", "predictions-std.csv",
                 "runs/finetune/logp-rdkit2d/model/ensemble.json"):  # fmt: skip
        assert (work / path).exists(), f"the README journeys did not produce {path}"
