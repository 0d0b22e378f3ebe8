"""When a gateway misbehaves and when it is fine again: one line each, and no flapping."""

from __future__ import annotations

from collectors.modbus.episodes import Episode, GatewayEpisodes


def run(episodes: GatewayEpisodes, cycles: str) -> list[str]:
    """Play cycles, one character each: `.` clean, `d` a drop, `g` garbage; returns what
    would be logged: `start@i` and `end@i`."""
    said = []
    for i, cycle in enumerate(cycles):
        for kind in cycle.replace(".", ""):
            if episodes.fault({"d": "drop", "g": "garbage"}[kind]):
                said.append(f"start@{i}")
        if episodes.cycle_done() is not None:
            said.append(f"end@{i}")
    return said


def test_one_line_when_it_starts_and_one_after_three_clean_cycles() -> None:
    assert run(GatewayEpisodes(), "..dgd.d...") == ["start@2", "end@9"]


def test_an_episode_says_what_happened() -> None:
    episodes = GatewayEpisodes()
    run(episodes, "dd")
    episodes.fault("garbage")
    episodes.cycle_done()
    run(episodes, "..")
    ended = episodes.cycle_done()
    assert ended == Episode({"drop": 2, "garbage": 1}, 6)
    assert ended.summary() == "2 dropped connections, 1 garbage answers in 6 cycles"


def test_a_gateway_that_relapses_must_stay_clean_longer_each_time() -> None:
    # a fault every fourth cycle: without hysteresis, a start and an end line every 4 cycles
    said = run(GatewayEpisodes(), "d..." * 30)
    assert len(said) <= 4, said
    assert said[0] == "start@0"


def test_after_a_long_clean_stretch_the_patience_is_reset() -> None:
    episodes = GatewayEpisodes()
    run(episodes, "d...d...")  # relapsed: now needs 6 clean cycles
    assert episodes.needed == 6
    run(episodes, "." * 60)
    assert run(episodes, "d...") == ["start@0", "end@3"]  # three again


def test_the_patience_has_a_ceiling() -> None:
    episodes = GatewayEpisodes(max_recover_after=12)
    needed = []
    for _ in range(6):  # relapse as soon as each episode ends
        run(episodes, "d")
        needed.append(episodes.needed)
        while episodes.active:
            run(episodes, ".")
    assert needed == [3, 6, 12, 12, 12, 12]
