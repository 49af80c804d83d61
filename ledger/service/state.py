"""Everything one service instance shares between requests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response

from ledger.access import AccessControl
from ledger.api import Ledger
from ledger.principals import PrincipalStore
from ledger.service.metrics import ServiceMetrics
from ledger.service.ratelimit import AuditLimiter
from ledger.service.settings import Settings

if TYPE_CHECKING:
    from ledger.service.partition_routing import PartitionRouter


@dataclass
class ServiceState:
    """The ledger, principals, access control and metrics behind one app."""

    data_dir: Path
    ledger: Ledger
    principals: PrincipalStore
    access: AccessControl
    settings: Settings
    metrics: ServiceMetrics
    unauth_limiter: AuditLimiter
    # name -> callable returning the view's checkpoint offset (projection lag = head - checkpoint)
    views: dict[str, Callable[[], int]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    # on a partitioned ledger: the partition this state serves, where its search views live, and
    # (on the state routes of every partition get: ``PartitionRouter.fanout``) the router
    partition: int | None = None
    views_dir: Path | None = None
    partitioned: PartitionRouter | None = None


PARTITION_HEADER = "X-Memledger-Partition"


async def get_state(request: Request, response: Response) -> ServiceState:
    """FastAPI dependency: the app's ``ServiceState``. On a partitioned ledger, the state of the
    request's partition (``ledger.service.partition_routing``), named in the response's
    ``X-Memledger-Partition`` header (the offsets in the response are that partition's)."""
    router = getattr(request.app.state, "memledger_partitions", None)
    if router is None:
        return request.app.state.memledger
    state, partition = await router.state_for(request)
    if partition is not None:
        response.headers[PARTITION_HEADER] = str(partition)
    return state
