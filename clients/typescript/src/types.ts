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

/** A memory filter (ledger/rules/filters.py): field values or operators, `$and`/`$or`/`$not`,
 * e.g. {"user_id": "u1", "n": {"$gte": 2}, "$or": [...]}. */
export type Filter = { [field: string]: Json };

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
  /** Store it even when a current memory of the cube (same scope and subject) says the same. */
  allowDuplicate?: boolean;
}

/** One conversation message handed to `ingest`. */
export interface ChatMessage {
  role: "user" | "assistant" | "system" | "tool";
  content: string;
  name?: string;
  /** ISO-8601 time it was said (relative dates in it are resolved against this). */
  timestamp?: string;
}

export interface IngestOptions {
  user_id?: string;
  agent_id?: string;
  run_id?: string;
  session_id?: string;
  subject?: string;
  /** A retry with the same batch id writes nothing new (default: a fresh id per call). */
  batchId?: string;
}

/** What `ingest` appended. */
export interface Ingested {
  cube: string;
  message_ids: string[];
  offsets: number[];
  correlation_id: string;
  count: number;
  duplicate: boolean;
}

/** Messages not yet extracted, and the extractor's checkpoint. */
export interface ExtractionStatus {
  cube: string;
  extractor: string;
  track: string;
  in_process: boolean;
  checkpoint: number;
  pending: number;
  decisions: number;
  head: number;
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
