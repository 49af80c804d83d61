"""Point-in-time reads: --as-of by offset and by ISO time, in the API and the CLI."""

from __future__ import annotations

import json
import time

import pytest

from ledger.cli.app import main
from ledger.errors import InvalidRequest, NotFound
from ledger.events import us_to_iso


def _ev(ledger, offset):
    return next(iter(ledger.log.read(offset, offset)))


def test_get_and_history_as_of_offset(ledger):
    a = ledger.add("c", "v1", "alice", memory_id="m")
    b = ledger.update("m", "v2", "alice")
    c = ledger.update("m", "v3", "bob")
    assert ledger.get("m", as_of=a.offset).text == "v1"
    assert ledger.get("m", as_of=b.offset).text == "v2"
    assert ledger.get("m", as_of=str(c.offset)).text == "v3"
    assert [v.text for v in ledger.history("m", as_of=b.offset)] == ["v1", "v2"]
    with pytest.raises(NotFound, match="as of offset"):
        ledger.get("m", as_of=a.offset - 1)  # the cube.created event: m does not exist yet
    with pytest.raises(NotFound, match="as of offset"):
        ledger.history("m", as_of=a.offset - 1)
    with pytest.raises(InvalidRequest):
        ledger.get("m", as_of=c.offset + 1)


def test_as_of_iso_time_maps_to_last_offset_at_or_before(ledger):
    a = ledger.add("c", "v1", "alice", memory_id="m")
    time.sleep(0.01)
    b = ledger.update("m", "v2", "alice")
    ta, tb = _ev(ledger, a.offset).ts_us, _ev(ledger, b.offset).ts_us
    assert tb > ta
    assert ledger.resolve_as_of(us_to_iso(ta)) == a.offset
    assert ledger.resolve_as_of(us_to_iso(tb - 1)) == a.offset  # between the two events: the earlier one
    assert ledger.resolve_as_of(us_to_iso(tb)) == b.offset
    assert ledger.get("m", as_of=us_to_iso(tb - 1)).text == "v1"
    assert ledger.get("m", as_of=us_to_iso(tb + 10_000_000)).text == "v2"
    assert ledger.resolve_as_of("2000-01-01T00:00:00Z") == -1
    with pytest.raises(NotFound):
        ledger.get("m", as_of="2000-01-01T00:00:00+00:00")
    with pytest.raises(InvalidRequest):
        ledger.resolve_as_of("yesterday")


def test_cli_as_of_get_history_log(tmp_path, capsys):
    d = str(tmp_path / "data")
    assert main(["--data", d, "init"]) == 0
    assert main(["--data", d, "add", "--cube", "c", "--id", "m", "--actor", "a", "first"]) == 0
    time.sleep(0.01)
    assert main(["--data", d, "update", "m", "--actor", "a", "second"]) == 0
    capsys.readouterr()
    assert main(["--data", d, "log", "--json"]) == 0
    events = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    added = next(e for e in events if e["type"] == "memory.added")
    assert main(["--data", d, "get", "m", "--as-of", str(added["offset"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == "first"
    assert main(["--data", d, "get", "m", "--as-of", added["time"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == "first"
    assert main(["--data", d, "history", "m", "--as-of", added["time"], "--json"]) == 0
    assert [v["text"] for v in json.loads(capsys.readouterr().out)] == ["first"]
    assert main(["--data", d, "log", "--as-of", added["time"]]) == 0
    assert [json.loads(x)["offset"] for x in capsys.readouterr().out.splitlines()] == [0, added["offset"]]
    assert main(["--data", d, "get", "m", "--as-of", "not-a-time"]) == 2
    assert "ISO-8601" in capsys.readouterr().err
