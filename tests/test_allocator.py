"""The allocator settings: training's heap keeps a freed large block, prediction's hands it back."""

import subprocess
import sys

import pytest

PROBE = """
import os, numpy as np
import lstmkit
from lstmkit.allocator import mapped_large_blocks

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

def kept_after_free():
    base = rss_mb()
    block = np.ones(300 * 2**20 // 8)  # 300 MB, touched
    del block
    return rss_mb() - base

print(round(kept_after_free()))
with mapped_large_blocks():
    print(round(kept_after_free()))
print(round(kept_after_free()))
"""


def _kept(env_tune):
    env = {"PATH": "/usr/bin:/bin", "LSTMKIT_TUNE_MALLOC": env_tune}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    return [int(x) for x in out.stdout.split()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and /proc are Linux's")
def test_prediction_hands_large_blocks_back_and_training_keeps_them():
    tuned_before, predicting, tuned_after = _kept("1")
    assert tuned_before > 250  # training's setting: the freed block stays in the heap for the next step
    assert predicting < 50  # inside mapped_large_blocks it was mmapped, and unmapped when freed
    assert tuned_after < 50  # the heap's free block is reused, not grown again
    assert max(_kept("0")) < 50  # LSTMKIT_TUNE_MALLOC=0: glibc's defaults throughout
