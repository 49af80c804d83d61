"""One call that checks everything tamper evidence offers: the hash chain and every stored
signed checkpoint against the current log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.api import Ledger
from ledger.config import Config
from ledger.governance.checkpoints import Checkpoint, CheckpointReport, Checkpoints
from ledger.governance.log_tree import log_tree


@dataclass(slots=True)
class IntegrityReport:
    """Chain verification plus checkpoint verification; ``problem`` is the first failure."""

    ok: bool
    chain: dict[str, Any]
    checkpoints: CheckpointReport | None
    problem: str | None = None
    trusted: CheckpointReport | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chain": self.chain,
            "checkpoints": self.checkpoints.to_dict() if self.checkpoints else None,
            "trusted": self.trusted.to_dict() if self.trusted else None,
            "warnings": self.warnings,
            "problem": self.problem,
        }


NO_PIN_WARNING = (
    "no checkpoint held outside this data directory was checked: truncating the log together with "
    "its checkpoint records is only detectable against a pinned copy (verify --trusted FILE)"
)


def verify_integrity(
    ledger: Ledger,
    config: Config | None = None,
    public_key: Ed25519PublicKey | None = None,
    trusted: list[Checkpoint] | None = None,
) -> IntegrityReport:
    """Recompute the chain (and the indexes reads use), then check every stored checkpoint against
    the log and the checkpoint records in it, then the ``trusted`` (pinned) checkpoints."""
    chain = ledger.log.verify()
    if not chain.ok:
        where = (
            ""
            if chain.first_bad_offset is None or str(chain.problem).startswith("offset")
            else f"offset {chain.first_bad_offset}: "
        )
        return IntegrityReport(False, chain.to_dict(), None, f"{where}{chain.problem}")
    config = config or ledger.config
    if config is None:
        return IntegrityReport(True, chain.to_dict(), None)
    cps = Checkpoints.for_config(config, ledger.log)
    tree = log_tree(ledger.log)
    report = cps.verify(ledger.log, public_key, tree)
    out = IntegrityReport(report.ok, chain.to_dict(), report, report.problem)
    if trusted is not None:
        out.trusted = cps.verify_pinned(ledger.log, trusted, public_key, tree)
        if not out.trusted.ok and out.ok:
            out.ok, out.problem = False, out.trusted.problem
    elif report.ok and report.checked == 0 and cps.signer.exists():
        out.warnings.append(
            f"a checkpoint signing key exists ({cps.signer.path}) but no checkpoint is stored or "
            "recorded in the log; " + NO_PIN_WARNING
        )
    return out
