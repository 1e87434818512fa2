"""Prints where a jobs/test.sh run spent its time, from the JUnit XML reports it kept.

    test_times.py target/test-times

target/test-times/<NN-leg>/ holds each leg's surefire and failsafe reports (TEST-*.xml) and the files
`name` and `wall` (the leg's wall seconds); jobs/test.sh writes them. Prints each leg's wall time, the time
its test classes took, and the slowest 15 test classes of the whole run with their slowest case.
"""
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

SLOWEST = 15


def classes(leg_dir):
    """[(seconds, tests, class name, (slowest case seconds, case name))] of one leg's reports."""
    found = []
    for report in sorted(leg_dir.glob("TEST-*.xml")):
        suite = ElementTree.parse(report).getroot()
        cases = [(float(c.get("time") or 0), c.get("name")) for c in suite.findall("testcase")]
        found.append((float(suite.get("time") or 0), int(suite.get("tests") or 0),
                      suite.get("name").rsplit(".", 1)[-1], max(cases, default=(0.0, "-"))))
    return found


def main(root):
    legs = sorted(p for p in root.iterdir() if p.is_dir())
    every = []
    print(f"{'leg':<34} {'wall s':>7} {'in tests s':>10} {'classes':>7}")
    for leg in legs:
        found = classes(leg)
        wall = (leg / "wall").read_text().strip() if (leg / "wall").exists() else "-"
        name = (leg / "name").read_text().strip() if (leg / "name").exists() else leg.name
        print(f"{name:<34} {wall:>7} {sum(c[0] for c in found):>10.0f} {len(found):>7}")
        every += [(c, name) for c in found]
    print()
    print(f"slowest {SLOWEST} test classes")
    print(f"{'seconds':>7} {'tests':>5}  {'class':<28} {'leg':<30} slowest case")
    for (seconds, tests, name, (case_s, case)), leg in sorted(every, key=lambda e: -e[0][0])[:SLOWEST]:
        print(f"{seconds:>7.1f} {tests:>5}  {name:<28} {leg:<30} {case_s:.1f} s {case.split('(')[0]}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
