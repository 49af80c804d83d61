"""Upcasters: pure functions that raise a payload from schema version N to N+1."""

from __future__ import annotations

from typing import Any


def memory_added_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 stored the text as ``content``; v2 calls it ``text`` and adds metadata, tags and state."""
    return {
        "memory_id": payload["memory_id"],
        "text": payload["content"],
        "metadata": {},
        "tags": [],
        "state": "generated",
    }


UPCASTERS = {
    ("memory.added", 1): memory_added_v1_to_v2,
}


def scheduler_decided_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v2 adds the log prefix a decision was computed from; v1 decisions did not record it."""
    return {**payload, "basis_offset": None, "basis_time_us": None}


UPCASTERS[("scheduler.decided", 1)] = scheduler_decided_v1_to_v2


def identity(payload: dict[str, Any]) -> dict[str, Any]:
    """A version that only widened the schema (a new optional field or sealed form): same payload."""
    return payload


def subject_forgotten_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v2 lists the memories sealed under the subject's key; v1 events did not (views purge by subject)."""
    return {**payload, "memory_ids": []}


# v3 / v2 accept the v2 sealed form (several key components) and lineage fields
for _type, _version in (("memory.added", 2), ("memory.updated", 1), ("memory.merged", 1), ("memory.restored", 1)):
    UPCASTERS[(_type, _version)] = identity
UPCASTERS[("subject.forgotten", 1)] = subject_forgotten_v1_to_v2
UPCASTERS[("memory.restored", 2)] = identity  # v3 adds an optional reason
UPCASTERS[("scheduler.decided", 2)] = identity  # v3 adds retention decisions (expire, hold)
