""""Did you mean": the one place that picks a close match for a misspelt word and words the hint.

Every checker that rejects a name it does not know (the schema validator, the domain parsers, the
control socket's arguments) asks ``closest`` and says ``did_you_mean``: the same cutoff and the same
format everywhere. What is suggested is what to write instead: for a key, its whole key path (as
``corral config get`` takes it); for a value (an enum, a label name), the value."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.6
"""``difflib``'s similarity ratio a candidate needs (its default): ``adress`` finds ``address``,
``foo`` finds nothing among ``dhcp, mtu``."""


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice most like ``word``, when one is close enough."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=CUTOFF)
    return matches[0] if matches else None


def did_you_mean(suggestion: str) -> str:
    """The hint as every message words it: ``did you mean 'corral.log'?``."""
    return f"did you mean {suggestion!r}?"
