#!/usr/bin/env python3
"""The share of one process's CPU samples whose call stack holds a frame matching a pattern.

    perf_share.py PERF_DATA PID REGEX

Reads `perf script` of a `perf record --call-graph dwarf` file; prints the process's samples,
those with a matching frame, the share, and how many samples unwound to their thread's start
or to the tokio runtime that polls every task (a share is only as good as the unwinding: a bus
frame sits between the leaf and the runtime's poll of its task). benches/fleet-bus.sh uses it for the bus's direct
share of a shard's CPU: a ratio within one run, so the machine's other load, which moves a run's
CPU seconds by several per cent, hardly moves it.
"""
import re
import subprocess
import sys

data, pid, pattern = sys.argv[1], sys.argv[2], re.compile(sys.argv[3])
text = subprocess.run(['perf', 'script', '-i', data, '-F', 'pid,tid,ip,sym'],
                      capture_output=True, text=True, check=True).stdout
total = hits = rooted = 0
for sample in text.split('\n\n'):
    head = sample.lstrip().split('/', 1)[0]
    if head != pid:
        continue
    total += 1
    hits += bool(pattern.search(sample))
    rooted += bool(re.search(r'start_thread|__libc_start_main|_start\b|clone3|tokio::runtime::', sample))
if total == 0:
    sys.exit(f'no samples of process {pid} in {data}')
print(f'{hits} of {total} samples ({100 * hits / total:.2f} %) have a frame matching {pattern.pattern}; '
      f'{100 * rooted / total:.0f} % unwound to the runtime or their thread start')
