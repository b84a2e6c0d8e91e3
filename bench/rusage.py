#!/usr/bin/python3
"""rusage.py FILE CMD...: runs CMD, then writes its user and system CPU
seconds to FILE ("USER SYS"); exits with CMD's status."""
import resource
import subprocess
import sys

rc = subprocess.call(sys.argv[2:])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    f.write(f"{ru.ru_utime:.3f} {ru.ru_stime:.3f}\n")
sys.exit(rc)
