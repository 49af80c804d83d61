"""A stand-in key store for tests: 'seals' by storing the content as JSON, forgets on demand.

The ciphertext is readable JSON on purpose, so a test that greps a view for a forgotten text
also catches a view that kept the sealed payload itself.
"""

from __future__ import annotations

import json


class FakeSealer:
    """``seal``/``open`` as the Ledger expects; ``forgotten`` subjects no longer open."""

    def __init__(self) -> None:
        self.forgotten: set[str] = set()

    def seal(self, subject: str, content: dict) -> dict:
        return {"subject": subject, "key_id": "k1", "alg": "AES-256-GCM", "nonce": "n",
                "ciphertext": json.dumps(content)}

    def seal_under(self, subjects: list[str], content: dict) -> dict:
        keys = [{"scope": "subject", "id": s, "key_id": "k1"} for s in sorted(set(subjects))]
        return {"v": 2, "alg": "AES-256-GCM", "keys": keys, "nonce": "n", "ciphertext": json.dumps(content)}

    def open(self, sealed: dict) -> dict | None:
        subjects = [k["id"] for k in sealed["keys"]] if "keys" in sealed else [sealed["subject"]]
        return None if self.forgotten & set(subjects) else json.loads(sealed["ciphertext"])
