"""The service on a partitioned ledger: each request runs on the state of one partition.

A partitioned app holds one ``ServiceState`` per partition: the partition's ``Ledger``, an
``AccessControl`` folded from that partition's log (a cube's grants live on its stream, hence in
its partition), its search views (``<data>/partitions/p<k>``), shared principals, settings and
metrics. ``get_state`` picks the partition of a request from

- a ``cube`` path parameter (every ``/v1/cubes/{cube}/…`` route), or a ``memory_id`` one (every
  ``/v1/memories/{memory_id}/…`` route and the knowledge audit): its home partition;
- the JSON body's ``cube`` (adding a memory, creating a cube) or first ``sources`` id (merge);
- nothing, for routes that do not touch the ledger (health, metrics, principals): partition 0.

Routes that span partitions have a fan-out form (search, forgetting a subject, legal holds, the
cube list, the head, verify): they get a copy of partition 0's state with ``partitioned`` set
(``PartitionRouter.fanout``) and run over every partition. Every other route (the log, its
stream, the global audit, branches, the scheduler, checkpoints and proofs, subject export) answers
422 with one line saying it needs a ledger of one partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fastapi import Request

from ledger.errors import InvalidRequest
from ledger.partitions.partitioned_ledger import PartitionedLedger

if TYPE_CHECKING:
    from ledger.service.state import ServiceState

# routes that read or write no ledger state: any partition's state serves them
NO_LEDGER = frozenset(
    {
        "/healthz",
        "/metrics",
        "/v1/whoami",
        "/v1/principals",
        "/v1/principals/{name}",
        "/v1/principals/{name}/rotate",
        "/docs",
        "/openapi.json",
    }
)
# routes with a fan-out form over every partition (they check ``state.partitioned``)
FAN_OUT = frozenset(
    {
        "/v1/search",
        "/v1/subjects/{subject}/forget",
        "/v1/holds",
        "/v1/holds/{hold_id}/release",
        "/v1/cubes",
        "/v1/head",
        "/v1/verify",
    }
)
# POST routes whose JSON body names the cube
BODY_CUBE = frozenset({("POST", "/v1/memories"), ("POST", "/v1/cubes")})
# routes on a cube or a memory that still need a ledger of one partition (chat opens the root views)
NEEDS_ONE = frozenset({"/v1/cubes/{cube}/chat"})


@dataclass
class PartitionRouter:
    """The partition states of a partitioned app, and which one a request runs on."""

    pledger: PartitionedLedger
    states: list[ServiceState]
    # what routes of no partition or of every partition get: partition 0's state with ``partitioned``
    fanout: ServiceState = field(init=False)

    def __post_init__(self) -> None:
        self.fanout = replace(self.states[0], partitioned=self)

    async def state_for(self, request: Request) -> tuple[ServiceState, int | None]:
        """The state ``request`` runs on, and its partition (None: a route of no partition or of
        every partition, which gets partition 0's state); see the module docstring."""
        part = await self.partition_for(request)
        return (self.fanout if part is None else self.states[part]), part

    async def partition_for(self, request: Request) -> int | None:
        """The partition ``request`` runs on (None: partition 0's state, for a route that touches no
        ledger or spans every partition); refuses a route that needs a ledger of one partition."""
        route = request.scope.get("route")
        template = getattr(route, "path", request.url.path)
        params = request.path_params
        if template in NO_LEDGER or template.startswith("/docs"):
            return None
        if template in FAN_OUT and not (template == "/v1/cubes" and request.method == "POST"):
            return None
        if template in NEEDS_ONE:
            raise self.refuse(request)
        cube = params.get("cube")
        if isinstance(cube, str):
            return self.pledger.partition_of(cube)
        memory_id = params.get("memory_id")
        if isinstance(memory_id, str) and template.startswith(("/v1/memories/", "/v1/audit/knowledge/")):
            return self.pledger.home_of(memory_id)
        if (request.method, template) in BODY_CUBE:
            named = (await _body(request)).get("cube")
            return self.pledger.partition_of(named) if isinstance(named, str) else None
        if template == "/v1/memories/merge":
            sources = (await _body(request)).get("sources")
            if isinstance(sources, list) and sources and isinstance(sources[0], str):
                return self.pledger.home_of(sources[0])
            return None  # the body's validation reports what is wrong with it
        raise self.refuse(request)

    def refuse(self, request: Request) -> InvalidRequest:
        return InvalidRequest(
            f"{request.method} {request.url.path} needs a ledger of one partition; this ledger has "
            f"{self.pledger.count} partitions (docs/service.md, 'On a partitioned ledger')"
        )


async def _body(request: Request) -> dict[str, Any]:
    """The request's JSON object (parsed once; anything else is left to the body's validation)."""
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
