"""Known vulnerabilities of the pinned dependencies, from PyPI's JSON API: the fallback for
machines where ``make audit`` (pip-audit) cannot reach its data sources.

    .venv/bin/python scripts/audit_lock.py [--lock requirements.lock]

PyPI lists a project's advisories for its newest release at ``/pypi/<name>/json``; pip-audit
asks the per-release endpoint (``/pypi/<name>/<version>/json``) and OSV, which this machine
cannot reach (404 / no DNS). So a pin at the newest release is checked here and an older pin is
reported as not checked, never as clean. Exit status 1 when a vulnerability is found, 0
otherwise (also when some pins could not be checked).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;]+)")


def pins(lock: Path) -> list[tuple[str, str]]:
    return [(m[1], m[2]) for line in lock.read_text().splitlines() if (m := PIN.match(line))]


def project(name: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=20) as answer:
            return dict(json.load(answer))
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=Path("requirements.lock"))
    args = parser.parse_args(argv)
    pinned = pins(args.lock)
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(project, [name for name, _ in pinned]))
    checked, older, unreachable, vulnerable = [], [], [], []
    for (name, version), data in zip(pinned, found, strict=True):
        if data is None:
            unreachable.append(name)
        elif data["info"]["version"] != version:
            older.append(f"{name} {version} (newest {data['info']['version']})")
        else:
            checked.append(name)
            for advisory in data.get("vulnerabilities") or []:
                vulnerable.append(
                    f"{name} {version}: {advisory.get('id')} {advisory.get('fixed_in')}"
                )
    print(
        f"{len(pinned)} pins in {args.lock}: {len(checked)} checked (the newest release), "
        f"{len(vulnerable)} known vulnerabilities among them"
    )
    for line in vulnerable:
        print(f"  VULNERABLE {line}")
    if older:
        print(f"not checked here, older than the newest release ({len(older)}): {', '.join(older)}")
    if unreachable:
        print(f"PyPI did not answer for ({len(unreachable)}): {', '.join(unreachable)}")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
