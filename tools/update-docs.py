"""Regenerates the generated samples in docs/ from the committed records, each between its markers:
docs/reports.md's `bench check` output, docs/training.md's budget table and docs/costs.md's roofline table (the
commands their markers name).
The tests hold each sample equal to what its command prints now.

    python tools/update-docs.py [--data-root ../shared/datasets]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def replace_between(path: Path, start: str, end: str, body: str) -> bool:
    """The text between the line ``start`` and the line ``end`` of ``path`` replaced by ``body``; True if it changed."""
    text = path.read_text()
    new = re.sub(re.escape(start) + r"\n.*?(?=" + re.escape(end) + ")", lambda _: start + "\n" + body, text,
                 count=1, flags=re.S)
    if new == text and start not in text:
        sys.exit(f"{path}: marker {start!r} not found")
    path.write_text(new)
    return new != text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "datasets"))
    args = parser.parse_args()
    check = subprocess.run(["bench", "check", "--data-root", args.data_root], cwd=ROOT, capture_output=True,
                           text=True)
    if check.returncode not in (0, 1):
        sys.exit(check.stderr or check.stdout)
    changed = replace_between(ROOT / "docs" / "reports.md",
                              "<!-- bench check sample: bench check --data-root ../shared/datasets -->",
                              "<!-- end bench check sample -->", "```\n" + check.stdout + "```\n")
    budget = subprocess.run([sys.executable, "-m", "bench.plan", "paper", "H100"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    changed |= replace_between(ROOT / "docs" / "training.md", "<!-- budget table: python -m bench.plan paper H100 -->",
                               "<!-- end budget table -->", budget)
    roofline = subprocess.run([sys.executable, "-m", "bench.roofline"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout
    changed |= replace_between(ROOT / "docs" / "costs.md", "<!-- roofline table: python -m bench.roofline -->",
                               "<!-- end roofline table -->", roofline)
    print("docs updated" if changed else "docs already current")


if __name__ == "__main__":
    main()
