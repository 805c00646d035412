"""Print mutmut's own counts (``mutmut export-cicd-stats``) and the score they give.

    python scripts/mutation_score.py [mutants/mutmut-cicd-stats.json]

Run by ``tox -e mutation`` after ``mutmut run``; the score is killed / total, where the
total also counts mutants that no selected test reaches ("no_tests").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(path: str = "mutants/mutmut-cicd-stats.json") -> None:
    stats = json.loads(Path(path).read_text())
    print("mutmut:", ", ".join(f"{k} {v}" for k, v in stats.items() if v or k == "survived"))
    total = stats["total"]
    print(f"score: {stats['killed']} killed of {total} mutants "
          f"({100 * stats['killed'] / total:.1f} %)" if total else "score: no mutants")


if __name__ == "__main__":
    main(*sys.argv[1:])
