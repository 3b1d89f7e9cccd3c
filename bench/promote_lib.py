"""``promote_lib.py NEW_TAG REF...``: tag every REF with NEW_TAG in one process, one Client.

The library row of the promote-50 case: ``regshift.tag()`` called sequentially on one
Client (the CLI's ``tag --from-file`` is the main row). Prints a JSON line: the tag loop's
own time, the import time, the request count.
"""

import time

STARTED = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402

import regshift  # noqa: E402


def main() -> int:
    imported = time.perf_counter()
    new_tag, refs = sys.argv[1], sys.argv[2:]
    with regshift.Client() as client:
        for ref in refs:
            regshift.tag(client, ref, [new_tag])
        requests = client.requests
    done = time.perf_counter()
    doc = {
        "importSeconds": round(imported - STARTED, 4),
        "loopSeconds": round(done - imported, 4),
        "clientRequests": requests,
        "images": len(refs),
    }
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
