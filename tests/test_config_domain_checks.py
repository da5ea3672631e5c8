"""Units, network and kernel module errors reject a config whole, through the store's domain checks."""

from __future__ import annotations

from pathlib import Path

from supervisor.config.store import ConfigStore
from supervisor.domain_checks import domain_checks
from supervisor.paths import Paths

GOOD = """#cloud-config
hostname: good
corral:
  network:
    interfaces:
      eth0:
        address: 10.1.2.3/24
  services:
    web:
      image: corral/busybox:latest
      command: httpd -f
"""


def store(tmp_path: Path, text: str) -> ConfigStore:
    paths = Paths.sandbox(tmp_path)
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    (paths.config_dir / "cloud-config.yml").write_text(text)
    return ConfigStore(paths, cmdline_text="", checks=domain_checks(paths))


def test_good_config_passes_domain_checks(tmp_path: Path) -> None:
    s = store(tmp_path, GOOD)
    result = s.load()
    assert result.errors == [] and s.current["hostname"] == "good"


def test_bad_address_keeps_the_network_on_the_last_good_config(tmp_path: Path) -> None:
    s = store(tmp_path, GOOD)
    s.load()
    (tmp_path / "var/lib/corral/conf/cloud-config.yml").write_text(
        GOOD.replace("10.1.2.3/24", "10.1.2.300/24").replace("hostname: good", "hostname: changed")
    )
    network = s.current["corral"]["network"]
    errors, changed = s.reload()
    assert errors and changed == ["hostname"]
    error = errors[0]
    assert error.key.startswith("corral.network.interfaces.eth0.address")
    assert error.file.endswith("cloud-config.yml")
    assert s.current["corral"]["network"] == network  # the network stays on the last good config
    assert s.salvaged == {"corral.network": "the last good config"}
    assert s.current["hostname"] == "changed"  # the rest is applied


def test_bad_unit_rejects_the_whole_config(tmp_path: Path) -> None:
    s = store(tmp_path, GOOD)
    s.load()
    (tmp_path / "var/lib/corral/conf/cloud-config.yml").write_text(
        GOOD.replace("command: httpd -f", "command: httpd -f\n      colour: blue")
    )
    errors, _ = s.reload()
    assert any("web" in str(e) and "colour" in str(e) for e in errors), errors
    assert "colour" not in str(s.current)


def test_a_module_entry_that_would_be_a_modprobe_option_rejects_the_whole_config(tmp_path: Path) -> None:
    s = store(tmp_path, GOOD.replace("corral:\n", "corral:\n  modules: [loop, nbd nbds_max=4]\n"))
    assert s.load().errors == []
    assert s.current["corral"]["modules"] == ["loop", "nbd nbds_max=4"]
    errors = s.set("corral.modules", "[loop, 'nbd --config=/etc/evil.conf']")
    assert [(e.key, e.message) for e in errors] == [
        ("corral.modules[1]", "'--config=/etc/evil.conf' is not a module parameter (expected name or "
                              "name=value, the name of letters, digits, '_', '-', '.'; not starting with "
                              "'-')")]
    assert s.current["corral"]["modules"] == ["loop", "nbd nbds_max=4"]  # nothing changed
    assert s.set("corral.modules", "['-r loop']")[0].message.startswith("'-r' is not a module name")
