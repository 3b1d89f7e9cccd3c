"""Fallback for machines without GNU time: ``maxrss.py OUT CMD...``.

Runs CMD, then writes the peak RSS (KiB) of CMD and the descendants it waited for to OUT,
and exits with CMD's status.
"""

import resource
import subprocess
import sys


def main() -> int:
    out, cmd = sys.argv[1], sys.argv[2:]
    code = subprocess.run(cmd).returncode
    with open(out, "w") as f:
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=f)
    return code


if __name__ == "__main__":
    sys.exit(main())
