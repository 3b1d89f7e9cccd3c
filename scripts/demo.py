"""Run by scripts/demo: retag a multi-platform image on a throwaway registry, no pulling."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test harness starts the real registry

from regshift import Client, ClientOptions  # noqa: E402
from regshift.reference import parse_reference  # noqa: E402
from regshift.sample import push_sample, random_index  # noqa: E402

from harness.registry import RegistryServer  # noqa: E402


def regshift(*args: str) -> str:
    cmd = [sys.executable, "-m", "regshift", *args]
    print(f"$ regshift {shlex.join(args)}", flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    print(out.rstrip() + "\n", flush=True)
    return out.strip()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="regshift-demo-") as tmp:
        os.environ["REGSHIFT_CACHE_DIR"] = str(Path(tmp) / "cache")
        registry = RegistryServer(Path(tmp) / "registry")
        registry.start()
        try:
            run(registry)
        finally:
            registry.stop()


def run(registry: RegistryServer) -> None:
    ref = parse_reference(f"{registry.host}/demo/app:1.4.2")
    sample = random_index(seed=42, platforms=("linux/amd64", "linux/arm64/v8"), layer_size=4 << 20)
    with Client(ClientOptions(cache_dir=None)) as client:
        push_sample(client, ref, sample)
    layer_bytes = sum(len(b) for image in sample.images for b in image.blobs)
    print(f"registry {registry.host}: pushed {ref} (2 platforms, {layer_bytes:,} blob bytes)\n")

    before = regshift("digest", str(ref))
    registry.mark()
    regshift("tag", str(ref), "stable", "1.4", "latest")
    during = registry.requests()
    after = regshift("digest", f"{registry.host}/demo/app:stable")
    regshift("ls", f"{registry.host}/demo/app")

    print("requests the registry saw during `regshift tag`:")
    for req in during:
        print(f"  {req.method:<4} {req.path[:90]}  -> {req.status} ({req.bytes_sent} bytes sent)")
    if any("?tag=" in r.path for r in during):
        print("  (the PUT by digest with ?tag= is the one-time probe for the OCI multi-tag push;")
        print(
            "   this registry ignored it, so each tag got its own PUT; later runs skip the probe)"
        )
    blob_requests = [r for r in during if "/blobs/" in r.path]
    moved = sum(r.bytes_sent for r in during)
    print()
    print(f"digest before: {before}")
    print(f"digest after:  {after}  ({'unchanged' if before == after else 'CHANGED'})")
    print(
        f"blob requests: {len(blob_requests)}; bytes the registry sent: {moved:,} "
        f"of {layer_bytes:,} blob bytes in the image"
    )
    if before != after or blob_requests:
        sys.exit("demo failed: the digest changed or blobs moved")


if __name__ == "__main__":
    main()
