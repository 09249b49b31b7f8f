#!/usr/bin/env python3
# Runs a command and writes its CPU time and peak memory as JSON to OUT once it has exited. Node
# cannot wait4() a child, and sampling /proc/<pid>/stat would miss what the process does last
# (the unmount's flush), so bench/run.mjs starts the tools through this.
#   python3 bench/rusage.py OUT.json command [args...]
import json
import os
import signal
import sys

out, cmd = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
# The bench signals us (it knows our pid): pass it on.
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda n, _frame: os.kill(pid, n))
_, status, usage = os.wait4(pid, 0)
with open(out, "w") as f:
    json.dump({"userS": usage.ru_utime, "systemS": usage.ru_stime, "maxRssKiB": usage.ru_maxrss}, f)
code = os.waitstatus_to_exitcode(status)
# At once: the interpreter's own teardown took 10-13 ms, which the bench's timed writes (until the
# tool has exited) would count.
os._exit(code if code >= 0 else 128 - code)
