"""The Python floor of a retag: the interpreter, httpx, one GET and one PUT, nothing else.

    httpx_retag.py URL NEW_TAG REPO:TAG

What any command line built on httpx pays before its own code runs: interpreter start-up,
importing httpx and httpcore, one connection, the two requests. No argument parser, no
authentication, no checks beyond the HTTP status. bench.py times it beside ``regshift tag``,
so the part of regshift's time that is regshift's own shows in the same run.

httpx imports its own command line (click, rich, pygments) whenever those are installed, as
they are in regshift's virtualenv; a program using httpx alone would not have them, so a
placeholder keeps them out here, as regshift's entry point does.
"""

from __future__ import annotations

import sys
import types

_cli = types.ModuleType("httpx._main")
_cli.main = lambda: None  # type: ignore[attr-defined]
sys.modules["httpx._main"] = _cli

import httpx  # noqa: E402

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def main(url: str, new_tag: str, source: str) -> None:
    repo, tag = source.rsplit(":", 1)
    # verify=False: the URL is plain HTTP, so no certificate bundle needs loading (regshift
    # loads one only when it first speaks TLS).
    with httpx.Client(base_url=url, verify=False) as client:
        got = client.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
        got.raise_for_status()
        put = client.put(
            f"/v2/{repo}/manifests/{new_tag}",
            content=got.content,
            headers={"Content-Type": got.headers["content-type"]},
        )
        put.raise_for_status()


if __name__ == "__main__":
    main(*sys.argv[1:4])
