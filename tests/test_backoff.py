from supervisor.backoff import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_first_retry_immediate_then_doubling_to_cap() -> None:
    clock = Clock()
    b = Backoff(initial=0.1, cap=1.0, clock=clock)
    delays = []
    for _ in range(7):
        delays.append(b.next_delay())
        clock.now += 0.01
    assert delays == [0.0, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_reset_after_quiet_period_or_long_run() -> None:
    clock = Clock()
    b = Backoff(initial=0.1, cap=30, reset_after=10, clock=clock)
    for _ in range(4):
        b.next_delay()
    clock.now += 11
    assert b.next_delay() == 0.0
    b.next_delay()
    assert b.next_delay(ran_for=12) == 0.0
    assert b.next_delay(ran_for=1) == 0.1
