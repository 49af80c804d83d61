"""A stand-in key ring for tests: 'seals' by storing the content as JSON, forgets and erases on demand.

The ciphertext is readable JSON on purpose (``readable=False``: base64 of it), so a test that greps a
view for a forgotten text also catches a view that kept the sealed payload itself. It seals only
memories that have a subject (``seals_every_memory`` is False), unless ``every_memory=True``, when
each memory also gets a key of its own, as the real key ring does.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from ledger.governance.cipher import KeyRef


class FakeSealer:
    """``subject_ref``/``memory_ref``/``seal_with``/``seal_under``/``open`` as the Ledger expects."""

    def __init__(self, readable: bool = True, every_memory: bool = False) -> None:
        self.forgotten: set[str] = set()  # subjects whose key is gone
        self.erased: set[str] = set()  # memory key ids that were destroyed
        self.readable = readable
        self.seals_every_memory = every_memory
        self._n = 0

    def subject_ref(self, subject: str) -> KeyRef:
        return KeyRef("subject", subject, f"k-{subject}")

    def memory_ref(self, memory_id: str) -> KeyRef:
        self._n += 1
        return KeyRef("memory", memory_id, f"m{self._n}")

    def seal_with(self, refs: Sequence[KeyRef], content: dict) -> dict:
        keys = [r.to_dict() for r in sorted(set(refs), key=lambda r: (r.scope, r.id, r.key_id))]
        text = json.dumps(content)
        body = text if self.readable else base64.b64encode(text.encode()).decode()
        return {"v": 2, "alg": "AES-256-GCM", "keys": keys, "nonce": "n", "ciphertext": body}

    def seal_under(self, subjects: Sequence[str], content: dict) -> dict:
        return self.seal_with([self.subject_ref(s) for s in subjects], content)

    def seal(self, subject: str, content: dict) -> dict:  # the v1 form of older events
        return {
            "subject": subject,
            "key_id": f"k-{subject}",
            "alg": "AES-256-GCM",
            "nonce": "n",
            "ciphertext": json.dumps(content),
        }

    def memory_keys(self, key_ids: Sequence[str]) -> dict[str, bytes]:
        return {}  # stand-in keys are not secret: nothing to carry

    def install_memory_keys(self, keys: Sequence[tuple[str, bytes]]) -> int:
        return 0

    def open(self, sealed: dict) -> Any:
        keys = sealed["keys"] if "keys" in sealed else [{"scope": "subject", "id": sealed["subject"], "key_id": ""}]
        if any(k["scope"] == "subject" and k["id"] in self.forgotten for k in keys):
            return None
        if any(k["scope"] == "memory" and k["key_id"] in self.erased for k in keys):
            return None
        body = sealed["ciphertext"]
        return json.loads(body if body.lstrip().startswith("{") else base64.b64decode(body))
