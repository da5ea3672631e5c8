"""The command catalogue: argument checking (defaults, types, the rules across arguments), the bad
argument's diagnostic as the client gets it, the events filter, and the catalogue against docs/cli.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supervisor.control import catalogue, protocol
from supervisor.control.catalogue import COMMANDS
from supervisor.control.protocol import ControlError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_check_args_defaults_and_types() -> None:
    assert catalogue.check_args("config.export", {}) == {"secrets": False}
    assert catalogue.check_args("config.validate", {"yaml": "a: 1"}) == {
        "yaml": "a: 1", "filename": "<stdin>"
    }  # fmt: skip
    assert catalogue.check_args("logs", {"since": 3}) == {
        "since": 3.0, "until": None, "unit": None, "limit": None, "level": None, "grep": None, "boot": None,
        "reverse": False, "follow": False,
    }  # fmt: skip
    assert catalogue.check_args("logs", {"unit": ["a", "b"], "boot": -1})["unit"] == ["a", "b"]
    assert catalogue.check_args("events", {"kinds": ["a", "b"]}) == {"kinds": ["a", "b"]}
    assert catalogue.check_args("not.catalogued", {"anything": 1}) == {"anything": 1}
    for cmd, args in [
        ("logs", {"limit": True}),
        ("logs", {"since": "yesterday"}),
        ("logs", {"unit": [1]}),
        ("logs", {"limit": -1}),
        ("logs", {"boot": 1}),
        ("logs", {"grep": "("}),
        ("logs", {"follow": True, "reverse": True}),
        ("logs", {"follow": True, "until": 5}),
        ("logs", {"follow": True, "boot": -1}),
        ("events", {"kinds": "config"}),
        ("events", {"kinds": [1]}),
        ("config.set", {"key": "a"}),
        ("config.set", {"key": "a", "value": 3}),
        ("status", {"verbose": True}),
    ]:
        with pytest.raises(ControlError):
            catalogue.check_args(cmd, args)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({"limit": -1}, "argument 'limit' of 'logs': -1 is out of range (0 to 1000000000)"),
        ({"boot": 2}, "argument 'boot' of 'logs': 2 is out of range (-1000000 to 0) (0 is this boot, -1 the "
                      "boot before)"),
        ({"grep": "a(b"}, "argument 'grep' of 'logs': not a valid regular expression: missing ), "
                          "unterminated subpattern at position 1"),
        ({"follow": True, "reverse": True}, "argument 'reverse' of 'logs': cannot be used with 'follow'"),
        ({"follow": True, "until": 1.0}, "argument 'until' of 'logs': cannot be used with 'follow'"),
        ({"follow": True, "boot": -1},
         "argument 'boot' of 'logs': must be 0 with 'follow' (only this boot has new records)"),
        ({"unit": "a", "level": "loud"}, "argument 'level' of 'logs': 'loud' is not one of: debug, info, "
                                         "warning, error, critical"),
        ({"unit": [1]}, "argument 'unit[0]' of 'logs': expected a string, got the number 1"),
        ({"unit": 1}, "argument 'unit' of 'logs': expected a string or a list of strings, got the number 1"),
        ({"limit": "ten"}, "argument 'limit' of 'logs': expected a whole number, got the string 'ten'"),
        ({"level": "warn"}, "argument 'level' of 'logs': 'warn' is not one of: debug, info, warning, error, "
                            "critical; did you mean 'warning'?"),
        ({"limt": 5}, "argument 'limt' of 'logs': unknown argument; did you mean 'limit'?"),
    ],
)
def test_logs_argument_rules(args: dict[str, object], reason: str) -> None:
    with pytest.raises(ControlError) as caught:
        catalogue.check_args("logs", args)
    assert caught.value.reason == reason
    assert catalogue.check_args("logs", {"follow": True, "boot": 0, "limit": 0})["boot"] == 0


def test_a_bad_argument_is_a_config_diagnostic_in_the_reply() -> None:
    """The same diagnostic type as config's: the command as file, the argument as key, a suggestion."""
    with pytest.raises(ControlError) as caught:
        catalogue.check_args("logs", {"levle": "info"})
    error = caught.value
    assert error.code == protocol.BAD_ARGUMENT and error.problem is not None
    assert error.problem.to_dict() == {
        "file": "logs", "key": "levle", "message": "unknown argument; did you mean 'level'?", "line": None,
        "suggestion": "level",
    }  # fmt: skip
    reply = protocol.error_reply(error.reason, error.code, error.problem)
    assert reply["problem"]["suggestion"] == "level"
    with pytest.raises(ControlError) as back:  # what the client makes of the reply
        protocol.parse_reply(json.loads(protocol.encode(reply)))
    got = back.value
    assert (got.reason, got.code, got.problem) == (error.reason, error.code, error.problem)
    with pytest.raises(ControlError) as missing:
        catalogue.check_args("config.get", {})
    assert missing.value.reason == "argument 'key' of 'config.get': required, but not given"
    with pytest.raises(ControlError) as unknown:
        catalogue.check_args("config.get", {"colour": 1})
    assert unknown.value.reason == (
        "argument 'colour' of 'config.get': unknown argument (known here: key, secrets)"
    )


@pytest.mark.parametrize(
    ("cmd", "args", "reason"),
    [
        ("logs", {"since": -1}, "argument 'since' of 'logs': -1 is out of range (0 to 253402300799.0)"),
        ("logs", {"until": 1e300},
         "argument 'until' of 'logs': 1e+300 is out of range (0 to 253402300799.0)"),
        ("logs", {"limit": 10**30}, "argument 'limit' of 'logs': 1000000000000000000000000000000 is out of "
                                    "range (0 to 1000000000)"),
        ("logs", {"boot": -(10**12)},
         "argument 'boot' of 'logs': -1000000000000 is out of range (-1000000 to 0) (0 is this boot, -1 the "
         "boot before)"),
        ("debug.fail", {"handler": "x", "count": -1},
         "argument 'count' of 'debug.fail': -1 is out of range (0 to 1000000)"),
        ("debug.publish", {"count": 10**18},
         "argument 'count' of 'debug.publish': 1000000000000000000 is out of range (0 to 1000000)"),
        ("net.try", {"yaml": "", "timeout": 0}, "argument 'timeout' of 'net.try': 0 is out of range (1 to "
                                                "86400.0)"),
        ("net.try", {"yaml": "", "timeout": -5.5}, "argument 'timeout' of 'net.try': -5.5 is out of range (1 "
                                                   "to 86400.0)"),
    ],
)
def test_numeric_arguments_are_range_checked(cmd: str, args: dict[str, object], reason: str) -> None:
    """Negative or huge numbers once reached the handlers and ended in ValueError or OverflowError
    tracebacks (datetime, the event loop's timers); each is an argument error naming the argument."""
    with pytest.raises(ControlError) as caught:
        catalogue.check_args(cmd, args)
    assert caught.value.reason == reason
    assert caught.value.code == protocol.BAD_ARGUMENT


def test_every_numeric_argument_has_bounds() -> None:
    numeric = [(c.name, a) for c in COMMANDS.values() for a in c.args if {int, float} & set(a.types)]
    assert len(numeric) == 7
    assert all(a.low is not None and a.high is not None for _, a in numeric)
    with pytest.raises(ValueError, match="a number needs both bounds"):
        catalogue.Arg("n", (int,), "unbounded", low=0)
    with pytest.raises(ValueError, match="cannot be one of several types"):
        catalogue.Arg("n", (int, str), "mixed", low=0, high=1)


def test_kind_matches() -> None:
    assert catalogue.kind_matches(None, "phase")
    assert catalogue.kind_matches([], "phase")
    assert catalogue.kind_matches(["process"], "process.exited")
    assert catalogue.kind_matches(["process.exited"], "process.exited")
    assert not catalogue.kind_matches(["process"], "processes")
    assert not catalogue.kind_matches(["config"], "phase")
    assert catalogue.kind_matches(["config"], "resync")


def test_catalogue() -> None:
    assert sorted(COMMANDS) == sorted([
        "status", "config.get", "config.set", "config.unset", "config.export", "config.merge",
        "config.validate", "config.schema", "logs", "events", "reload", "poweroff", "reboot",
        "debug.fail", "debug.spawn",
        "debug.publish", "debug.modules",
        "units.list", "units.inspect", "units.up", "units.down", "units.restart", "units.enable",
        "units.disable", "storage.status", "net.status", "net.plan", "net.apply", "net.try", "net.confirm",
        "storage.mount", "storage.unmount", "dev", "swarm.status", "swarm.token", "os.list", "os.rollback",
    ])  # fmt: skip
    # logs always streams: the records go out as they are read, never as one reply holding them all
    assert COMMANDS["events"].streams == "always" and COMMANDS["logs"].streams == "always"


def test_docs_describe_every_command_and_argument() -> None:
    text = DOCS.read_text()
    for command in COMMANDS.values():
        assert f"`{command.name}`" in text, command.name
        for arg in command.args:
            assert f"`{arg.name}`" in text, (command.name, arg.name)
