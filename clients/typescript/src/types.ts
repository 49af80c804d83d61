/** The JSON shapes of the memledger API (see /openapi.json). */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Metadata = { [key: string]: Json };
/** An offset of the log or an ISO-8601 time. */
export type Point = number | string;
export type LifecycleState = "generated" | "activated" | "merged" | "archived" | "frozen";
export type Role = "owner" | "writer" | "reader" | "auditor";

export interface Written {
  id: string;
  offset: number;
  event_id: string;
}

export interface Memory {
  id: string;
  cube: string;
  text: string | null;
  metadata: Metadata;
  tags: string[];
  state: LifecycleState;
  version: number;
  created_offset: number;
  updated_offset: number;
  created_at: string;
  updated_at: string;
  created_by: string;
  updated_by: string;
  subject: string | null;
  sealed: boolean;
  forgotten: boolean;
  sources: string[];
  merged_into: string | null;
  provenance: number[];
}

export interface Hit {
  id: string;
  score: number;
  cube: string;
  text: string | null;
  state: LifecycleState;
  metadata: Metadata;
  tags: string[];
  version: number;
  valid_from: number;
  valid_to: number | null;
  updated_at: string;
  updated_by: string;
  provenance: { offsets: number[]; event_ids: string[] };
  from_branch: boolean;
}

export interface Page {
  cube: string;
  as_of: number | null;
  memories: Memory[];
  /** The opaque cursor of the next page (null: the last page); next_after is the same value. */
  next_cursor: string | null;
  next_after: string | null;
}

/** A memory filter (ledger/rules/filters.py): {"user_id": "u1", "n": {"$gte": 2}, "$or": [...]}. */
export type Filter = { [field: string]: unknown };

export interface AuditEntry {
  offset: number;
  time: string;
  actor: string;
  type: string;
  stream: string;
  action: string;
  memory_ids: string[];
  details: Metadata;
  event_id: string;
}

export interface LogEvent {
  offset: number;
  stream: string;
  version: number;
  event_id: string;
  type: string;
  actor: string;
  payload: Metadata;
  hash: string;
  prev_hash: string;
  [key: string]: Json;
}

export interface AddOptions {
  metadata?: Metadata;
  tags?: string[];
  subject?: string;
  /** A retry with the same key writes nothing new (default: a fresh key per call). */
  idempotencyKey?: string;
}

export interface SearchOptions {
  cubes?: string[];
  k?: number;
  asOf?: Point;
  branch?: string;
  states?: LifecycleState[];
  allStates?: boolean;
  metadata?: Metadata;
  /** Filtered inside the views: k hits whenever k matching memories match the query. */
  where?: Filter;
  /** Drop hits whose fused score is lower (relative: each retriever's best hit contributes 1.0). */
  minScore?: number;
}

/** A memory filter (`ledger/rules/filters.py`): field values or operators, `$and`/`$or`/`$not`. */
export type Filter = { [key: string]: Json };

export interface Deleted {
  deleted: string[];
  count: number;
  offsets: number[];
  correlation_id: string | null;
}

export interface ErasureReport {
  erasure_id: string;
  erased: string[];
  derived: string[];
  keys_destroyed: number;
  offsets: number[];
  already_erased: boolean;
  residue: string[];
  problems: string[];
  complete: boolean;
  [key: string]: Json;
}

export interface LineageEdge {
  parent: string;
  child: string;
  relation: string;
  offset: number;
  cube: string;
}

export interface Lineage {
  memory_id: string;
  as_of: number;
  sources: LineageEdge[];
  descendants: LineageEdge[];
  artifacts: Json[];
  truncated: boolean;
}

export interface Hold {
  hold_id: string;
  scope: "cube" | "subject" | "memory";
  target: string;
  reason: string;
  placed_by: string;
  placed_at: string;
  offset: number;
}
