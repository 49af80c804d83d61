"""Everything one service instance shares between requests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request

from ledger.access import AccessControl
from ledger.api import Ledger
from ledger.principals import PrincipalStore
from ledger.service.metrics import ServiceMetrics
from ledger.service.ratelimit import AuditLimiter
from ledger.service.settings import Settings


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


def get_state(request: Request) -> ServiceState:
    """FastAPI dependency: the app's ``ServiceState``."""
    return request.app.state.memledger
