"""The peak memory a run reports is its own, not the peak of whatever started it."""

import subprocess
import sys

from loader.core.memory import peak_rss_bytes


def test_peak_is_this_process_not_its_parent():
    # The parent is large when it starts the child. The child's own peak is its
    # imports (100-170 MB, more on a fresh install, whose libraries are all cached
    # and so mapped in whole): far below the ballast that ru_maxrss would report.
    ballast = b"x" * (1 << 30)
    child = subprocess.run(
        [sys.executable, "-c", "from loader.core.memory import peak_rss_bytes as p; print(p())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert peak_rss_bytes() >= len(ballast)
    assert int(child.stdout) < 512 << 20  # ru_maxrss would say >= 1 GiB here
