// Tests of the TypeScript client against a real `memledger serve` (MEMLEDGER_URL, MEMLEDGER_TOKEN
// of a principal "alice"; MEMLEDGER_OTHER_TOKEN of a principal "bob"), run by tests/test_typescript_client.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import { AccessDenied, AuthenticationFailed, Conflict, InvalidRequest, MemledgerClient, NotFound } from "../dist/index.js";

const url = process.env.MEMLEDGER_URL;
const client = new MemledgerClient(url, { token: process.env.MEMLEDGER_TOKEN });
const bob = new MemledgerClient(url, { token: process.env.MEMLEDGER_OTHER_TOKEN });
const cube = `ts-${process.pid}`;

test("add, get, update, history and as-of reads", async () => {
  const w = await client.add(cube, "Alice prefers green tea", { metadata: { user_id: "alice" }, tags: ["drink"] });
  assert.match(w.id, /^mem_/);
  const m = await client.get(w.id);
  assert.equal(m.text, "Alice prefers green tea");
  assert.deepEqual(m.metadata, { user_id: "alice" });
  assert.equal(m.created_by, "alice");
  const u = await client.update(w.id, "Alice prefers black coffee", { expectedVersion: 1, reason: "changed" });
  assert.ok(u.offset > w.offset);
  assert.deepEqual((await client.history(w.id)).map((v) => v.text), ["Alice prefers green tea", "Alice prefers black coffee"]);
  assert.equal((await client.get(w.id, w.offset)).text, "Alice prefers green tea");
  await assert.rejects(client.update(w.id, "again", { expectedVersion: 1 }), Conflict);
});

test("search with filters, lifecycle and listing", async () => {
  const tea = await client.add(cube, "Bob likes jasmine tea", { metadata: { user_id: "bob" } });
  const hits = await client.search("jasmine tea", { cubes: [cube], k: 3 });
  assert.equal(hits[0].id, tea.id);
  assert.ok(hits[0].score > 0);
  const scoped = await client.search("likes", { cubes: [cube], metadata: { user_id: "bob" } });
  assert.deepEqual(scoped.map((h) => h.id), [tea.id]);
  await client.changeState(tea.id, "archived", "stale");
  assert.ok(!(await client.search("jasmine", { cubes: [cube] })).some((h) => h.id === tea.id));
  const page = await client.listMemories(cube, { state: "archived" });
  assert.deepEqual(page.memories.map((m) => m.id), [tea.id]);
  const bobs = await client.listMemories(cube, { where: { user_id: { $in: ["bob"] } }, state: "archived", limit: 1 });
  assert.deepEqual(bobs.memories.map((m) => m.id), [tea.id]);
  const where = await client.search("likes", { cubes: [cube], where: { user_id: "bob" }, allStates: true, k: 1 });
  assert.deepEqual(where.map((h) => h.id), [tea.id]);
  assert.deepEqual(await client.search("likes", { cubes: [cube], allStates: true, minScore: 1e5 }), []);
});

test("errors map to classes; roles are the server's", async () => {
  await assert.rejects(client.get("mem_missing"), NotFound);
  await assert.rejects(client.add(cube, "   "), InvalidRequest);
  await assert.rejects(new MemledgerClient(url, { token: "mlk_wrong" }).whoami(), AuthenticationFailed);
  const w = await client.add(cube, "private to alice");
  await assert.rejects(bob.get(w.id), NotFound);
  await client.grant(cube, "bob", "reader");
  assert.equal((await bob.get(w.id)).text, "private to alice");
  await assert.rejects(bob.update(w.id, "bob was here"), AccessDenied);
  await client.revoke(cube, "bob", "reader");
});

test("audit trail, branches and the log stream", async () => {
  const w = await client.add(cube, "Alice lives in Lisbon");
  await client.get(w.id);
  const trail = await client.audit({ memory: w.id });
  assert.deepEqual(trail.map((e) => [e.type, e.actor]), [["memory.added", "alice"], ["memory.read", "alice"]]);
  const name = `ts-branch-${process.pid}`;
  await client.createBranch(name);
  assert.deepEqual(await client.branchDiff(name), []);
  const events = [];
  for await (const e of client.events(w.offset, { limit: 2 })) events.push(e);
  assert.deepEqual(events.map((e) => e.type), ["memory.added", "memory.read"]);
  assert.equal(events[0].payload.memory_id, w.id);
  const head = await client.head();
  const tail = [];
  for await (const e of client.events(head.offset + 1)) tail.push(e);
  assert.deepEqual(tail, []);
});
