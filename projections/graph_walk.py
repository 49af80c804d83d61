"""Multi-hop neighbourhood scoring shared by every graph view (embedded and Neo4j)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence

from projections.base import Hit

HOP_DECAY = 0.5  # each further hop counts half as much as the one before


def spread(
    seeds: Sequence[str],
    one_hop: Callable[[list[str]], Mapping[str, float]],
    states_of: Callable[[list[str]], Mapping[str, str]],
    hops: int,
    limit: int,
    states: Iterable[str] | None = None,
) -> list[Hit]:
    """Memories related to ``seeds``, strongest first (seeds excluded).

    ``one_hop(frontier)`` gives each neighbour's strength from the frontier; ``states_of(ids)``
    gives the lifecycle state of those ids that exist (only asked when ``states`` filters).
    Each hop expands the ``limit`` best memories found so far, with ``HOP_DECAY`` per hop.
    """
    seeds = list(dict.fromkeys(seeds))
    if not seeds or limit <= 0 or hops <= 0:
        return []
    allowed = None if states is None else set(states)
    scores: dict[str, float] = defaultdict(float)
    seen = set(seeds)
    frontier, decay = seeds, 1.0
    for _ in range(hops):
        for mid, strength in one_hop(frontier).items():
            if mid not in seen:
                scores[mid] += decay * strength
        if allowed is not None:
            live = states_of(list(scores))
            for mid in list(scores):
                if live.get(mid) not in allowed:
                    del scores[mid]
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        frontier = [m for m, _ in ranked if m not in seen]
        seen.update(frontier)
        decay *= HOP_DECAY
        if not frontier:
            break
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
