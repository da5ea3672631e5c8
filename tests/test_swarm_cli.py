"""`corral swarm status|token` and the swarm line of `corral status`: their words, from plain results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from handlers.swarm.reconciler import TokenError, explain, read_token_file
from supervisor.cli.main import main
from supervisor.cli.status import render_status
from supervisor.cli.swarm import render
from units.runtime import DockerAPIError

TOKEN = "SWMTKN-1-" + "3" * 50 + "-" + "a" * 25

MANAGER = {
    "desired": "init", "state": "active", "node_id": "n1", "manager": True, "error": None, "waiting": None,
    "notes": [], "last_actions": [], "retry_in": None, "checked_at": 1.0, "node_addr": "10.0.0.1",
    "cluster_id": "c1", "managers": 1, "nodes": 3, "remote_managers": ["10.0.0.1:2377"], "swarm_error": None,
    "role": "manager", "availability": "drain", "labels": {"zone": "a"}, "reachability": "reachable",
    "leader": True,
    "tasks": [{"task": "web.1.x", "service": "web", "container": "4f0c2a1b9e77", "state": "running",
               "status": "Up 2 minutes"}],
}


def test_swarm_status_says_the_node_its_swarm_and_its_tasks() -> None:
    text = render(MANAGER)
    assert "node:       n1 manager (leader) at 10.0.0.1" in text
    assert "labels:     zone=a" in text and "available:  drain" in text
    assert "swarm:      1 manager(s), 3 node(s)" in text and "reachable:  reachable" in text
    assert "tasks here: 1" in text and "web.1.x" in text and "Up 2 minutes" in text


def test_swarm_status_says_what_is_wrong_and_when_it_is_tried_again() -> None:
    failing = {"desired": "join as worker", "state": "inactive", "error": "the swarm refused the join token",
               "retry_in": 3.2, "notes": ["labels are set from a manager"], "tasks": []}
    text = render(failing)
    assert "error:      the swarm refused the join token; retrying in 3.2 s" in text
    assert "note:       labels are set from a manager" in text
    assert "config:     join as worker" in text


def test_corral_status_has_a_swarm_line_only_when_there_is_a_swarm() -> None:
    base: dict[str, Any] = {"version": "0", "hostname": "h", "state": "ready"}
    assert "swarm:" not in render_status({**base, "swarm": None})
    assert "swarm:" not in render_status({**base, "swarm": {"desired": None, "state": "inactive"}})
    text = render_status({**base, "swarm": {"desired": "join as worker", "state": "pending",
                                            "waiting": "joining through 10.0.0.1:2377", "notes": ["n"]}})
    assert "swarm:     join as worker; pending; joining through 10.0.0.1:2377" in text
    assert "note: n" in text
    text = render_status({**base, "swarm": {"desired": "init", "state": "inactive", "error": "boom"}})
    assert "swarm:     init; inactive; error: boom" in text


@pytest.mark.parametrize("argv", [["swarm", "status", "--json"], ["swarm", "token", "worker", "--json"]])
def test_json_flags_parse(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # no supervisor at this socket: exit 3, after the command line was understood
    assert main(["--socket", str(tmp_path / "none.sock"), *argv]) == 3


def test_token_kind_is_checked_by_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["swarm", "token", "boss"]) == 2
    assert "invalid choice: 'boss'" in capsys.readouterr().err


def test_the_token_file_is_read_and_checked_never_quoted(tmp_path: Path) -> None:
    good = tmp_path / "token"
    good.write_text(TOKEN + "\n")
    assert read_token_file(str(good)) == TOKEN
    bad = tmp_path / "bad"
    bad.write_text("hunter2-secret\n")
    with pytest.raises(TokenError) as caught:
        read_token_file(str(bad))
    assert "corral.swarm.join.token_file" in str(caught.value) and "hunter2" not in str(caught.value)
    with pytest.raises(TokenError, match="No such file"):
        read_token_file(str(tmp_path / "missing"))
    big = tmp_path / "big"
    big.write_bytes(b"x" * 10000)
    with pytest.raises(TokenError, match="over 4096 bytes"):
        read_token_file(str(big))


def test_a_refused_token_is_said_so() -> None:
    refused = DockerAPIError(500, "swarm join: rpc error: code = InvalidArgument desc = A valid join "
                                  "token is necessary to join this cluster")
    assert explain(refused).startswith("the swarm refused the join token (check corral.swarm.join.token)")
    assert explain(DockerAPIError(503, "swarm join: other")) == "HTTP 503: swarm join: other"
    # A token whose first part (the digest of the swarm's CA) is not this swarm's: dockerd's words for it.
    other_swarm = DockerAPIError(500, "swarm join: remote CA does not match fingerprint. Expected: 0a1b2c")
    assert explain(other_swarm).startswith("the swarm refused the join token (check corral.swarm.join.token)")
    made_up = DockerAPIError(500, "swarm join: invalid checksum digest length")  # its first part no digest
    assert explain(made_up).startswith("the swarm refused the join token (check corral.swarm.join.token)")
    assert json.dumps(MANAGER)  # the status is JSON as it stands
