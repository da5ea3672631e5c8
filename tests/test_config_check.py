"""The one diagnostic type, the one "did you mean" and the typed helpers every domain parser uses."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor.config.check import (
    Keys,
    Unsupported,
    as_bool,
    as_enum,
    as_int,
    as_map,
    as_number,
    as_str,
    as_strings,
    check_keys,
    describe,
    integer,
    out_of_range,
    show,
)
from supervisor.config.errors import ConfigError, Problems
from supervisor.config.layers import check_text
from supervisor.config.schema import Schema
from supervisor.config.suggest import closest, did_you_mean
from supervisor.config.validate import Validator


def test_did_you_mean_has_one_cutoff_and_one_wording() -> None:
    assert closest("adress", ["address", "addresses", "gateway"]) == "address"
    assert closest("foo", ["dhcp", "mtu"]) is None
    assert closest("", ["dhcp"]) is None
    assert did_you_mean("corral.log") == "did you mean 'corral.log'?"


def test_the_diagnostic_keeps_its_string_and_grows_its_json() -> None:
    message = "unknown key; did you mean 'corral.log'?"
    error = ConfigError("cloud-config.yml", "corral.lgo", message, 3, "corral.log")
    assert str(error) == "cloud-config.yml: corral.lgo: unknown key; did you mean 'corral.log'?"
    assert error.to_dict() == {
        "file": "cloud-config.yml", "key": "corral.lgo", "message": "unknown key; did you mean 'corral.log'?",
        "line": 3, "suggestion": "corral.log",
    }  # fmt: skip
    assert ConfigError("f", "k", "m").to_dict() == {"file": "f", "key": "k", "message": "m", "line": None,
                                                    "suggestion": None}


def test_the_collector_names_whole_key_paths_files_and_lines() -> None:
    lines = {("corral", "services", "web", "image"): 4}
    problems = Problems(lambda key: f"file-of:{key}", base=("corral", "services", "web"), line=lines.get)
    problems.error(("image",), "bad")
    problems.warn((), "odd")
    problems.error(("x", 0), "worse", suggestion="y")
    assert [str(e) for e in problems.errors] == [
        "file-of:corral.services.web.image: corral.services.web.image: bad",
        "file-of:corral.services.web.x[0]: corral.services.web.x[0]: worse",
    ]
    assert [e.line for e in problems.errors] == [4, None]
    assert problems.errors[1].suggestion == "y"
    assert [w.key for w in problems.warnings] == ["corral.services.web"]
    assert problems.count() == 2
    assert Problems().key(()) == "(document)"


@pytest.mark.parametrize(("value", "shown", "described"), [
    ("eth0", "'eth0'", "the string 'eth0'"),
    (5, "5", "the number 5"),
    (1.5, "1.5", "the number 1.5"),
    (True, "true", "the boolean true"),
    (None, "null", "null"),
    ({"a": 1}, "{'a': 1}", "a map"),
    ([1], "[1]", "a list"),
])
def test_values_are_written_one_way(value: Any, shown: str, described: str) -> None:
    assert (show(value), describe(value)) == (shown, described)


def test_long_strings_are_cut_in_descriptions() -> None:
    assert describe("x" * 100) == "the string '" + "x" * 39


TABLE = Keys(
    "example",
    {
        "mtu": integer(68, 65535),
        "dhcp": {"type": "boolean"},
        "ipv4ll": Unsupported("ipv4ll is not supported yet"),
    },
    hints={"dhcp4": "in this format DHCPv4 is 'dhcp'"},
    nullable=True,
)


def keys_errors(data: dict[Any, Any], keys: Keys | tuple[str, ...] = TABLE, **kw: Any) -> list[ConfigError]:
    problems = Problems("f")
    check_keys(data, ("corral", "network", "interfaces", "eth0"), problems, keys, **kw)
    return problems.errors


def test_unknown_keys_get_a_hint_a_suggestion_or_the_keys_known_here() -> None:
    [typo] = keys_errors({"mtuu": 1500})
    assert typo.key == "corral.network.interfaces.eth0.mtuu"
    assert typo.message == "unknown key; did you mean 'corral.network.interfaces.eth0.mtu'?"
    assert typo.suggestion == "corral.network.interfaces.eth0.mtu"
    [hint] = keys_errors({"dhcp4": True})
    assert (hint.message, hint.suggestion) == ("unknown key; in this format DHCPv4 is 'dhcp'", None)
    [far] = keys_errors({"zzz": 1})
    assert far.message == "unknown key (known here: dhcp, mtu)"
    [unsupported] = keys_errors({"ipv4ll": True})
    assert unsupported.message == "ipv4ll is not supported yet"
    [number] = keys_errors({5: 1})
    assert (number.key, number.message) == (
        "corral.network.interfaces.eth0.5", "key 5 is not a string; quote it"
    )
    assert keys_errors({"x-anchor": 1, "mtu": 1}, ("mtu",), extensions=True) == []
    [arg] = keys_errors({"limt": 1}, ("limit",), what="argument")
    assert arg.message.startswith("unknown argument; did you mean")


def test_a_key_table_is_also_a_schema_definition() -> None:
    assert TABLE.known == ("mtu", "dhcp") and TABLE.unsupported == {"ipv4ll": "ipv4ll is not supported yet"}
    assert TABLE.schema() == {
        "type": ["object", "null"],
        "additionalProperties": False,
        "properties": {
            "mtu": {"type": "integer", "minimum": 68, "maximum": 65535},
            "dhcp": {"type": "boolean"},
            "ipv4ll": {"description": "ipv4ll is not supported yet"},  # any value: the parser explains
        },
    }


def one(check: Any, value: Any, *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:
    problems = Problems("f")
    result = check(value, ("k",), problems, *args, **kwargs)
    return result, [e.message for e in problems.errors]


def test_typed_helpers_say_expected_and_got() -> None:
    assert one(as_str, 5) == (None, ["expected a string, got the number 5"])
    assert one(as_str, 5, numbers=True) == ("5", [])
    assert one(as_bool, "yes") == (None, ["expected a boolean (true or false), got the string 'yes'"])
    assert one(as_bool, "True", strings=True) == (True, [])
    assert one(as_map, None) == ({}, [])
    assert one(as_map, [1], "a map of name to settings") == (
        None, ["expected a map of name to settings, got a list"]
    )
    assert one(as_strings, ["a", 1]) == (None, ["expected a string, got the number 1"])
    assert one(as_strings, "a", single=True) == (["a"], [])
    assert one(as_number, True, what="a number of seconds") == (
        None, ["expected a number of seconds, got the boolean true"]
    )


def test_numbers_have_bounds_in_one_wording() -> None:
    assert one(as_int, 20, 68, 65535) == (None, ["20 is out of range (68 to 65535)"])
    assert one(as_int, -1, 0) == (None, ["-1 is out of range (0 or more)"])
    assert one(as_int, 9, None, 8) == (None, ["9 is out of range (8 or less)"])
    assert one(as_int, "1500", 68, 65535) == (None, ["expected a whole number, got the string '1500'"])
    assert one(as_int, "1500", 68, 65535, strings=True) == (1500, [])
    assert one(as_int, True) == (None, ["expected a whole number, got the boolean true"])
    assert one(as_number, -0.5, 0) == (None, ["-0.5 is out of range (0 or more)"])
    assert out_of_range(5000, 1, 4094) == "5000 is out of range (1 to 4094)"


def test_enums_suggest_the_value_meant() -> None:
    assert one(as_enum, "stop", ("stop", "ignore")) == ("stop", [])
    problems = Problems("f")
    assert as_enum("stp", ("on_remove",), problems, ("stop", "ignore")) is None
    [error] = problems.errors
    assert error.message == "'stp' is not one of: stop, ignore; did you mean 'stop'?"
    assert error.suggestion == "stop"
    assert one(as_enum, 3, ("stop", "ignore")) == (None, ["3 is not one of: stop, ignore"])


def test_the_schema_validator_speaks_the_same_way() -> None:
    validator = Validator(Schema())
    _, errors = check_text("corral:\n  log: {level: warn}\n  lgo: {}\n", "c.yml", validator)
    _, aliased = check_text("rancher:\n  debgu: true\n", "c.yml", validator)
    found = {e.key: e for e in [*errors, *aliased]}
    assert found["corral.log.level"].message == (
        "'warn' is not one of: debug, info, warning, error; did you mean 'warning'? (line 2)"
    )
    assert found["corral.log.level"].suggestion == "warning"
    assert found["corral.lgo"].suggestion == "corral.log"
    # rancher: is corral: under another name, and so is what is suggested under it
    assert found["rancher.debgu"].message == "unknown key; did you mean 'rancher.debug'? (line 2)"
    assert found["rancher.debgu"].suggestion == "rancher.debug"
    _, errors = check_text("corral:\n  shutdown_grace: -1\n", "c.yml", validator)
    assert [e.message for e in errors] == ["-1 is out of range (0 or more) (line 2)"]
