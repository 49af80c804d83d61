"""Loads the versioned JSON Schemas in ``schemas/events`` and validates and upcasts payloads."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson

from ledger.errors import SchemaViolation, UnknownEventType
from ledger.events import Event
from schemas import SCHEMA_DIR

_NAME = re.compile(r"^(?P<type>[a-z_]+\.[a-z_]+)\.v(?P<version>\d+)\.json$")

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class SchemaRegistry:
    """Every known (type, version) schema, compiled once; plus upcasters between versions."""

    def __init__(self, directory: Path | None = None):
        self._validators: dict[tuple[str, int], Callable[[Any], Any]] = {}
        self._schemas: dict[tuple[str, int], dict[str, Any]] = {}
        self._latest: dict[str, int] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        for path in sorted((directory or SCHEMA_DIR / "events").glob("*.json")):
            m = _NAME.match(path.name)
            if not m:
                continue
            key = (m["type"], int(m["version"]))
            schema = orjson.loads(path.read_bytes())
            self._schemas[key] = schema
            self._validators[key] = fastjsonschema.compile(schema)
            self._latest[key[0]] = max(self._latest.get(key[0], 0), key[1])
        from ledger.upcasters import UPCASTERS

        self._upcasters.update(UPCASTERS)

    def types(self) -> list[str]:
        """All known event types."""
        return sorted(self._latest)

    def latest(self, event_type: str) -> int:
        """The current schema version of ``event_type``."""
        try:
            return self._latest[event_type]
        except KeyError:
            raise UnknownEventType(event_type, 0, f"unknown event type {event_type!r}") from None

    def schema(self, event_type: str, version: int) -> dict[str, Any]:
        """The JSON Schema document of one (type, version)."""
        return self._schemas[(event_type, version)]

    def validate(self, event_type: str, version: int, payload: Any, index: int | None = None) -> None:
        """Raise :class:`SchemaViolation` unless ``payload`` matches the schema."""
        validator = self._validators.get((event_type, version))
        if validator is None:
            if event_type in self._latest:
                raise UnknownEventType(event_type, version, f"no schema version {version}", index)
            raise UnknownEventType(event_type, version, f"unknown event type {event_type!r}", index)
        try:
            validator(payload)
        except fastjsonschema.JsonSchemaValueException as exc:  # the payload breaks the schema
            raise SchemaViolation(event_type, version, str(exc.message), index) from None
        except fastjsonschema.JsonSchemaException as exc:  # any other refusal of the validator
            raise SchemaViolation(event_type, version, str(exc), index) from None

    def upcast(self, event: Event) -> Event:
        """Return ``event`` with its payload raised to the latest schema version of its type."""
        latest = self._latest.get(event.type)
        if latest is None or event.schema_version >= latest:
            return event
        payload, version = event.payload, event.schema_version
        while version < latest:
            step = self._upcasters.get((event.type, version))
            if step is None:
                raise UnknownEventType(event.type, version, f"no upcaster from v{version}")
            payload, version = step(payload), version + 1
        return replace(event, payload=payload, schema_version=version)


_DEFAULT: SchemaRegistry | None = None


def default_registry() -> SchemaRegistry:
    """The process-wide registry built from the packaged schemas."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = SchemaRegistry()
    return _DEFAULT
