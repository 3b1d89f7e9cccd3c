"""Memory does not grow with the layer: a 200 MiB file is tarred, compressed and flattened
in a fresh interpreter whose peak RSS (``ru_maxrss``) is checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

_SCRIPT = r"""
import json, os, resource, sys
from pathlib import Path
from regshift.layerfs import flatten_layers, layer_from_path
from regshift.layout import Layout
from regshift.manifests import Descriptor

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

root = Path(sys.argv[1])
tree = root / "tree"
tree.mkdir()
with (tree / "big").open("wb") as out:  # incompressible: the blob is as big as the file
    for _ in range(200):
        out.write(os.urandom(1 << 20))
layout = Layout(root / "oci", create=True)
before = peak()
with layer_from_path(tree) as layer:
    with layer.path.open("rb") as handle:
        layout.write_blob(layer.digest, layer.size, iter(lambda: handle.read(1 << 20), b""))
    desc = Descriptor(layer.media_type, layer.digest, layer.size)
after_append = peak()
with flatten_layers(lambda d: layout.open_blob(d.digest), [desc]) as flat:
    size = flat.size
print(json.dumps({"before": before, "append": after_append, "flatten": peak(), "size": size}))
"""


@pytest.mark.slow
def test_peak_memory_does_not_follow_layer_size(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["size"] > 200 << 20  # the layer really is that big
    mib = 1 << 20
    assert got["append"] - got["before"] < 40 * mib, got
    assert got["flatten"] - got["before"] < 40 * mib, got
