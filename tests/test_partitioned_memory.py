"""The memory API on a partitioned ledger (``PartitionedLedger``, ``PartitionedViews``, the
partitioned forget and the CLI): the same memories as a ledger of one partition, routed by cube,
with per-partition offsets; erasure of a subject whose memories span partitions leaves nothing
readable in any partition's views or anywhere in the data directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.config import init_data_dir
from ledger.errors import InvalidRequest, LegalHold, NotFound
from ledger.factory import open_ledger, open_partitioned_memory
from ledger.partitions.partitioned_forget import forget_partitioned
from ledger.partitions.partitioned_ledger import PartitionedLedger
from projections.partitioned_views import PartitionedViews

PARTITIONED = '[log]\nbackend = "sqlite"\nsynchronous = "NORMAL"\npartitions = 4\n'
SINGLE = '[log]\nbackend = "sqlite"\nsynchronous = "NORMAL"\n'
CUBES = [f"cube{i}" for i in range(6)]


@pytest.fixture
def pledger(tmp_path):
    path, _ = init_data_dir(tmp_path / "parts", PARTITIONED)
    p = open_partitioned_memory(path)
    yield p
    p.close()


def _cubes_by_partition(p: PartitionedLedger) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for c in CUBES:
        out.setdefault(p.partition_of(c), []).append(c)
    return out


def _workload(api) -> dict[str, str]:
    """The same operations on either API; returns label -> memory id."""
    ids: dict[str, str] = {}
    for i, cube in enumerate(CUBES):
        ids[f"a{i}"] = api.add(cube, f"fact {i} about walruses", "alice", metadata={"user_id": f"u{i % 2}"}).id
        ids[f"b{i}"] = api.add(cube, f"second fact {i} about narwhals", "alice", tags=["t"]).id
    for i in range(0, 6, 2):
        api.update(ids[f"a{i}"], f"fact {i} about walruses, revised", "bob")
    api.change_state(ids["b1"], "activated", "bob")
    api.change_state(ids["b3"], "archived", "bob")
    ids["m0"] = api.merge([ids["a1"], ids["b1"]], "merged fact about walruses and narwhals", "carol").id
    api.delete(ids["b4"], "carol", reason="wrong")
    api.link(ids["a0"], ids["a5"], "related", "carol")
    return ids


def _snapshot(states) -> dict[str, tuple]:
    return {
        m.memory_id: (m.cube, m.text, m.state, m.version, tuple(m.tags), json.dumps(m.metadata, sort_keys=True))
        for m in states
    }


def test_same_memories_as_a_ledger_of_one_partition(tmp_path, pledger):
    single_path, _ = init_data_dir(tmp_path / "single", SINGLE)
    single = open_ledger(single_path)
    ids_p = _workload(pledger)
    ids_s = _workload(single)
    assert len(_cubes_by_partition(pledger)) > 1  # the workload spans partitions
    for cube in CUBES:
        got = _snapshot(pledger.cube_memories(cube).values())
        want = _snapshot(single.cube_memories(cube).values())
        rename = {ids_s[k]: ids_p[k] for k in ids_s}
        assert got == {rename[k]: v for k, v in want.items()}
    # each cube's events are in its own partition, and only there
    for k, led in enumerate(pledger.ledgers):
        streams = {e.stream for e in led.events()}
        assert {s for s in streams if s.startswith("cube")} == {c for c in CUBES if pledger.partition_of(c) == k}
    single.log.close()


def test_offsets_are_the_partition_s_and_as_of_reads_follow_them(pledger):
    first = pledger.add("cube1", "the first version", "alice")
    home = pledger.partition_of("cube1")
    assert first.partition == home
    second = pledger.update(first.id, "the second version", "alice")
    assert second.partition == home and second.offset > first.offset
    assert pledger.get(first.id, as_of=first.offset).text == "the first version"
    assert pledger.get(first.id).text == "the second version"
    assert [v.text for v in pledger.history(first.id)] == ["the first version", "the second version"]
    assert pledger.heads()[home] == second.offset
    with pytest.raises(InvalidRequest, match="out of range"):
        pledger.get(first.id, as_of=second.offset + 50)


def test_memory_ids_are_unique_across_partitions_and_unknown_ids_are_not_found(pledger):
    by_part = _cubes_by_partition(pledger)
    a, b = (cubes[0] for _, cubes in sorted(by_part.items())[:2])
    pledger.add(a, "one", "alice", memory_id="mem_fixed")
    heads = pledger.heads()
    with pytest.raises(InvalidRequest, match="already exists"):
        pledger.add(b, "two", "alice", memory_id="mem_fixed")
    assert pledger.heads() == heads  # nothing written
    with pytest.raises(NotFound):
        pledger.get("mem_nowhere")
    with pytest.raises(NotFound):
        pledger.update("mem_nowhere", "x", "alice")


def test_merge_across_partitions_is_refused_and_writes_nothing(pledger):
    by_part = _cubes_by_partition(pledger)
    (pa, (ca, *_)), (pb, (cb, *_)) = sorted(by_part.items())[:2]
    x = pledger.add(ca, "in one partition", "alice")
    y = pledger.add(cb, "in another partition", "alice")
    heads = pledger.heads()
    with pytest.raises(InvalidRequest, match="span several cubes"):
        pledger.merge([x.id, y.id], "merged", "alice")
    assert pledger.heads() == heads
    z = pledger.add(ca, "also in the first", "alice")
    merged = pledger.merge([x.id, z.id], "merged within one cube", "alice")
    assert merged.partition == pa and pledger.get(merged.id).cube == ca
    # a link may cross partitions (it is recorded on the source's cube); an unknown target is refused
    link = pledger.link(y.id, merged.id, "related", "alice")
    assert link.partition == pb
    with pytest.raises(NotFound):
        pledger.link(y.id, "mem_nowhere", "related", "alice")


def test_views_per_partition_replay_equals_a_fresh_fold(tmp_path, pledger):
    _workload(pledger)
    with PartitionedViews(pledger, kinds=["keyword", "graph"]) as views:
        views.catch_up()
        hits = views.search("walruses", k=20)
        assert {h.memory.cube for h in hits} >= {"cube0", "cube2", "cube4"}
        home = pledger.partition_of("cube2")
        mid = pledger.heads()[home] // 2
        at_mid = {h.memory_id: h.memory.text for h in views.search("walruses narwhals", cube="cube2", k=20, as_of=mid)}
    fresh_dir = tmp_path / "fresh"
    with PartitionedViews(pledger, data_dir=fresh_dir, kinds=["keyword", "graph"]) as fresh:
        fresh_hits = fresh.search("walruses narwhals", cube="cube2", k=20, as_of=mid)
    assert at_mid == {h.memory_id: h.memory.text for h in fresh_hits}
    want = {m.memory_id: m.text for m in pledger.cube_memories("cube2", as_of=mid).values()}
    assert at_mid == want


def test_search_refuses_an_offset_over_several_partitions(pledger):
    _workload(pledger)
    by_part = _cubes_by_partition(pledger)
    two = [cubes[0] for _, cubes in sorted(by_part.items())[:2]]
    with PartitionedViews(pledger, kinds=["keyword", "graph"]) as views:
        with pytest.raises(InvalidRequest, match="ISO-8601 time"):
            views.search("walruses", cube=two, as_of=3)
        stamp = pledger.get(pledger.cube_memories(two[0]).popitem()[0]).updated_at
        assert views.search("walruses", cube=two, as_of=stamp)  # a time cuts every partition


def _grep(root: Path, needle: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_forget_spanning_partitions_leaves_no_residue_in_any_partition(pledger):
    root = pledger.config.data_dir
    texts = {c: f"dana's {c} secret is platypus{i}" for i, c in enumerate(CUBES)}
    ids = {c: pledger.add(c, t, "dana", subject="dana").id for c, t in texts.items()}
    keep = pledger.add("cube0", "the office opens at eight", "ops").id
    with PartitionedViews(pledger) as views:  # every partition's views hold dana's texts now
        views.catch_up()
        assert len(views.search("platypus0 platypus1 platypus2 platypus3 platypus4 platypus5", k=20)) >= 6
    assert _grep(root, "platypus3")  # in the views (the log holds only ciphertext)
    report = forget_partitioned(pledger, "dana", "admin", reason="request 7")
    assert report.complete, report.to_dict()
    assert sorted(report.memory_ids) == sorted(ids.values())
    assert set(report.offsets) == set(range(pledger.count))  # recorded in every partition
    for k, led in enumerate(pledger.ledgers):
        last = list(led.events())[report.offsets[k]]
        assert last.type == "subject.forgotten" and last.payload["subject"] == "dana"
        assert set(last.payload["memory_ids"]) == {ids[c] for c in CUBES if pledger.partition_of(c) == k}
    for t in texts.values():
        assert _grep(root, t.split()[-1]) == []
    for mid in ids.values():
        assert pledger.get(mid).text is None
    assert pledger.get(keep).text == "the office opens at eight"
    with PartitionedViews(pledger) as views:
        assert not {h.memory_id for h in views.search("platypus0 platypus3", k=20)} & set(ids.values())
        assert [h.memory_id for h in views.search("office", k=5)][0] == keep
    again = forget_partitioned(pledger, "dana", "admin")
    assert again.already_forgotten and again.offsets == report.offsets and again.complete


def test_forget_finishes_an_erasure_interrupted_after_the_first_partition(pledger):
    from ledger.governance.forget import record_forgotten

    for c in CUBES:
        pledger.add(c, f"erin lives at {c} lane", "erin", subject="erin")
    keystore = pledger.sealer.keystore
    key_id = keystore.destroy("erin")  # the key went, then only partition 0 recorded it (a crash)
    record_forgotten(pledger.ledgers[0], "erin", key_id, None, [], "admin")
    report = forget_partitioned(pledger, "erin", "admin")
    assert report.complete
    for led in pledger.ledgers:
        assert sum(e.type == "subject.forgotten" for e in led.events()) == 1


def test_a_hold_in_any_partition_refuses_the_forget_and_keeps_the_key(pledger):
    by_part = _cubes_by_partition(pledger)
    last_part, (cube, *_) = sorted(by_part.items())[-1]
    assert last_part != 0
    for c in CUBES:
        pledger.add(c, f"frank's note in {c}", "frank", subject="frank")
    held = pledger.place_hold("legal", "litigation 12", cube=cube)
    assert list(held) == [last_part] and held[last_part].offset <= pledger.heads()[last_part]
    with pytest.raises(LegalHold):
        forget_partitioned(pledger, "frank", "admin")
    assert pledger.sealer.keystore.get("frank") is not None
    assert all(m.text is not None for c in CUBES for m in pledger.cube_memories(c).values())
    # a memory's hold stops deleting it in its own partition
    mid = pledger.add(cube, "keep me", "frank").id
    pledger.place_hold("legal", "litigation 13", memory_id=mid)
    with pytest.raises(LegalHold):
        pledger.delete(mid, "frank")
    subject_holds = pledger.place_hold("legal", "litigation 14", subject="frank")
    assert len(subject_holds) == pledger.count
    assert {k for k, _ in pledger.active_holds()} == set(range(pledger.count))


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ledger", "--data", str(data), *args], capture_output=True, text=True, timeout=300
    )


def test_cli_memory_commands_on_a_partitioned_ledger(tmp_path):
    data = tmp_path / "cli"
    config = tmp_path / "p4.toml"
    config.write_text(PARTITIONED)
    init = _cli(data, "init", "--config", str(config), "--json")
    assert init.returncode == 0, init.stderr
    assert json.loads(init.stdout)["heads"] == [-1, -1, -1, -1]
    added = {}
    for c in ("c1", "c2", "c3"):
        r = _cli(data, "add", "--cube", c, f"gina keeps a {c} iguana", "--subject", "gina", "--json")
        assert r.returncode == 0, r.stderr
        added[c] = json.loads(r.stdout)
    assert len({a["partition"] for a in added.values()}) > 1
    got = json.loads(_cli(data, "get", added["c2"]["id"], "--json").stdout)
    assert got["text"] == "gina keeps a c2 iguana" and got["partition"] == added["c2"]["partition"]
    listed = json.loads(_cli(data, "list", "--cube", "c3", "--json").stdout)
    assert [m["id"] for m in listed["memories"]] == [added["c3"]["id"]]
    hits = json.loads(_cli(data, "search", "--no-vector", "iguana", "--json").stdout)
    assert {h["id"] for h in hits} == {a["id"] for a in added.values()}
    assert _cli(data, "checkpoint").returncode == 0
    verify = json.loads(_cli(data, "verify", "--json").stdout)
    assert verify["ok"] and verify["checked"] == 1 and len(verify["heads"]) == 4
    forgot = _cli(data, "forget", "--subject", "gina", "--actor", "admin", "--json")
    assert forgot.returncode == 0, forgot.stdout + forgot.stderr
    assert json.loads(forgot.stdout)["complete"]
    assert json.loads(_cli(data, "search", "--no-vector", "iguana", "--json").stdout) == []
    assert _grep(data, "c2 iguana") == []
    assert _cli(data, "verify").returncode == 0
    # audit, provenance, lineage and log read the partition of their cube, memory or --partition
    trail = [json.loads(x) for x in _cli(data, "audit", "--cube", "c2", "--json").stdout.splitlines()]
    assert {e["action"] for e in trail} >= {"created", "read (search)"}
    assert _cli(data, "provenance", added["c2"]["id"]).returncode == 0
    assert _cli(data, "lineage", added["c2"]["id"]).returncode == 0
    part = str(added["c2"]["partition"])
    logged = [json.loads(x) for x in _cli(data, "log", "--partition", part).stdout.splitlines()]
    assert any(e["stream"] == "c2" for e in logged) and all(
        e["stream"] != "c1" for e in logged if added["c1"]["partition"] != added["c2"]["partition"]
    )
    # commands that need one log (or a scope) say so in one line and write nothing
    heads = json.loads(_cli(data, "head", "--json").stdout)["heads"]
    for args in (("audit",), ("log",), ("restore", "--cube", "c1", "--to", "0", "--actor", "a")):
        refused = _cli(data, *args)
        assert refused.returncode == 2 and "partition" in refused.stderr and len(refused.stderr.splitlines()) == 1
    branch = _cli(data, "get", added["c1"]["id"], "--branch", "b1")
    assert branch.returncode == 2 and "one partition" in branch.stderr
    assert json.loads(_cli(data, "head", "--json").stdout)["heads"] == heads


def test_cli_holds_and_erase_on_a_partitioned_ledger(tmp_path):
    data = tmp_path / "cli"
    config = tmp_path / "p4.toml"
    config.write_text(PARTITIONED)
    assert _cli(data, "init", "--config", str(config)).returncode == 0
    ids = {}
    for c in ("c1", "c2"):
        r = _cli(data, "add", "--cube", c, f"kim's {c} code is walrus{c}", "--subject", "kim", "--json")
        ids[c] = json.loads(r.stdout)
    assert ids["c1"]["partition"] != ids["c2"]["partition"]
    placed = json.loads(_cli(data, "hold", "add", "--subject", "kim", "--reason", "case 9", "--json").stdout)
    assert sorted(r["partition"] for r in placed["recorded"]) == [0, 1, 2, 3]  # a subject's hold: everywhere
    listed = json.loads(_cli(data, "hold", "list", "--json").stdout)
    assert [(h["hold_id"], h["partitions"]) for h in listed] == [(placed["hold_id"], [0, 1, 2, 3])]
    _cli(data, "search", "--no-vector", "code")  # the views hold the texts now (the query is audited)
    refused = _cli(data, "erase", ids["c2"]["id"], "--actor", "admin", "--reason", "gdpr")
    assert refused.returncode != 0 and "legal hold" in refused.stderr
    assert _grep(data, "walrusc2") != []  # nothing was erased
    released = json.loads(_cli(data, "hold", "release", placed["hold_id"], "--reason", "closed", "--json").stdout)
    assert len(released["released"]) == 4
    assert json.loads(_cli(data, "hold", "list", "--json").stdout) == []
    heads = json.loads(_cli(data, "head", "--json").stdout)["heads"]
    both = _cli(data, "erase", ids["c1"]["id"], ids["c2"]["id"], "--actor", "admin", "--reason", "gdpr")
    assert both.returncode == 2 and "one partition at a time" in both.stderr
    assert json.loads(_cli(data, "head", "--json").stdout)["heads"] == heads  # nothing written
    done = _cli(data, "erase", ids["c2"]["id"], "--actor", "admin", "--reason", "gdpr", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["complete"] and report["partitions"][0]["partition"] == ids["c2"]["partition"]
    assert _grep(data, "walrusc2") == []
    assert json.loads(_cli(data, "get", ids["c1"]["id"], "--json").stdout)["text"] == "kim's c1 code is walrusc1"
    assert _cli(data, "verify").returncode == 0


def test_as_of_a_partition_vector_or_a_global_checkpoint(pledger):
    from ledger.partitions.global_checkpoints import GlobalCheckpoints

    cubes = [cs[0] for _, cs in sorted(_cubes_by_partition(pledger).items())]
    assert len(cubes) > 1
    ids = {c: pledger.add(c, f"{c} says hello", "alice").id for c in cubes}
    signed = GlobalCheckpoints.for_config(pledger.config, pledger.plog).create(pledger.plog)
    vector = ",".join(str(h) for h in pledger.heads())
    for c, mid in ids.items():
        pledger.update(mid, f"{c} says goodbye", "alice")
    for point in (f"checkpoint:{signed.seq}", vector, list(int(x) for x in vector.split(","))):
        assert {pledger.get(m, as_of=point).text for m in ids.values()} == {f"{c} says hello" for c in cubes}
        assert [m.text for c in cubes for m in pledger.cube_memories(c, as_of=point).values()] == [
            f"{c} says hello" for c in cubes
        ]
    with PartitionedViews(pledger, kinds=["keyword", "graph"]) as views:
        then = views.search("says", cube=cubes, k=20, as_of=f"checkpoint:{signed.seq}")
        assert sorted(h.memory.text for h in then) == sorted(f"{c} says hello" for c in cubes)
        now = views.search("says", cube=cubes, k=20)
        assert sorted(h.memory.text for h in now) == sorted(f"{c} says goodbye" for c in cubes)
    with pytest.raises(InvalidRequest, match="one offset per partition"):
        pledger.get(ids[cubes[0]], as_of="1,2")
    with pytest.raises(InvalidRequest, match="not between -1 and its head"):
        pledger.get(ids[cubes[0]], as_of=",".join(["999"] * pledger.count))
    with pytest.raises(NotFound, match="no global checkpoint #9"):
        pledger.get(ids[cubes[0]], as_of="checkpoint:9")
