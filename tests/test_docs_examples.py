"""Which lines of the docs the docs test runs (integration/docs_examples.py), and what it expects."""

from __future__ import annotations

from integration.docs_examples import Example, all_examples, examples_in

DOC = """\
Synopsis, not run:

```
corral logs [-f] [-u UNIT]
$ corral status
corral 0.1.0 on edge-1
```

```sh
corral logs -n 5            # the newest five
export CORRAL_SOCKET=/x
sudo corral logs -f
corral config get nope      # exits 1: no such key
corral status -o json | jq -r .state   # a '#' in "quotes # stays"
docker run --rm busybox echo hi
```

```yaml
corral:
  log: {level: debug}
```
"""


def test_shell_blocks_and_prompted_lines_only() -> None:
    assert examples_in(DOC, "d.md") == [
        Example("d.md", 5, "corral status"),
        Example("d.md", 10, "corral logs -n 5"),
        Example("d.md", 12, "sudo corral logs -f", guest=True),
        Example("d.md", 13, "corral config get nope", exits=1),
        Example("d.md", 14, "corral status -o json | jq -r .state"),
        Example("d.md", 15, "docker run --rm busybox echo hi", guest=True),
    ]


def test_follow_is_told_apart() -> None:
    assert Example("d", 1, "corral logs -f -u docker").follows
    assert Example("d", 1, "corral events --follow").follows
    assert Example("d", 1, "corral events -o json | jq .").follows  # events always follows
    assert not Example("d", 1, "corral logs -n 5 | grep -f x").follows
    assert not Example("d", 1, "docker rm -f $(docker ps -qa)").follows


def test_the_docs_have_examples_to_run() -> None:
    found = all_examples()
    assert len(found) >= 30, [e.where for e in found]
    assert {e.path for e in found} >= {"README.md", "docs/cli.md", "docs/journal.md", "docs/units.md"}
