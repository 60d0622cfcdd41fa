"""What a loaded probes file keeps in memory: its own size, not its parser's (issue 24: RSS at
10,000 probes)."""

from __future__ import annotations

import subprocess
import sys

# Run in a fresh interpreter: the figure is the allocator's, and an earlier test's heap would move it.
MEASURE = """
import gc, sys
from probe_agent.core.yamlload import load_yaml

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

text = "probes:\\n" + "".join(
    f'  - {{name: p{i}, type: http, url: "http://127.0.0.1:8080/p/{i}", interval: 10s, timeout: 0.5s}}\\n'
    for i in range(10000)
)
gc.collect()
before = rss()
document = load_yaml(text)
gc.collect()
kept = rss() - before
seen, size = set(), 0
stack = [document]
while stack:
    item = stack.pop()
    if id(item) in seen:
        continue
    seen.add(id(item))
    size += sys.getsizeof(item)
    if isinstance(item, dict):
        stack.extend(item.keys())
        stack.extend(item.values())
    elif isinstance(item, list):
        stack.extend(item)
print(kept, size)
"""


def test_a_loaded_probes_file_keeps_about_its_own_size() -> None:
    # The document's objects are made among the parser's nodes and marks, six times their size;
    # freed, those stayed in the process (47 MB kept for a 7.5 MB document of 10,000 probes)
    # because each block of memory still held a few of the document's objects.
    out = subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True, timeout=120, check=True)
    kept, size = map(int, out.stdout.split())
    assert kept < 4 * size, f"kept {kept / 1e6:.1f} MB of memory for a document of {size / 1e6:.1f} MB"
