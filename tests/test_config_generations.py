"""The user's config as generations (supervisor/config/generations.py): a commit switches both files in
one rename, a crash at any step leaves one whole generation in force, ``recover`` adopts the old layout
and hand edits and removes what a crash left."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from supervisor.config import generations as gen_mod
from supervisor.config.generations import CLOUD_CONFIG, PRIVATE, Generations

OLD = {CLOUD_CONFIG: b"hostname: old\n", PRIVATE: b"corral: {password: old}\n"}
NEW = {CLOUD_CONFIG: b"hostname: new\n", PRIVATE: b"corral: {password: new}\n"}


def read(conf: Path) -> dict[str, bytes | None]:
    """What a reader sees: both files from the generation in force, resolved once."""
    where = Generations(conf).read_dir()
    return {name: (where / name).read_bytes() if (where / name).exists() else None
            for name in (CLOUD_CONFIG, PRIVATE)}


def listing(conf: Path) -> list[str]:
    return sorted(str(p.relative_to(conf)) for p in conf.rglob("*"))


def test_commit_lays_out_a_root_only_generation_behind_stable_names(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    gens = Generations(conf)
    gens.commit(OLD)
    assert read(conf) == OLD
    assert (conf / CLOUD_CONFIG).read_bytes() == OLD[CLOUD_CONFIG]  # the stable names lead there
    assert os.readlink(conf / "current") == ".gen/1"
    assert stat.S_IMODE((conf / ".gen").stat().st_mode) == 0o700
    for name in (CLOUD_CONFIG, PRIVATE):
        assert stat.S_IMODE((conf / name).stat().st_mode) == 0o600
    gens.commit({CLOUD_CONFIG: NEW[CLOUD_CONFIG]})  # no secrets left: no private.yml
    assert read(conf) == {CLOUD_CONFIG: NEW[CLOUD_CONFIG], PRIVATE: None}
    assert listing(conf) == [".gen", ".gen/2", ".gen/2/cloud-config.yml", CLOUD_CONFIG, "current", PRIVATE]


def test_the_old_layout_is_adopted_whole_and_again_after_a_crash(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / CLOUD_CONFIG).write_bytes(OLD[CLOUD_CONFIG])
    (conf / CLOUD_CONFIG).chmod(0o644)
    (conf / PRIVATE).write_bytes(OLD[PRIVATE])
    (conf / ".cloud-config.yml.x1y2.tmp").write_bytes(b"x" * 100_000)  # a killed write_atomic's leftover
    (conf / "cloud-config.d").mkdir()
    recovered = Generations(conf).recover()
    assert recovered.adopted == (CLOUD_CONFIG, PRIVATE)
    assert ".cloud-config.yml.x1y2.tmp" in recovered.removed
    assert read(conf) == OLD
    assert (conf / CLOUD_CONFIG).is_symlink() and (conf / PRIVATE).is_symlink()
    assert stat.S_IMODE((conf / CLOUD_CONFIG).stat().st_mode) == 0o600
    assert not list(conf.glob(".*.tmp"))
    # a crash after the switch but before the links: cloud-config.yml still a regular file
    os.unlink(conf / CLOUD_CONFIG)
    (conf / CLOUD_CONFIG).write_bytes(OLD[CLOUD_CONFIG])
    Generations(conf).recover()
    assert read(conf) == OLD
    assert Generations(conf).recover().adopted == ()  # nothing more to do


def test_a_hand_edit_replacing_the_link_is_adopted_with_the_generations_secrets(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    Generations(conf).commit(OLD)
    os.unlink(conf / CLOUD_CONFIG)  # an editor saving by rename
    (conf / CLOUD_CONFIG).write_bytes(b"hostname: edited\n")
    assert Generations(conf).recover().adopted == (CLOUD_CONFIG,)
    assert read(conf) == {CLOUD_CONFIG: b"hostname: edited\n", PRIVATE: OLD[PRIVATE]}


def test_what_a_crash_left_is_removed_and_the_generation_in_force_kept(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    Generations(conf).commit(OLD)
    (conf / ".gen" / "7").mkdir()  # made, never switched in
    (conf / ".gen" / "7" / CLOUD_CONFIG).write_bytes(b"hostname: never\n")
    (conf / ".gen" / ".8.tmp").mkdir()  # half made
    os.symlink(".gen/7", conf / ".current.tmp")  # a link never renamed
    recovered = Generations(conf).recover()
    assert set(recovered.removed) >= {".current.tmp", ".gen/7", ".gen/.8.tmp"}
    assert read(conf) == OLD
    assert listing(conf) == [".gen", ".gen/1", ".gen/1/cloud-config.yml", ".gen/1/private.yml", CLOUD_CONFIG,
                             "current", PRIVATE]


class Crash(BaseException):
    """Stands for SIGKILL: nothing after it runs (not even ``except Exception``)."""


@pytest.mark.parametrize("step", range(12))
def test_a_commit_killed_at_any_step_leaves_one_whole_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: int
) -> None:
    conf = tmp_path / "conf"
    Generations(conf).commit(OLD)
    calls = 0

    def crashing(real: object) -> object:
        def call(*args: object, **kwargs: object) -> object:
            nonlocal calls
            calls += 1
            if calls > step:
                raise Crash
            return real(*args, **kwargs)  # type: ignore[operator]
        return call

    for name in ("rename", "replace", "symlink", "fsync"):
        monkeypatch.setattr(os, name, crashing(getattr(os, name)))
    monkeypatch.setattr(gen_mod, "write_atomic", crashing(gen_mod.write_atomic))
    try:
        Generations(conf).commit(NEW)
        finished = True
    except Crash:
        finished = False
    monkeypatch.undo()
    seen = read(conf)
    assert seen in (OLD, NEW), seen
    Generations(conf).recover()
    assert read(conf) == seen  # recovery keeps what was in force
    assert not list(conf.glob(".*.tmp")) and not list((conf / ".gen").glob(".*"))
    assert len(list((conf / ".gen").iterdir())) == 1
    if finished:
        assert seen == NEW
