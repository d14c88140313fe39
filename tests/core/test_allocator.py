"""tinydl.keep_freed_memory: after it, an array as large as one just freed is written without page faults (in a
child process: the setting is for the whole process). Without it, glibc returns such a block (64 MiB, above its
largest automatic mmap threshold of 32 MiB) to the system and the next one faults in every page."""
import subprocess
import sys

import pytest

CHILD = """
import resource, sys
import numpy as np
import tinydl
np._core.multiarray._set_madvise_hugepage(False)   # count 4 KiB pages, not huge ones
applied = tinydl.keep_freed_memory() if sys.argv[1] == "keep" else None
faults = []
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.empty(16 * 2**20, np.float32)   # 64 MiB
    block.fill(1.0)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del block
print(applied, faults[-1])
"""


def faults_of_the_third_block(mode: str) -> tuple[str, int]:
    result = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    applied, faults = result.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_reused_without_page_faults():
    applied, kept = faults_of_the_third_block("keep")
    if applied != "True":
        pytest.skip("no glibc mallopt in this C library")
    _, default = faults_of_the_third_block("default")
    assert default > 10_000   # 16,384 pages of 4 KiB
    assert kept < 100
