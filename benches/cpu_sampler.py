#!/usr/bin/env python3
"""Samples the CPU time (user + system) of processes every 50 ms until the first one exits.

    cpu_sampler.py OUT.csv PID [PID ...]

Writes `wall_s,cpu_s_of_pid1,cpu_s_of_pid2,...` rows (wall clock in seconds since the epoch), so a
bench can tell the CPU a process spent inside one window of its run (for example from the first to
the last connect) from what it spent on setup, the hold and the shutdown around it.
"""
import os
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        # Fields after the command name (which may hold spaces): utime is the 14th, stime the 15th.
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TICK


def main():
    out, pids = sys.argv[1], sys.argv[2:]
    with open(out, "w") as f:
        f.write("wall_s," + ",".join(f"cpu_{p}" for p in pids) + "\n")
        while True:
            try:
                row = [cpu(p) for p in pids]
            except (FileNotFoundError, ProcessLookupError, IndexError):
                return
            f.write(f"{time.time():.3f}," + ",".join(f"{c:.2f}" for c in row) + "\n")
            f.flush()
            time.sleep(0.05)


if __name__ == "__main__":
    main()
