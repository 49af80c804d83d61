"""One filter grammar for every place that selects memories (delete, list, search, retention).

A filter is a JSON object. Each key is a field with a value (equality) or an object of operators;
``$and`` / ``$or`` take a list of filters and ``$not`` one filter::

    {"user_id": "u1", "created_at": {"$gte": "2026-01-01T00:00:00Z"},
     "$or": [{"tags": "work"}, {"topic": {"$in": ["a", "b"]}}]}

Operators: ``$eq $ne $in $nin $gt $gte $lt $lte $contains``.

Fields: the built-in ``id``, ``cube``, ``state``, ``tags``, ``subject``, ``created_by``, ``updated_by``,
``created_at``, ``updated_at``, ``created_offset``, ``updated_offset``; ``metadata.<key>`` or a bare
``<key>`` for a metadata key (``user_id``, ``agent_id``, ``run_id``, ``observed_at`` and any other).

Semantics, the same wherever a filter is evaluated:

* a list-valued field (``tags``, a merged memory's conflicting scope) matches ``$eq``/``$in`` when
  any element does, and ``$ne``/``$nin`` only when no element does; ``$contains`` tests membership
  in a list and substring in a string;
* a missing field matches only ``$ne`` and ``$nin``;
* times (``created_at``, ``updated_at``, ``observed_at`` and every field whose name ends in ``_at``)
  compare as instants: values are ISO-8601 times (``ledger.rules.timepoints.TIME_PATTERN``) or
  integer microseconds since the epoch;
* ordering operators compare numbers with numbers and strings with strings; anything else does
  not match (never an error at evaluation time, so one odd record cannot break a listing).

Limits: logical operators nest at most ``MAX_DEPTH`` deep; an object holds at most ``MAX_KEYS``
conditions, ``$and``/``$or`` at most ``MAX_KEYS`` filters, ``$in``/``$nin`` at most ``MAX_IN`` values.
``filter_json_schema()`` states all of this as JSON Schema (the HTTP API's), and the parser refuses
exactly what the schema refuses: a malformed filter gets one line naming the problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ledger.errors import InvalidRequest
from ledger.events import iso_to_us
from ledger.rules.timepoints import TIME_PATTERN, TIME_RE

OPERATORS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$contains")
LOGICAL = ("$and", "$or", "$not")
BUILTIN_FIELDS = (
    "id",
    "cube",
    "state",
    "tags",
    "subject",
    "created_by",
    "updated_by",
    "created_at",
    "updated_at",
    "created_offset",
    "updated_offset",
)
SCOPE_FIELDS = ("user_id", "agent_id", "run_id")
MAX_DEPTH = 4
MAX_KEYS = 20
MAX_IN = 1000
_MISSING = object()

Record = Mapping[str, Any]  # the fields of one memory (see ``record_of``)
Predicate = Callable[[Record], bool]


def is_time_field(name: str) -> bool:
    """Fields compared as instants."""
    return name.endswith("_at")


@dataclass(frozen=True)
class Filter:
    """A parsed filter: ``matches(record)`` and the source it was parsed from."""

    source: dict[str, Any]
    predicate: Predicate

    def matches(self, record: Record) -> bool:
        return self.predicate(record)


def parse_filter(obj: Any, what: str = "filter") -> Filter:
    """Parse (and check) a filter object; ``None`` or ``{}`` match everything."""
    if obj is None:
        obj = {}
    if not isinstance(obj, dict):
        raise InvalidRequest(f"{what} must be a JSON object, not {type(obj).__name__}")
    return Filter(obj, _node(obj, what, 0))


def _node(obj: Any, where: str, depth: int) -> Predicate:
    if depth > MAX_DEPTH:
        raise InvalidRequest(f"{where}: logical operators nest at most {MAX_DEPTH} levels deep")
    if not isinstance(obj, dict):
        raise InvalidRequest(f"{where}: expected a filter object, not {type(obj).__name__}")
    if len(obj) > MAX_KEYS:
        raise InvalidRequest(f"{where}: a filter object holds at most {MAX_KEYS} conditions")
    parts: list[Predicate] = []
    for key, value in obj.items():
        if not isinstance(key, str) or not key:
            raise InvalidRequest(f"{where}: field names must be non-empty strings")
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not 1 <= len(value) <= MAX_KEYS:
                raise InvalidRequest(f"{where}: {key} takes a list of 1 to {MAX_KEYS} filters")
            subs = [_node(v, f"{where}.{key}[{i}]", depth + 1) for i, v in enumerate(value)]
            parts.append(_all(subs) if key == "$and" else _any(subs))
        elif key == "$not":
            parts.append(_negate(_node(value, f"{where}.$not", depth + 1)))
        elif key.startswith("$"):
            raise InvalidRequest(f"{where}: unknown operator {key!r} (logical operators: {', '.join(LOGICAL)})")
        else:
            parts.append(_field(key, value, f"{where}.{key}"))
    return _all(parts)


def _negate(inner: Predicate) -> Predicate:
    return lambda r: not inner(r)


def _all(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    return lambda r: all(p(r) for p in parts)


def _any(parts: list[Predicate]) -> Predicate:
    return lambda r: any(p(r) for p in parts)


def _field(name: str, spec: Any, where: str) -> Predicate:
    prefixed = name.startswith("metadata.") and len(name) > len("metadata.")
    key = name[len("metadata.") :] if prefixed else name
    path = ("metadata", key) if prefixed or name not in BUILTIN_FIELDS else (key,)
    timed = is_time_field(name)
    ops = (
        spec
        if isinstance(spec, dict) and spec and all(isinstance(k, str) and k.startswith("$") for k in spec)
        else None
    )
    if ops is None:
        if isinstance(spec, dict):
            raise InvalidRequest(f"{where}: an object value must hold operators only ({', '.join(OPERATORS)})")
        ops = {"$eq": spec}
    tests: list[Callable[[Any], bool]] = []
    for op, operand in ops.items():
        if op not in OPERATORS:
            raise InvalidRequest(f"{where}: unknown operator {op!r} (one of {', '.join(OPERATORS)})")
        tests.append(_test(op, _operand(op, operand, timed, where)))

    def pred(r: Record) -> bool:
        value = _lookup(r, path)
        if timed and value is not _MISSING:
            value = _instant(value)
        return all(t(value) for t in tests)

    return pred


def _operand(op: str, operand: Any, timed: bool, where: str) -> Any:
    if op in ("$in", "$nin"):
        if not isinstance(operand, list) or len(operand) > MAX_IN:  # an empty list: $in matches nothing
            raise InvalidRequest(f"{where}: {op} takes a list of at most {MAX_IN} values")
        return [_scalar(v, timed, where, op) for v in operand]
    if op == "$contains":
        if isinstance(operand, dict | list) or operand is None:
            raise InvalidRequest(f"{where}: $contains takes a string, number or boolean")
        return operand  # membership or substring: never read as a time
    value = _scalar(operand, timed, where, op)
    if op in ("$gt", "$gte", "$lt", "$lte") and not _orderable(value):
        raise InvalidRequest(f"{where}: {op} compares numbers or strings, not {operand!r}")
    return value


def _scalar(v: Any, timed: bool, where: str, op: str) -> Any:
    if isinstance(v, dict | list):
        raise InvalidRequest(f"{where}: {op} takes a string, number, boolean or null, not an object or list")
    if timed and isinstance(v, float) and v.is_integer():
        v = int(v)  # JSON Schema counts 5.0 as an integer, so a time may be written so
    if timed and v is not None:
        t = _instant(v) if isinstance(v, int) or (isinstance(v, str) and TIME_RE.match(v)) else None
        if t is None or isinstance(v, bool):
            raise InvalidRequest(f"{where}: {v!r} is not a time (ISO-8601 or integer microseconds since the epoch)")
        return t
    return v


def _instant(v: Any) -> int | None:
    """A stored value as an instant (a record's time field), None when it is not one."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v)
    if isinstance(v, str):
        try:
            return iso_to_us(v)
        except (ValueError, InvalidRequest):
            return None
    return None


def _orderable(v: Any) -> bool:
    return isinstance(v, int | float | str) and not isinstance(v, bool)


def _lookup(r: Record, path: tuple[str, ...]) -> Any:
    cur: Any = r
    for p in path:
        if not isinstance(cur, Mapping) or p not in cur:
            return _MISSING
        cur = cur[p]
    return cur


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps booleans apart from 0 and 1 (JSON does)."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _less(a: Any, b: Any) -> bool | None:
    if isinstance(a, bool) or isinstance(b, bool):
        return None
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a < b
    if isinstance(a, str) and isinstance(b, str):
        return a < b
    return None


def _test(op: str, operand: Any) -> Callable[[Any], bool]:
    def elements(v: Any) -> list[Any]:
        return v if isinstance(v, list) else [v]

    if op == "$eq":
        return lambda v: v is not _MISSING and any(_same(x, operand) for x in elements(v))
    if op == "$ne":
        return lambda v: v is _MISSING or not any(_same(x, operand) for x in elements(v))
    if op == "$in":
        return lambda v: v is not _MISSING and any(_same(x, o) for x in elements(v) for o in operand)
    if op == "$nin":
        return lambda v: v is _MISSING or not any(_same(x, o) for x in elements(v) for o in operand)
    if op == "$contains":

        def contains(v: Any) -> bool:
            if isinstance(v, list):
                return any(_same(x, operand) for x in v)
            return isinstance(v, str) and isinstance(operand, str) and operand in v

        return contains

    def compare(v: Any) -> bool:
        if v is _MISSING:
            return False
        for x in elements(v):
            lt, gt = _less(x, operand), _less(operand, x)
            if lt is None:
                continue
            if (op == "$gt" and gt) or (op == "$gte" and not lt) or (op == "$lt" and lt) or (op == "$lte" and not gt):
                return True
        return False

    return compare


def fields_of(obj: Any) -> set[str]:
    """The field names a (valid) filter object mentions, ``metadata.`` prefixes removed."""
    out: set[str] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("$and", "$or") and isinstance(value, list):
                for v in value:
                    out |= fields_of(v)
            elif key == "$not":
                out |= fields_of(value)
            elif isinstance(key, str) and not key.startswith("$"):
                out.add(key[len("metadata.") :] if key.startswith("metadata.") else key)
    return out


def scope_pins(obj: Any) -> dict[str, frozenset[str]]:
    """Necessary conditions on the scope keys a (valid) filter implies: ``{key: values}`` means a
    matching memory has one of ``values`` (strings) as, or in, ``metadata[key]``. Read from the
    filter's top-level conjunction only (``$eq``, ``$in`` and plain values, also inside a top-level
    ``$and``); a non-string value pins nothing (the views index string scope ids only). The views
    narrow a filtered query by these through their scope index, then check the whole filter."""
    pins: dict[str, frozenset[str]] = {}

    def add(key: str, values: frozenset[str]) -> None:
        pins[key] = pins[key] & values if key in pins else values

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        for key, spec in node.items():
            if key == "$and" and isinstance(spec, list):
                for sub in spec:
                    walk(sub)
                continue
            name = key[len("metadata.") :] if isinstance(key, str) and key.startswith("metadata.") else key
            if name not in SCOPE_FIELDS:
                continue
            ops = spec if isinstance(spec, dict) else {"$eq": spec}
            for op, operand in ops.items():
                if op == "$eq" and isinstance(operand, str):
                    add(name, frozenset([operand]))
                elif op == "$in" and isinstance(operand, list) and all(isinstance(v, str) for v in operand):
                    add(name, frozenset(operand))

    walk(obj)
    return pins


def all_of(*filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """One filter source matching what every given filter matches (None and ``{}`` are left out):
    their keys side by side when no key repeats (no deeper nesting), else ``$and``."""
    parts = [f for f in filters if f]
    if not parts:
        return None
    merged: dict[str, Any] = {}
    for f in parts:
        if merged.keys() & f.keys():
            return {"$and": parts}
        merged.update(f)
    return merged


def conjunction(*filters: Filter) -> Filter:
    """The parsed filters' conjunction, without parsing again (so no nesting limit is crossed)."""
    parts = [f for f in filters if f.source]
    if not parts:
        return parse_filter(None)
    if len(parts) == 1:
        return parts[0]
    preds = [f.predicate for f in parts]
    return Filter({"$and": [f.source for f in parts]}, lambda r: all(p(r) for p in preds))


def from_metadata_equality(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The filter of the older equality-only ``metadata`` option: each top-level key equals its value."""
    if not metadata:
        return None
    if not isinstance(metadata, Mapping):
        raise InvalidRequest("metadata filter must be a JSON object")
    return {f"metadata.{k}": v for k, v in metadata.items()}


def record_of(state: Any) -> dict[str, Any]:
    """The filterable fields of a ``MemoryState``."""
    return {
        "id": state.memory_id,
        "cube": state.cube,
        "state": state.state,
        "tags": list(state.tags),
        "subject": state.subject,
        "created_by": state.created_by,
        "updated_by": state.updated_by,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "created_offset": state.created_offset,
        "updated_offset": state.updated_offset,
        "metadata": state.metadata,
    }


def filter_json_schemas(ref_prefix: str = "#/components/schemas/") -> dict[str, dict[str, Any]]:
    """The JSON Schema of a filter, as named schemas that refer to each other (``Filter`` is the
    root): what ``parse_filter`` accepts, no more, no less. For an OpenAPI document's components."""
    scalar = {"type": ["string", "number", "boolean", "null"]}
    time = {"anyOf": [{"type": "string", "pattern": f"^{TIME_PATTERN}$"}, {"type": "integer"}]}
    time_or_null = {"anyOf": [{"$ref": ref_prefix + "FilterTime"}, {"type": "null"}]}

    def ops(eq: dict[str, Any], ordered: dict[str, Any]) -> dict[str, Any]:
        listed = {"type": "array", "maxItems": MAX_IN, "items": eq}
        props = {"$eq": eq, "$ne": eq, "$in": listed, "$nin": listed}
        props |= {op: ordered for op in ("$gt", "$gte", "$lt", "$lte")}
        props["$contains"] = {"type": ["string", "number", "boolean"]}
        return {"type": "object", "minProperties": 1, "additionalProperties": False, "properties": props}

    out: dict[str, dict[str, Any]] = {
        "FilterTime": {**time, "description": "ISO-8601 time or integer microseconds since the epoch"},
        "FilterValue": {"anyOf": [scalar, ops(scalar, {"type": ["string", "number"]})]},
        "FilterTimeValue": {"anyOf": [time_or_null, ops(time_or_null, {"$ref": ref_prefix + "FilterTime"})]},
    }
    for depth in range(MAX_DEPTH, -1, -1):
        name = "Filter" if depth == 0 else f"Filter{depth}"
        patterns: dict[str, Any] = {
            "^[^$]": {"$ref": ref_prefix + "FilterValue"},
            "^[^$].*_at$": {"$ref": ref_prefix + "FilterTimeValue"},  # a time field satisfies both
        }
        if depth < MAX_DEPTH:
            inner = {"$ref": ref_prefix + f"Filter{depth + 1}"}
            patterns["^[$](and|or)$"] = {"type": "array", "minItems": 1, "maxItems": MAX_KEYS, "items": inner}
            patterns["^[$]not$"] = inner
        out[name] = {
            "type": "object",
            "maxProperties": MAX_KEYS,
            "patternProperties": patterns,
            "additionalProperties": False,
            "description": "a memory filter (ledger/rules/filters.py)"
            if depth == 0
            else f"a filter nested {depth} deep",
        }
    return out
