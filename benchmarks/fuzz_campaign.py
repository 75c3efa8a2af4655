"""Fuzz campaign: the suite's property-based bad-input tests with a budget many times CI's.

Runs three test modules with ``MOLCHANNEL_FUZZ_SCALE=SCALE``, so that every property draws ``SCALE``
times its CI number of examples (the same deterministic hypothesis profile: CI's cases come first):

* ``tests/test_bad_input.py``: featurizers, bulk paths, ``embed``/``predict``/``embed_atoms`` on
  random mixtures of valid, odd, huge and garbage molecules;
* ``tests/test_bad_input_files.py``: random CSV/TSV/SMI files through ``molchannel embed``/``predict``,
  ``read_smiles_file`` and the fine-tuning loader ``load_csv``;
* ``tests/test_bad_config.py``: random fine-tuning config dicts, YAML files and ``--set`` overrides.

Each property checks its own oracle: one output row per input row, valid rows equal to the molecule
on its own, invalid rows reported with index and reason, and only the documented errors
(``InvalidSmilesError``, the command line's user errors) ever raised.

Writes ``OUTPUT/fuzz_campaign.json`` and ``.md`` (cases per property, failures, wall time); the exit
status is pytest's.

    MOLCHANNEL_DATA_DIR=<data> python benchmarks/fuzz_campaign.py --scale 12
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_FILES = ("tests/test_bad_input.py", "tests/test_bad_input_files.py", "tests/test_bad_config.py")


def parse_counts(output: str) -> dict[str, int]:
    """The per-property case counts printed by the suite's ``pytest_terminal_summary``."""
    section = output.split("property-based tests: generated cases", 1)[-1]
    counts = {}
    for line in section.splitlines():
        match = re.match(r"^(.+): (\d+) cases$", line.strip())
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=int, default=12, help="examples per property, x CI's (%(default)s)")
    parser.add_argument("--output", type=Path, default=REPO / "results" / "bench")
    args = parser.parse_args()
    env = {**os.environ, "MOLCHANNEL_FUZZ_SCALE": str(args.scale)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", *TEST_FILES]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    output = done.stdout + done.stderr
    counts = parse_counts(output)
    summary = re.findall(r"^=*\s*(\d+ (?:passed|failed).*?)\s*=*$", output, flags=re.M)
    failures = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.M)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "scale": args.scale,
        "command": f"MOLCHANNEL_FUZZ_SCALE={args.scale} python -m pytest -q {' '.join(TEST_FILES)}",
        "wall_s": round(wall, 1),
        "exit_code": done.returncode,
        "pytest_summary": summary[-1] if summary else "",
        "cases": counts,
        "total_cases": sum(counts.values()),
        "failures": failures,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "fuzz_campaign.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"Fuzz campaign, {result['date']}: `{result['command']}`, {wall / 60:.1f} min, "
        f"pytest: {result['pytest_summary']}",
        "",
        "| property | cases |",
        "|---|---:|",
        *(f"| {name} | {n:,} |" for name, n in sorted(counts.items())),
        f"| **total** | **{result['total_cases']:,}** |",
        "",
        f"failures: {', '.join(failures) if failures else 'none'}",
    ]
    (args.output / "fuzz_campaign.md").write_text("\n".join(lines) + "\n")
    (args.output / "fuzz_campaign.log").write_text(output[-20000:])  # pytest's report, for the failures
    print("\n".join(lines))
    if done.returncode:
        print(output[-6000:], file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
