"""Counts from pytest's JUnit XML, for scripts/test.sh's summary of the runs on each TorchX.

    python scripts/junit_counts.py LABEL FILE     -> "LABEL: N passed, N failed, N skipped"
    python scripts/junit_counts.py --total FILE... -> "N passed, N failed, N skipped" (all files)
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def counts(path: str) -> tuple[int, int, int]:
    """(passed, failed, skipped) of one JUnit XML file; errors count as failed."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = failed = skipped = 0
    for suite in suites:
        tests += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return tests - failed - skipped, failed, skipped


def line(passed: int, failed: int, skipped: int) -> str:
    return f"{passed} passed, {failed} failed, {skipped} skipped"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--total"]:
        total = [0, 0, 0]
        for path in argv[1:]:
            for i, n in enumerate(counts(path)):
                total[i] += n
        print(line(*total))
        return 0
    label, path = argv
    print(f"{label}: {line(*counts(path))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
