"""The peak memory a run reports is its own, not the peak of whatever started it."""

import subprocess
import sys

from loader.memory import peak_rss_bytes


def test_peak_is_this_process_not_its_parent():
    ballast = b"x" * (400 << 20)  # the parent is large when it starts the child
    child = subprocess.run(
        [sys.executable, "-c", "from loader.memory import peak_rss_bytes as p; print(p())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert peak_rss_bytes() >= len(ballast)
    assert int(child.stdout) < 150 << 20  # ru_maxrss would say >= 400 MB here
