"""Peak resident memory of this process, as the run report gives it.

Linux keeps `ru_maxrss` across fork and exec, so a loader started by a large
process would report its parent's peak; the memory map's own high-water mark
(VmHWM) starts afresh with the process. Other systems fall back to ru_maxrss.
"""

from __future__ import annotations

import resource
import sys


def peak_rss_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
