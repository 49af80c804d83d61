"""Property: a branch behaves exactly like an independent ledger that replayed main up to the fork."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.api import Ledger
from ledger.errors import LedgerError
from ledger.timemachine.branches import Branches
from tests.ledgers import make_ledger

IDS = ["m0", "m1", "m2", "m3"]
op = st.tuples(
    st.sampled_from(["add", "update", "move"]),
    st.sampled_from(IDS),
    st.sampled_from(["generated", "activated", "archived", "frozen"]),
    st.integers(0, 99),
)


def _apply(led: Ledger, o: tuple[str, str, str, int]) -> str:
    kind, mid, state, n = o
    try:
        if kind == "add":
            led.add("c", f"text {n}", "p", memory_id=mid)
        elif kind == "update":
            led.update(mid, f"text {n}", "p")
        else:
            led.change_state(mid, state, "p")
    except LedgerError as exc:
        return type(exc).__name__
    return "ok"


def _view(led: Ledger) -> dict[str, tuple]:
    if led.log.stream_version("c") == 0:
        return {}
    return {m: (s.text, s.state, s.version) for m, s in led.cube_memories("c").items()}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=st.lists(op, max_size=8), after=st.lists(st.tuples(st.booleans(), op), max_size=16))
def test_branch_equals_an_independent_replay(before, after):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        main = make_ledger(root / "main.sqlite")
        ref_main = make_ledger(root / "ref_main.sqlite")
        ref_branch = make_ledger(root / "ref_branch.sqlite")
        for o in before:
            results = {_apply(main, o), _apply(ref_main, o), _apply(ref_branch, o)}
            assert len(results) == 1
        branches = Branches(main)
        branches.create("b", None, "p")
        br = branches.ledger("b")
        for on_branch, o in after:
            real, ref = (br, ref_branch) if on_branch else (main, ref_main)
            assert _apply(real, o) == _apply(ref, o)
        assert _view(main) == _view(ref_main)
        assert _view(br) == _view(ref_branch)
        assert br.log.verify().ok and main.log.verify().ok
        for led in (main, ref_main, ref_branch):
            led.log.close()
        branches.close()
