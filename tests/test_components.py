"""The daemon's parts list, with fake parts that record what is done to them."""

from __future__ import annotations

from unet_matting.watcher.components import MattingPart, Parts


class Fake:
    def __init__(self, name: str, calls: list[str], alive: bool = True) -> None:
        self.name, self.calls, self.alive = name, calls, alive

    def start(self) -> None:
        self.calls.append(f"start {self.name}")

    def stop(self) -> None:
        self.calls.append(f"stop {self.name}")

    def join(self) -> None:
        self.calls.append(f"join {self.name}")

    def is_alive(self) -> bool:
        return self.alive


def test_parts_start_in_order_and_stop_in_reverse_asking_all_before_waiting() -> None:
    """Started a, b, c (and http adopted last, though started earlier): stopped http, c, b, a, then
    joined in that order, so they wind down together; a second stop does nothing."""
    calls: list[str] = []
    parts = Parts()
    http = Fake("http", calls)
    http.start()
    for name in ("a", "b", "c"):
        parts.start(Fake(name, calls))
    parts.adopt(http)
    assert calls == ["start http", "start a", "start b", "start c"]
    calls.clear()
    parts.stop()
    assert calls == ["stop http", "stop c", "stop b", "stop a", "join http", "join c", "join b", "join a"]
    calls.clear()
    parts.stop()
    assert calls == []


def test_dead_parts_are_named() -> None:
    """dead() names the parts that are no longer alive, in start order."""
    calls: list[str] = []
    parts = Parts()
    for name, alive in (("intake", True), ("worker-0", False), ("observer", False)):
        parts.start(Fake(name, calls, alive))
    assert parts.dead() == ["worker-0", "observer"]


def test_the_matting_part_follows_the_strategy_in_use() -> None:
    """MattingPart gives queue waits their grace on stop, releases the strategy on join, and
    reads the current strategy each time (a model switch replaces it)."""
    calls: list[str] = []

    class Strategy:
        def __init__(self, name: str) -> None:
            self.name = name

        def abandon_waits(self, after_s: float) -> None:
            calls.append(f"{self.name} abandon after {after_s}")

        def stop(self) -> None:
            calls.append(f"{self.name} stop")

        def threads(self) -> list:
            return []

    current = [Strategy("first")]
    part = MattingPart(lambda: current[0], 10.0)
    current[0] = Strategy("second")
    part.stop()
    part.join()
    assert calls == ["second abandon after 10.0", "second stop"] and part.is_alive() and part.name == "matting"
