"""The boot bench's baseline (image/baseline/init) runs the system dockerd as corral runs it: the same
flags and the same bridge, or the comparison is not of the same work."""

from __future__ import annotations

import ipaddress
import re
import shlex
from pathlib import Path

from supervisor.paths import Paths
from units.system_dockerd import DockerdLayout

BASELINE = Path(__file__).resolve().parent.parent / "image" / "baseline" / "init"


def _dockerd_command(text: str) -> list[str]:
    joined = text.replace("\\\n", " ")
    line = next(ln for ln in joined.splitlines() if re.search(r"\bdockerd --config-file", ln))
    words = shlex.split(line.split("dockerd", 1)[1].split(">", 1)[0])
    return ["dockerd", *words]


def test_baseline_runs_dockerd_with_corrals_flags_and_bridge() -> None:
    text = BASELINE.read_text().replace("$SOCK", "/run/system-docker.sock")
    baseline = _dockerd_command(text)
    layout = DockerdLayout.system(Paths(), sandbox=False)
    corral = [Path(layout.argv()[0]).name, *layout.argv()[1:]]

    def flags(argv: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i, word in enumerate(argv[1:], 1):
            if word.startswith("--"):
                key, eq, value = word.partition("=")
                following = argv[i + 1] if i + 1 < len(argv) else "--"
                out[key] = value if eq else ("" if following.startswith("--") else following)
        return out

    ours, theirs = flags(corral), flags(baseline)
    ours.pop("--config-file")
    theirs.pop("--config-file")  # each its own (both "{}")
    assert theirs == ours
    assert layout.bridge is not None and layout.bridge_cidr is not None
    address = ipaddress.ip_interface(layout.bridge_cidr)
    assert f"ip link add {layout.bridge} type bridge" in text
    assert f"ip addr add {address.with_prefixlen} dev {layout.bridge}" in text
