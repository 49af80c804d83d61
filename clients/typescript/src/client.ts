/**
 * MemledgerClient: the memledger HTTP API as typed methods (fetch-based; Node 18+ and browsers).
 *
 *   const client = new MemledgerClient("http://127.0.0.1:8080", { token: process.env.MEMLEDGER_TOKEN });
 *   const w = await client.add("alice", "Alice prefers green tea", { metadata: { user_id: "alice" } });
 *   const hits = await client.search("what does Alice drink?", { cubes: ["alice"], k: 5 });
 *
 * Mirrors the Python `ledger.client.MemledgerClient`: errors by status and type, retries only where
 * a repeat cannot write twice (reads, searches, adds under an idempotency key), per-request timeouts.
 */
import { errorFromResponse, MemledgerError, NotFound, ServiceUnreachable } from "./errors.js";
import type {
  AddOptions,
  AuditEntry,
  ChatMessage,
  ExtractionStatus,
  IngestOptions,
  Ingested,
  Deleted,
  ErasureReport,
  Filter,
  Hit,
  Hold,
  Json,
  Lineage,
  LifecycleState,
  LogEvent,
  Memory,
  Metadata,
  Page,
  Point,
  Role,
  SearchOptions,
  Written,
} from "./types.js";

export interface ClientOptions {
  token?: string;
  /** Per-request timeout in milliseconds (default 30,000). */
  timeoutMs?: number;
  /** Attempts per call (default 3). */
  attempts?: number;
  fetch?: typeof fetch;
}

type Query = Record<string, string | number | boolean | string[] | undefined | null>;

interface Call {
  method: string;
  path: string;
  query?: Query;
  body?: unknown;
  retrySafe?: boolean;
}

const seg = (value: string): string => encodeURIComponent(value);
const point = (value: Point | undefined): string | undefined => (value === undefined ? undefined : String(value));

function newKey(): string {
  return `mlc-${globalThis.crypto.randomUUID()}`;
}

export class MemledgerClient {
  readonly baseUrl: string;
  private readonly token?: string;
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly fetchImpl: typeof fetch;

  constructor(baseUrl: string, options: ClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.attempts = options.attempts ?? 3;
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  private url(path: string, query?: Query): string {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined || value === null) continue;
      for (const item of Array.isArray(value) ? value : [value]) params.append(key, String(item));
    }
    const qs = params.toString();
    return `${this.baseUrl}${path}${qs ? `?${qs}` : ""}`;
  }

  private headers(json: boolean): Record<string, string> {
    const out: Record<string, string> = { Accept: "application/json" };
    if (json) out["Content-Type"] = "application/json";
    if (this.token) out.Authorization = `Bearer ${this.token}`;
    return out;
  }

  private async send(call: Call): Promise<Response> {
    const body = call.body === undefined ? undefined : JSON.stringify(call.body);
    for (let attempt = 1; ; attempt++) {
      let response: Response;
      try {
        response = await this.fetchImpl(this.url(call.path, call.query), {
          method: call.method,
          headers: this.headers(body !== undefined),
          body,
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (error) {
        if (call.retrySafe && attempt < this.attempts) {
          await sleep(100 * 2 ** (attempt - 1));
          continue;
        }
        throw new ServiceUnreachable("ServiceUnreachable", `memledger unreachable (${call.method} ${call.path}): ${error}`, 0);
      }
      if ([502, 503, 504].includes(response.status) && call.retrySafe && attempt < this.attempts) {
        await sleep(100 * 2 ** (attempt - 1));
        continue;
      }
      if (response.status >= 400) {
        const text = await response.text();
        let parsed: unknown = null;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = null;
        }
        throw errorFromResponse(response.status, parsed);
      }
      return response;
    }
  }

  private async json<T>(call: Call): Promise<T> {
    return (await (await this.send(call)).json()) as T;
  }

  // -- memories ---------------------------------------------------------------------------------
  /** Add a memory (the cube is created on first use, owned by the caller); safe to retry. */
  async add(cube: string, text: string, options: AddOptions = {}): Promise<Written> {
    const body = {
      cube,
      text,
      metadata: options.metadata,
      tags: options.tags,
      subject: options.subject,
      idempotency_key: options.idempotencyKey ?? newKey(),
      allow_duplicate: options.allowDuplicate ? true : undefined,
    };
    return this.creatingCube<Written>({ method: "POST", path: "/v1/memories", body, retrySafe: true }, cube);
  }

  /** Run `call`; if its cube does not exist, create it (owned by the caller) and run it again. */
  private async creatingCube<T>(call: Call, cube: string): Promise<T> {
    try {
      return await this.json<T>(call);
    } catch (error) {
      if (!(error instanceof NotFound)) throw error;
      try {
        await this.createCube(cube);
      } catch (taken) {
        if (taken instanceof MemledgerError && taken.status === 409) throw error; // not the caller's cube
        throw taken;
      }
      return this.json<T>(call);
    }
  }

  // -- conversations ----------------------------------------------------------------------------
  /** Append conversation messages verbatim in one batch (the cube is created on first use); facts are
   * extracted later, from the log (`messagesStatus` says how many wait). */
  ingest(cube: string, messages: ChatMessage[], options: IngestOptions = {}): Promise<Ingested> {
    const { batchId, ...scope } = options;
    const body = { messages, ...scope, batch_id: batchId ?? newKey() };
    return this.creatingCube<Ingested>({ method: "POST", path: `/v1/cubes/${seg(cube)}/messages`, body, retrySafe: true }, cube);
  }

  /** Messages of `cube` not yet extracted, and the extractor's checkpoint. */
  messagesStatus(cube: string): Promise<ExtractionStatus> {
    return this.json({ method: "GET", path: `/v1/cubes/${seg(cube)}/messages/status`, retrySafe: true });
  }

  /** Write a new version of a memory; `expectedVersion` refuses to overwrite a concurrent change. */
  update(
    memoryId: string,
    text: string,
    options: { metadata?: Metadata; expectedVersion?: number; reason?: string } = {},
  ): Promise<Written> {
    const body = { text, metadata: options.metadata, expected_version: options.expectedVersion, reason: options.reason };
    return this.json({ method: "PUT", path: `/v1/memories/${seg(memoryId)}`, body });
  }

  /** A memory as of an offset or ISO-8601 time (default: now); the read is audited. */
  get(memoryId: string, asOf?: Point): Promise<Memory> {
    return this.json({ method: "GET", path: `/v1/memories/${seg(memoryId)}`, query: { as_of: point(asOf) }, retrySafe: true });
  }

  /** Every version of a memory, oldest first. */
  async history(memoryId: string, asOf?: Point): Promise<Memory[]> {
    const out = await this.json<{ versions: Memory[] }>({
      method: "GET",
      path: `/v1/memories/${seg(memoryId)}/history`,
      query: { as_of: point(asOf) },
      retrySafe: true,
    });
    return out.versions;
  }

  /** Move a memory through its lifecycle. */
  changeState(memoryId: string, to: LifecycleState, reason?: string): Promise<Written> {
    return this.json({ method: "POST", path: `/v1/memories/${seg(memoryId)}/state`, body: { to, reason } });
  }

  /** One page of a cube's memories matching `where`, in creation order (continue with `after: page.next_cursor`). */
  listMemories(
    cube: string,
    options: { asOf?: Point; state?: LifecycleState; limit?: number; after?: string; where?: Filter } = {},
  ): Promise<Page> {
    if (options.where) {
      const where = options.state ? { $and: [options.where, { state: options.state }] } : options.where;
      const body = { where, as_of: point(options.asOf), limit: options.limit, after: options.after };
      return this.json({ method: "POST", path: `/v1/cubes/${seg(cube)}/list`, body, retrySafe: true });
    }
    const query = { as_of: point(options.asOf), state: options.state, limit: options.limit, after: options.after };
    return this.json({ method: "GET", path: `/v1/cubes/${seg(cube)}/memories`, query, retrySafe: true });
  }

  /** Hybrid search of the named cubes (default: every readable cube); audited. */
  async search(query: string, options: SearchOptions = {}): Promise<Hit[]> {
    const body = {
      query,
      cubes: options.cubes,
      k: options.k,
      as_of: point(options.asOf),
      branch: options.branch,
      states: options.states,
      all_states: options.allStates,
      metadata: options.metadata,
      where: options.where,
      min_score: options.minScore,
    };
    const out = await this.json<{ hits: Hit[] }>({ method: "POST", path: "/v1/search", body, retrySafe: true });
    return out.hits;
  }

  /** Merge memories of one cube into a new one; the sources become `merged`. */
  merge(sources: string[], text: string, options: { metadata?: Metadata; reason?: string } = {}): Promise<Written> {
    return this.json({ method: "POST", path: "/v1/memories/merge", body: { sources, text, ...options } });
  }

  /** Record a directed edge between two memories. */
  link(source: string, target: string, relation: string): Promise<Written> {
    return this.json({ method: "POST", path: `/v1/memories/${seg(source)}/links`, body: { target, relation } });
  }

  // -- deletion, erasure, redaction, lineage ----------------------------------------------------
  /**
   * Delete a memory: a `memory.deleted` tombstone. Reads as of an earlier point still see it and
   * `restore` can undo it; `erase` destroys the text. `LegalHold` while a hold covers it.
   */
  delete(memoryId: string, options: { reason?: string; expectedVersion?: number } = {}): Promise<Written> {
    const body = { reason: options.reason, expected_version: options.expectedVersion };
    return this.json({ method: "DELETE", path: `/v1/memories/${seg(memoryId)}`, body });
  }

  /** Delete every memory of a cube matching `where` (the filter grammar; none: all) in one atomic batch. */
  deleteWhere(cube: string, options: { where?: Filter; reason?: string } = {}): Promise<Deleted> {
    return this.json({ method: "POST", path: `/v1/cubes/${seg(cube)}/delete`, body: options });
  }

  /**
   * Erase a memory for good, and every memory derived from it: its keys are destroyed, so its text is
   * unreadable everywhere, the past included. Irreversible; a reason is required. A repeat is safe.
   */
  erase(memoryId: string, reason: string): Promise<ErasureReport> {
    return this.json({ method: "POST", path: `/v1/memories/${seg(memoryId)}/erase`, body: { reason }, retrySafe: true });
  }

  /** Erase every memory of a cube matching `where` (none: all), deleted ones too. Irreversible. */
  eraseWhere(cube: string, reason: string, where?: Filter): Promise<ErasureReport> {
    return this.json({ method: "POST", path: `/v1/cubes/${seg(cube)}/erase`, body: { reason, where } });
  }

  /** Mask `[start, end)` character spans of the current text and erase every earlier version's text. */
  redact(memoryId: string, spans: [number, number][], reason: string): Promise<ErasureReport> {
    const body = { spans: spans.map(([start, end]) => ({ start, length: end - start })), reason };
    return this.json({ method: "POST", path: `/v1/memories/${seg(memoryId)}/redact`, body });
  }

  /** The memories a memory was merged or derived from, and those derived from it. */
  lineage(memoryId: string, options: { asOf?: Point; depth?: number } = {}): Promise<Lineage> {
    const query = { as_of: point(options.asOf), depth: options.depth };
    return this.json({ method: "GET", path: `/v1/memories/${seg(memoryId)}/lineage`, query, retrySafe: true });
  }

  // -- legal holds, exports (holds and subject exports: admin principals only) -----------------
  /** Place a legal hold on exactly one of a cube, a data subject or a memory. */
  placeHold(target: { cube: string } | { subject: string } | { memoryId: string }, reason: string): Promise<Hold> {
    const body = "memoryId" in target ? { memory_id: target.memoryId, reason } : { ...target, reason };
    return this.json({ method: "POST", path: "/v1/holds", body });
  }

  /** The active legal holds. */
  async holds(): Promise<Hold[]> {
    return (await this.json<{ holds: Hold[] }>({ method: "GET", path: "/v1/holds", retrySafe: true })).holds;
  }

  /** End a legal hold. */
  releaseHold(holdId: string, reason?: string): Promise<{ hold_id: string; offset: number }> {
    return this.json({ method: "POST", path: `/v1/holds/${seg(holdId)}/release`, body: { reason } });
  }

  /** The cube's verifiable export: a header, then every event with its Merkle inclusion proof. */
  export(cube: string, asOf?: Point): Promise<Json[]> {
    return this.lines({ method: "GET", path: `/v1/cubes/${seg(cube)}/export`, query: { as_of: point(asOf) }, retrySafe: true });
  }

  /** Everything about a data subject, verifiable offline (an access request; the reads are recorded). */
  subjectExport(subject: string, sign = false): Promise<Json[]> {
    return this.lines({ method: "GET", path: `/v1/subjects/${seg(subject)}/export`, query: { sign }, retrySafe: true });
  }

  private async lines(call: Call): Promise<Json[]> {
    const text = await (await this.send(call)).text();
    return text.split("\n").filter((line) => line.trim()).map((line) => JSON.parse(line) as Json);
  }

  // -- cubes, access, audit ---------------------------------------------------------------------
  createCube(cube: string, options: { visibility?: "private" | "shared"; metadata?: Metadata } = {}): Promise<Json> {
    return this.json({ method: "POST", path: "/v1/cubes", body: { cube, ...options } });
  }

  async cubes(): Promise<{ cube: string; roles: Role[] }[]> {
    return (await this.json<{ cubes: { cube: string; roles: Role[] }[] }>({ method: "GET", path: "/v1/cubes", retrySafe: true })).cubes;
  }

  grant(cube: string, principal: string, role: Role): Promise<Json> {
    return this.json({ method: "POST", path: `/v1/cubes/${seg(cube)}/grants`, body: { principal, role }, retrySafe: true });
  }

  revoke(cube: string, principal: string, role: Role): Promise<Json> {
    return this.json({ method: "DELETE", path: `/v1/cubes/${seg(cube)}/grants/${seg(principal)}/${seg(role)}` });
  }

  whoami(): Promise<{ principal: string; admin: boolean; cubes: Record<string, Role[]> }> {
    return this.json({ method: "GET", path: "/v1/whoami", retrySafe: true });
  }

  head(): Promise<{ offset: number; hash: string }> {
    return this.json({ method: "GET", path: "/v1/head", retrySafe: true });
  }

  /** Who created, changed, read or was refused what (content-free). */
  async audit(filter: { cube?: string; memory?: string; actor?: string; types?: string[]; limit?: number }): Promise<AuditEntry[]> {
    const query = { cube: filter.cube, memory: filter.memory, actor: filter.actor, type: filter.types, limit: filter.limit };
    return (await this.json<{ entries: AuditEntry[] }>({ method: "GET", path: "/v1/audit", query, retrySafe: true })).entries;
  }

  // -- branches ---------------------------------------------------------------------------------
  createBranch(name: string, options: { at?: Point; fromBranch?: string } = {}): Promise<Json> {
    return this.json({ method: "POST", path: "/v1/branches", body: { name, at: point(options.at), from_branch: options.fromBranch } });
  }

  async branches(): Promise<Json[]> {
    return (await this.json<{ branches: Json[] }>({ method: "GET", path: "/v1/branches", retrySafe: true })).branches;
  }

  /** Replay the branch onto its base (`strict`: a `MergeConflict` when both sides changed a memory). */
  mergeBranch(name: string, options: { strict?: boolean } = {}): Promise<Json> {
    return this.json({ method: "POST", path: `/v1/branches/${seg(name)}/merge`, body: { strict: options.strict ?? false } });
  }

  /** Discard a branch and its own events (`cascade`: and the branches forked from it). */
  dropBranch(name: string, options: { cascade?: boolean } = {}): Promise<Json> {
    return this.json({ method: "DELETE", path: `/v1/branches/${seg(name)}`, query: { cascade: options.cascade ?? false } });
  }

  async branchDiff(name: string): Promise<{ id: string; change: string }[]> {
    return (await this.json<{ changes: { id: string; change: string }[] }>({ method: "GET", path: `/v1/branches/${seg(name)}/diff`, retrySafe: true })).changes;
  }

  // -- the log ----------------------------------------------------------------------------------
  /** Events from `start` (`follow`: wait for new ones); a dropped connection resumes after the last event. */
  async *events(start = 0, options: { follow?: boolean; limit?: number } = {}): AsyncGenerator<LogEvent> {
    let next = start;
    let remaining = options.limit;
    let failures = 0;
    for (;;) {
      let response: Response;
      try {
        response = await this.send({
          method: "GET",
          path: "/v1/log/stream",
          query: { from: next, follow: options.follow ?? false, limit: remaining },
          retrySafe: true,
        });
        const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let cut: number;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const event = parseEvent(block);
            if (event === null) continue;
            failures = 0;
            next = event.offset + 1;
            yield event;
            if (remaining !== undefined && --remaining <= 0) return;
          }
        }
        if (!options.follow) return;
      } catch (error) {
        if (error instanceof MemledgerError && error.status !== 0) throw error;
        if (++failures >= this.attempts) throw error;
        await sleep(100 * 2 ** (failures - 1));
      }
    }
  }
}

function parseEvent(block: string): LogEvent | null {
  let type = "";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0) return null;
  const body = JSON.parse(data.join("\n"));
  if (type === "unauthenticated") throw errorFromResponse(401, body);
  return body as LogEvent;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
