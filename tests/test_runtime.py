"""hybridrec.runtime.tune_allocator: glibc's malloc thresholds, applied or cleanly skipped."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hybridrec.runtime import tune_allocator

PROBE = """
import resource, sys, torch
from hybridrec.runtime import tune_allocator
tuned = tune_allocator() if sys.argv[1] == "tuned" else False
x = torch.randn(1024, 12500)  # 50 MB: above the 32 MB most glibc keeps in its heap
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(60):
    y = x.clone() * 2.0
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(tuned, after - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tuned_allocator_reuses_freed_blocks_instead_of_faulting_pages() -> None:
    faults = {}
    for mode in ("plain", "tuned"):
        done = subprocess.run(
            [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
        )
        tuned, count = done.stdout.split()
        faults[mode] = int(count)
        assert tuned == str(mode == "tuned")
    # every fresh 50 MB block faults its ~12,000 pages; reused heap memory only the first time
    # (a margin of 2x: the kernel may reclaim idle pages of a retained block now and then)
    assert faults["tuned"] < faults["plain"] / 2


def test_switched_off_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRIDREC_MALLOC_TUNING", "0")
    assert tune_allocator() is False
