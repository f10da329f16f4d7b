"""Print the per-epoch validation curve and epoch times of the latest MLflow runs.

.venv/bin/python scripts/mlflow_last.py [N]      # the N latest runs (default 1)
"""

from __future__ import annotations

import sqlite3
import sys


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    db = sqlite3.connect("mlflow.db")
    runs = db.execute(
        "select run_uuid, name from runs order by start_time desc limit ?", (n,)
    ).fetchall()
    for run, name in runs:
        print(f"== {name} {run}")
        rows = db.execute(
            "select key, value, step from metrics where run_uuid=? order by key, step", (run,)
        ).fetchall()
        series: dict[str, list[str]] = {}
        for key, value, _ in rows:
            if key.startswith(("val/", "test/", "time/", "best/")):
                series.setdefault(key, []).append(f"{value:.4f}")
        for key, values in series.items():
            print(f"  {key:<20} {' '.join(values)}")


if __name__ == "__main__":
    main()
