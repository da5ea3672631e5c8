import signal

from supervisor import signals


def test_every_catchable_signal_has_an_entry() -> None:
    handled = set(signals.handled_signals())
    for sig in signal.valid_signals():
        if sig in signals.UNCATCHABLE | signals.FAULTS | signals.OWNED_ELSEWHERE | {signal.SIGPIPE}:
            continue
        assert sig in handled, sig


def test_actions() -> None:
    assert signals.action_for(signal.SIGTERM) == "poweroff"
    assert signals.action_for(signal.SIGPWR) == "poweroff"
    assert signals.action_for(signal.SIGINT) == "reboot"
    assert signals.action_for(signal.SIGHUP) == "reload"
    assert signals.action_for(signal.SIGUSR1) == "dump"
    assert signals.action_for(signal.SIGUSR2) == "ignore"
    assert signals.signal_name(signal.SIGRTMIN + 4) == "SIGRTMIN+4"
