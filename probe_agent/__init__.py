"""probe-agent: synthetic probes and health checks, exported to Prometheus."""

import os as _os
import time as _time


def _launched() -> float:
    """When this process started, on the monotonic clock: the kernel's start time (since boot, in
    clock ticks), else the first import of the package (after the interpreter's own start-up)."""
    now = _time.monotonic()
    try:
        with open("/proc/self/stat", "rb") as stat:
            # the fields after the command name, which is in parentheses and may hold spaces
            fields = stat.read(4096).rsplit(b")", 1)[1].split()  # a line of the kernel's, well under 1 kB
        started = int(fields[19]) / _os.sysconf("SC_CLK_TCK")  # field 22: starttime
        elapsed = _time.clock_gettime(_time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return now
    return now - elapsed if 0 <= elapsed < 60 else now


# the daemon's first runs are planned from it (probe_agent.runtime.scheduler.STARTUP_WINDOW)
LAUNCHED = _launched()

__version__ = "0.2.0"
# what every HTTP request the agent makes to a target says it is
USER_AGENT = f"probe-agent/{__version__}"
