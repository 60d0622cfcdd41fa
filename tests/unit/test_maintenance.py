"""When a maintenance window is in effect: once, recurring across midnight and a DST change,
and what the loader says about a window that cannot be right."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from probe_agent.config.loader import parse_config
from probe_agent.core.errors import ConfigError
from probe_agent.schema.maintenance import MaintenanceWindow, active_windows, ad_hoc, window_of

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_once_is_half_open() -> None:
    window = MaintenanceWindow.model_validate(
        {"name": "w", "probes": ["a"], "start": "2026-11-24T02:00:00Z", "end": "2026-11-24T04:00:00+00:00"}
    )
    assert window.active_until(at("2026-11-24T01:59:59Z")) is None
    assert window.active_until(at("2026-11-24T02:00:00Z")) == at("2026-11-24T04:00:00Z")
    assert window.active_until(at("2026-11-24T03:00:00+01:00")) == at("2026-11-24T04:00:00Z")  # 02:00 UTC
    assert window.active_until(at("2026-11-24T04:00:00Z")) is None


def test_recurring_crosses_midnight_on_its_weekdays_only() -> None:
    # Saturdays 23:00-01:00 Berlin time: Sunday 00:30 is inside, Sunday 23:30 is not
    window = MaintenanceWindow.model_validate(
        {"name": "w", "tags": ["db"], "every": ["Sat"], "at": "23:00", "duration": "2h", "timezone": "Europe/Berlin"}
    )
    assert window.every == ("saturday",)
    assert window.active_until(at("2026-11-28T23:30:00+01:00")) == at("2026-11-29T00:00:00Z")
    assert window.active_until(at("2026-11-29T00:30:00+01:00")) == at("2026-11-29T00:00:00Z")
    assert window.active_until(at("2026-11-29T23:30:00+01:00")) is None
    assert window.active_until(at("2026-11-28T22:59:00+01:00")) is None


def test_recurring_follows_local_time_over_a_dst_change() -> None:
    # daily 03:00 Berlin: 02:00 UTC in winter, 01:00 UTC in summer (DST began 2026-03-29)
    window = MaintenanceWindow.model_validate(
        {"name": "w", "probes": ["a"], "every": "day", "at": "03:00", "duration": "30m", "timezone": "Europe/Berlin"}
    )
    assert len(window.every) == 7
    assert window.active_until(at("2026-03-28T02:10:00Z")) is not None
    assert window.active_until(at("2026-03-30T01:10:00Z")) is not None
    assert window.active_until(at("2026-03-30T02:10:00Z")) is None


def test_which_window_covers_a_probe() -> None:
    now = at("2026-11-24T03:00:00Z")
    windows = [
        MaintenanceWindow.model_validate(
            {"name": "db", "tags": ["db"], "start": "2026-11-24T02:00:00Z", "end": "2026-11-24T04:00:00Z"}
        ),
        MaintenanceWindow.model_validate(
            {"name": "later", "probes": ["web"], "start": "2026-11-25T02:00:00Z", "end": "2026-11-25T04:00:00Z"}
        ),
    ]
    active = active_windows(windows, now)
    assert [w.name for w, _ in active] == ["db"]
    assert window_of("orders", ["db", "shop"], active) == "db"
    assert window_of("web", ["shop"], active) is None


def test_ad_hoc_runs_from_now_and_refuses_what_it_does_not_know() -> None:
    now = at("2026-11-24T03:00:00Z")
    window = ad_hoc({"probes": ["a"], "duration": "30m", "reason": "drill"}, now)
    assert (window.start, window.end, window.name) == (now, at("2026-11-24T03:30:00Z"), "adhoc-20261124T030000Z")
    with pytest.raises(ValueError, match="unknown field"):
        ad_hoc({"probes": ["a"], "until": "later"}, now)
    with pytest.raises(ValidationError, match="name the probes or tags"):
        ad_hoc({"duration": "5m"}, now)


PROBES = """probes:
  - {name: orders-db, type: tcp, host: h, port: 1, tags: [db]}
  - {name: web, type: tcp, host: h, port: 2}
maintenance:
"""


def test_loader_names_each_bad_window_and_field() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            PROBES
            + """
  - {name: typo, probes: [orders-bd], start: "2026-11-24T02:00:00Z", end: "2026-11-24T03:00:00Z"}
  - {name: backwards, probes: [web], start: "2026-11-24T02:00:00Z", end: "2026-11-24T01:00:00Z"}
  - {name: naive, probes: [web], start: "2026-11-24T02:00:00", end: "2026-11-24T03:00:00Z"}
  - {name: zone, tags: [db], every: [mon], at: "03:00", duration: 1h, timezone: Europe/Berlinn}
  - {name: half, probes: [web], every: [mon], at: "03:00"}
  - {name: nothing, every: [mon], at: "03:00", duration: 1h}
  - {name: noday, probes: [web], every: [mo], at: "03:00", duration: 1h}
  - {name: typo, tags: [dbs], start: "2026-11-24T02:00:00Z", end: "2026-11-24T03:00:00Z"}
""",
            env={},
        )
    problems = info.value.problems
    assert (
        "maintenance[1] (backwards): end 2026-11-24T01:00:00+00:00 is not after start 2026-11-24T02:00:00+00:00"
        in problems
    )
    assert (
        "maintenance[2] (naive): start: 2026-11-24T02:00:00 has no time zone: add Z (UTC) or an offset such as +01:00"
        in problems
    )
    assert any(p.startswith("maintenance[3] (zone): timezone: unknown time zone 'Europe/Berlinn'") for p in problems)
    assert "maintenance[4] (half): give start and end (once), or every, at and duration (recurring)" in problems
    assert any(p.startswith("maintenance[5] (nothing): name the probes or tags") for p in problems)
    assert any(p.startswith("maintenance[6] (noday): every[0]: Input should be 'monday'") for p in problems)
    assert "maintenance[0] (typo): probes: no probe named 'orders-bd' (did you mean 'orders-db'?)" in problems
    assert "maintenance[7] (typo): name: duplicate name" in problems
    assert "maintenance[7] (typo): tags: no probe has any of the tags dbs" in problems


def test_check_with_a_selection_still_knows_every_probe_name() -> None:
    """`check --probe web` keeps the windows, and a window naming a probe left out is no error."""
    from probe_agent.config.loader import Selection

    text = PROBES + '  - {name: db, probes: [orders-db], start: "2026-11-24T02:00:00Z", end: "2026-11-24T03:00:00Z"}\n'
    config = parse_config(text, env={}, selection=Selection(names=("web",)))
    assert [p.name for p in config.probes] == ["web"] and [w.name for w in config.maintenance] == ["db"]


def test_the_book_reports_each_window_starting_and_ending_once() -> None:
    from probe_agent.runtime.maintenance import MaintenanceBook

    scheduled = MaintenanceWindow.model_validate(
        {"name": "nightly", "tags": ["db"], "start": "2026-11-24T02:00:00Z", "end": "2026-11-24T03:00:00Z"}
    )
    book = MaintenanceBook([scheduled])
    assert not book.refresh(at("2026-11-24T01:59:00Z")) and book.covering("orders-db", ["db"]) is None
    change = book.refresh(at("2026-11-24T02:00:00Z"))
    assert [w.name for w, _ in change.started] == ["nightly"] and not change.ended
    assert not book.refresh(at("2026-11-24T02:30:00Z"))  # still in effect: no news
    assert book.covering("orders-db", ["db"]) == "nightly" and book.covering("web", []) is None
    assert book.refresh(at("2026-11-24T03:00:00Z")).ended == ["nightly"]


def test_the_book_keeps_hand_started_windows_over_a_reload_and_drops_them_when_over() -> None:
    from probe_agent.runtime.maintenance import MaintenanceBook

    now = at("2026-11-24T10:00:00Z")
    book = MaintenanceBook([])
    probes = [("orders-db", ["db"]), ("web", [])]
    window = book.start({"tags": ["db"], "duration": "30m", "name": "drill"}, now, probes)
    assert book.kind("drill") == "ad hoc" and window.name == "drill"
    with pytest.raises(ValueError, match="covers no probe"):
        book.start({"tags": ["cache"]}, now, probes)
    book.replace_scheduled(
        [
            MaintenanceWindow.model_validate(
                {
                    "name": "psp",
                    "probes": ["web"],
                    "start": now + dt.timedelta(days=1),
                    "end": now + dt.timedelta(days=2),
                }
            )
        ]
    )
    with pytest.raises(ValueError, match="is a scheduled window's"):
        book.start({"name": "psp", "probes": ["web"]}, now, probes)
    assert book.refresh(now).started and book.covering("orders-db", ["db"]) == "drill"
    assert book.refresh(now + dt.timedelta(minutes=30)).ended == ["drill"] and "drill" not in book.ad_hoc
    assert book.end("drill") is False
