"""One call that checks everything tamper evidence offers: the hash chain and every stored
signed checkpoint against the current log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.api import Ledger
from ledger.config import Config
from ledger.errors import InvalidRequest
from ledger.governance.checkpoints import CheckpointReport, Checkpoints


@dataclass(slots=True)
class IntegrityReport:
    """Chain verification plus checkpoint verification; ``problem`` is the first failure."""

    ok: bool
    chain: dict[str, Any]
    checkpoints: CheckpointReport | None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "chain": self.chain,
                "checkpoints": self.checkpoints.to_dict() if self.checkpoints else None, "problem": self.problem}


def verify_integrity(ledger: Ledger, config: Config | None = None,
                     public_key: Ed25519PublicKey | None = None) -> IntegrityReport:
    """Recompute the chain, then check every stored checkpoint (if the chain holds)."""
    verify = getattr(ledger.log, "verify", None)
    if verify is None:
        raise InvalidRequest("this log backend cannot be verified from here")
    chain = verify()
    if not chain.ok:
        return IntegrityReport(False, chain.to_dict(), None, f"offset {chain.first_bad_offset}: {chain.problem}")
    config = config or getattr(ledger, "config", None)
    if config is None:
        return IntegrityReport(True, chain.to_dict(), None)
    cps = Checkpoints.for_config(config)
    report = cps.verify(ledger.log, public_key)
    return IntegrityReport(report.ok, chain.to_dict(), report, report.problem)
