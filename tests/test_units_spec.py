"""Compose service -> Docker Engine API create body, and the config hash that decides recreation."""

from __future__ import annotations

from typing import Any

from units.loader import build_units
from units.model import LABEL_HASH, LABEL_UNIT, Unit
from units.spec import config_hash, container_name, create_body, create_request
from units.unitfiles import parse_unit_text


def one(text: str, environment: dict[str, str] | None = None) -> Unit:
    raws, errors = parse_unit_text(text, "test.yml")
    units, _graph, more = build_units(raws, environment or {})
    assert [*errors, *more] == []
    assert len(units) == 1
    return next(iter(units.values()))


WEB = """
web:
  image: nginx:1.27
  entrypoint: /docker-entrypoint.sh --verbose
  command: ["nginx", "-g", "daemon off;"]
  environment:
    MODE: production
    WORKERS: 4
    PROXY:
  labels:
    com.example.team: web
    io.corral.after: db
  volumes:
    - /srv/www:/usr/share/nginx/html:ro
    - cache:/var/cache/nginx
    - /var/run/nginx
  volumes_from: [db, "container:logs:ro"]
  net: host
  pid: host
  ipc: shareable
  uts: host
  privileged: true
  read_only: true
  cap_add: [net_admin, CAP_SYS_TIME]
  cap_drop: [ALL]
  devices: [/dev/fuse, "/dev/sda:/dev/xvda:r"]
  restart: always
  user: 101
  working_dir: /srv
  tmpfs: [/tmp, "/run:size=1m,mode=755"]
  ulimits:
    nproc: 512
    nofile: {soft: 1024, hard: 4096}
  healthcheck:
    test: curl -fs http://localhost/ || exit 1
    interval: 1m30s
    timeout: 500ms
    start_period: 10s
    start_interval: 2s
    retries: 3
  logging:
    driver: json-file
    options: {max-size: 10m, max-file: 3, compress: true}
db:
  image: postgres
"""


def web() -> Unit:
    raws, errors = parse_unit_text(WEB, "test.yml")
    units, _graph, more = build_units(raws, {"PROXY": "http://p:3128"})
    assert [*errors, *more] == []
    return units["web"]


def test_create_body_maps_every_supported_key() -> None:
    body = create_body(web())
    assert body == {
        "Image": "nginx:1.27",
        "Entrypoint": ["/docker-entrypoint.sh", "--verbose"],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "Env": ["MODE=production", "PROXY=http://p:3128", "WORKERS=4"],
        "User": "101",
        "WorkingDir": "/srv",
        "Volumes": {"/var/run/nginx": {}},
        "Labels": {"com.example.team": "web", "io.corral.after": "db", LABEL_UNIT: "web"},
        "Healthcheck": {
            "Test": ["CMD-SHELL", "curl -fs http://localhost/ || exit 1"],
            "Interval": 90_000_000_000,
            "Timeout": 500_000_000,
            "StartPeriod": 10_000_000_000,
            "StartInterval": 2_000_000_000,
            "Retries": 3,
        },
        "HostConfig": {
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},  # corral owns restarts
            "Binds": ["/srv/www:/usr/share/nginx/html:ro", "cache:/var/cache/nginx"],
            "VolumesFrom": ["db", "logs:ro"],
            "NetworkMode": "host",
            "PidMode": "host",
            "IpcMode": "shareable",
            "UTSMode": "host",
            "Privileged": True,
            "ReadonlyRootfs": True,
            "CapAdd": ["CAP_SYS_TIME", "NET_ADMIN"],
            "CapDrop": ["ALL"],
            "Devices": [
                {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"},
                {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/xvda", "CgroupPermissions": "r"},
            ],
            "Tmpfs": {"/tmp": "", "/run": "size=1m,mode=755"},
            "Ulimits": [
                {"Name": "nofile", "Soft": 1024, "Hard": 4096},
                {"Name": "nproc", "Soft": 512, "Hard": 512},
            ],
            "LogConfig": {
                "Type": "json-file", "Config": {"compress": "true", "max-file": "3", "max-size": "10m"}
            },
        },
    }
    assert container_name(web()) == "web"


def test_minimal_unit_leaves_docker_defaults_alone() -> None:
    body = create_body(one("web:\n  image: nginx\n"))
    assert body == {
        "Image": "nginx",
        "Labels": {LABEL_UNIT: "web"},
        "HostConfig": {"RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}},
    }


def test_restart_policy_is_always_no_whatever_the_unit_says() -> None:
    for restart in ("always", "unless-stopped", "on-failure:3"):
        body = create_body(one(f"w:\n  image: x\n  restart: {restart}\n"))
        assert body["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}


def test_log_driver_and_log_opt_equal_the_logging_form() -> None:
    old = one("w:\n  image: x\n  log_driver: syslog\n  log_opt: {tag: w, syslog-address: 'udp://1.2.3.4:514'}\n")
    new = one(
        "w:\n  image: x\n"
        "  logging: {driver: syslog, options: {syslog-address: 'udp://1.2.3.4:514', tag: w}}\n"
    )
    assert create_body(old)["HostConfig"]["LogConfig"] == {
        "Type": "syslog", "Config": {"syslog-address": "udp://1.2.3.4:514", "tag": "w"}
    }
    assert config_hash(old) == config_hash(new)


def test_healthcheck_disable_and_list_test() -> None:
    disabled = create_body(one("w:\n  image: x\n  healthcheck: {disable: true}\n"))
    assert disabled["Healthcheck"] == {"Test": ["NONE"]}
    body = create_body(one("w:\n  image: x\n  healthcheck: {test: [CMD, pg_isready], retries: 0}\n"))
    assert body["Healthcheck"] == {"Test": ["CMD", "pg_isready"], "Retries": 0}


def test_create_request_carries_the_hash_label() -> None:
    unit = web()
    body = create_request(unit, "sha256:abc")
    assert body["Labels"][LABEL_HASH] == config_hash(unit, "sha256:abc")
    assert LABEL_HASH not in create_body(unit)["Labels"]
    assert len(body["Labels"][LABEL_HASH]) == 64


REORDERED = """
db:
  image: postgres
web:
  logging:
    options: {compress: true, max-file: 3, max-size: 10m}
    driver: json-file
  healthcheck:
    retries: 3
    start_interval: 2s
    start_period: 10s
    timeout: 500ms
    interval: 1m30s
    test: curl -fs http://localhost/ || exit 1
  ulimits:
    nofile: {hard: 4096, soft: 1024}
    nproc: 512
  tmpfs: [/tmp, "/run:size=1m,mode=755"]
  working_dir: /srv
  user: "101"
  restart: always
  devices: [/dev/fuse, "/dev/sda:/dev/xvda:r"]
  cap_drop: [ALL]
  cap_add: [CAP_SYS_TIME, NET_ADMIN]
  read_only: true
  privileged: true
  uts: host
  ipc: shareable
  pid: host
  network_mode: host
  volumes_from: [db, "container:logs:ro"]
  volumes:
    - /srv/www:/usr/share/nginx/html:ro
    - cache:/var/cache/nginx
    - /var/run/nginx
  labels:
    - io.corral.after=db
    - com.example.team=web
  environment:
    - WORKERS=4
    - PROXY
    - MODE=production
  command: nginx -g "daemon off;"
  entrypoint: [/docker-entrypoint.sh, --verbose]
  image: nginx:1.27
"""


def test_hash_is_stable_under_key_reordering_and_equivalent_forms() -> None:
    raws, _ = parse_unit_text(REORDERED, "other.yml")
    units, _, errors = build_units(raws, {"PROXY": "http://p:3128"})
    assert errors == []
    assert units["web"] == web()
    assert config_hash(units["web"], "sha256:1") == config_hash(web(), "sha256:1")
    assert config_hash(web()) == config_hash(web())  # deterministic


def changed(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def test_hash_changes_when_any_value_changes() -> None:
    base = config_hash(web())
    variants = [
        ("image: nginx:1.27", "image: nginx:1.28"),
        ("MODE: production", "MODE: staging"),
        ("daemon off;", "daemon on;"),
        ("com.example.team: web", "com.example.team: api"),
        ("/srv/www:/usr/share/nginx/html:ro", "/srv/www:/usr/share/nginx/html:rw"),
        ("net: host", "net: bridge"),
        ("privileged: true", "privileged: false"),
        ("cap_drop: [ALL]", "cap_drop: [MKNOD]"),
        ("interval: 1m30s", "interval: 1m31s"),
        ("nproc: 512", "nproc: 513"),
        ("max-size: 10m", "max-size: 20m"),
        ("user: 101", "user: 102"),
        ("tmpfs: [/tmp,", "tmpfs: [/var/tmp,"),
    ]
    seen = {base}
    for old, new in variants:
        raws, _ = parse_unit_text(changed(WEB, old, new), "test.yml")
        units, _, errors = build_units(raws, {"PROXY": "http://p:3128"})
        assert errors == [], (old, errors)
        digest = config_hash(units["web"])
        assert digest not in seen, old
        seen.add(digest)


def test_hash_changes_with_the_config_environment_and_the_image_id() -> None:
    raws, _ = parse_unit_text(WEB, "test.yml")
    other_env, _, _ = build_units(raws, {"PROXY": "http://other:3128"})
    assert config_hash(other_env["web"]) != config_hash(web())
    assert config_hash(web(), "sha256:1") != config_hash(web(), "sha256:2") != config_hash(web())


def test_restart_policy_change_alone_changes_the_hash_only_if_labels_do() -> None:
    # restart is corral's business: the container itself is the same, so no recreate is needed
    a = one("w:\n  image: x\n  restart: always\n")
    b = one("w:\n  image: x\n  restart: on-failure\n")
    assert config_hash(a) == config_hash(b)


def body_of(text: str) -> dict[str, Any]:
    return create_body(one(text))


def test_entrypoint_and_command_forms() -> None:
    body = body_of("w:\n  image: x\n  command: sh -c 'echo a; echo b'\n")
    assert body["Cmd"] == ["sh", "-c", "echo a; echo b"]
    assert body_of("w:\n  image: x\n  entrypoint: []\n")["Entrypoint"] == [""]
    assert "Cmd" not in body_of("w:\n  image: x\n  command:\n")
