"""Where corral keeps things. On a real host the prefix is "/"; the sandbox points it at its own directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    """Every filesystem location the supervisor uses, derived from one prefix."""

    prefix: Path = Path("/")
    cmdline_file: Path = Path("/proc/cmdline")

    @property
    def run_dir(self) -> Path:
        return self.prefix / "run" / "corral"

    @property
    def control_socket(self) -> Path:
        return self.run_dir / "control.sock"

    @property
    def state_dir(self) -> Path:
        return self.prefix / "var" / "lib" / "corral"

    @property
    def config_dir(self) -> Path:
        """Holds cloud-config.yml, cloud-config.d/*.yml and the 0600 secrets file."""
        return self.state_dir / "conf"

    @property
    def image_config_dir(self) -> Path:
        """The OS image's own defaults (``*.yml``), merged over the shipped ones; part of the image."""
        return self.prefix / "usr" / "share" / "corral" / "cloud-config.d"

    @property
    def units_dir(self) -> Path:
        """The user's own unit files (selected with services_include), searched before shipped ones."""
        return self.state_dir / "units"

    @property
    def fetched_units_dir(self) -> Path:
        """The last good copies of the unit files ``services_include`` names by URL (units/fetch.py)."""
        return self.state_dir / "units-fetched"

    @property
    def log_dir(self) -> Path:
        return self.prefix / "var" / "log" / "corral"

    def under(self, absolute: str) -> Path:
        """Map an absolute path such as "/proc" into the prefix."""
        return self.prefix / absolute.lstrip("/")

    @classmethod
    def sandbox(cls, directory: Path) -> Paths:
        return cls(prefix=directory, cmdline_file=directory / "cmdline")
