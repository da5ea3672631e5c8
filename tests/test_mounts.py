from supervisor.mountinfo import mounted_targets
from supervisor.mounts import cgroup_mounts

FS_V2 = "nodev\tsysfs\nnodev\tcgroup\nnodev\tcgroup2\n"
FS_V1 = "nodev\tsysfs\nnodev\tcgroup\n"
CGROUPS = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\nmemory\t3\t1\t1\nrdma\t0\t1\t0\n"


def test_cgroup2_preferred() -> None:
    specs = cgroup_mounts(FS_V2, CGROUPS)
    assert [(s.fstype, s.target) for s in specs] == [("cgroup2", "/sys/fs/cgroup")]


def test_cgroup_v1_fallback_mounts_enabled_controllers() -> None:
    specs = cgroup_mounts(FS_V1, CGROUPS)
    assert [(s.fstype, s.target, s.data) for s in specs] == [
        ("tmpfs", "/sys/fs/cgroup", "mode=0755"),
        ("cgroup", "/sys/fs/cgroup/cpu", "cpu"),
        ("cgroup", "/sys/fs/cgroup/memory", "memory"),
    ]


def test_mountinfo_parsing() -> None:
    info = "22 1 0:21 / /proc rw - proc proc rw\n23 1 0:5 / /with\\040space rw - tmpfs t rw\n"
    assert mounted_targets(info) == {"/proc", "/with space"}
