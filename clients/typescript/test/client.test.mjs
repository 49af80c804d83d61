// Tests of the TypeScript client against a real `memledger serve` (MEMLEDGER_URL, MEMLEDGER_TOKEN
// of a principal "alice"; MEMLEDGER_OTHER_TOKEN of a principal "bob"; MEMLEDGER_ADMIN_TOKEN of an admin
// principal "root"), run by tests/test_typescript_client.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AccessDenied,
  AuthenticationFailed,
  Conflict,
  InvalidRequest,
  LegalHold,
  MemledgerClient,
  NotFound,
} from "../dist/index.js";

const url = process.env.MEMLEDGER_URL;
const client = new MemledgerClient(url, { token: process.env.MEMLEDGER_TOKEN });
const bob = new MemledgerClient(url, { token: process.env.MEMLEDGER_OTHER_TOKEN });
const root = new MemledgerClient(url, { token: process.env.MEMLEDGER_ADMIN_TOKEN });
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

test("delete is a tombstone; delete where, erase, erase where, redact and lineage", async () => {
  const c = `${cube}-erasure`;
  const w = await client.add(c, "Alice likes jazz", { metadata: { user_id: "u1" } });
  const d = await client.delete(w.id, { reason: "asked", expectedVersion: 1 });
  assert.equal(d.id, w.id);
  await assert.rejects(client.get(w.id), NotFound);
  assert.equal((await client.get(w.id, w.offset)).text, "Alice likes jazz");
  await assert.rejects(client.delete(w.id), NotFound);
  const [a, b] = [await client.add(c, "one", { metadata: { user_id: "u2" } }), await client.add(c, "two", { metadata: { user_id: "u2" } })];
  const bulk = await client.deleteWhere(c, { where: { user_id: "u2" }, reason: "account closed" });
  assert.deepEqual(bulk.deleted.sort(), [a.id, b.id].sort());
  assert.equal(bulk.count, 2);

  const pin = await client.add(c, "Alice's PIN is 4321");
  const bank = await client.add(c, "Alice banks at Acme");
  const merged = await client.merge([pin.id, bank.id], "Alice banks at Acme, PIN 4321", { reason: "same topic" });
  const lineage = await client.lineage(merged.id);
  assert.deepEqual(lineage.sources.map((e) => e.parent).sort(), [pin.id, bank.id].sort());
  assert.deepEqual((await client.lineage(pin.id)).descendants.map((e) => e.child), [merged.id]);
  await assert.rejects(client.erase(pin.id, "   "), InvalidRequest);
  const erased = await client.erase(pin.id, "GDPR request");
  assert.deepEqual([erased.erased, erased.derived, erased.complete], [[pin.id], [merged.id], true]);
  assert.equal((await client.get(merged.id)).text, null);
  assert.equal((await client.erase(pin.id, "GDPR request")).already_erased, true);
  const link = await client.link(bank.id, merged.id, "summarised-by");
  assert.equal(link.id, bank.id);

  const card = await client.add(c, "card 4111 and dog Rex", { metadata: { user_id: "u3" } });
  const masked = await client.redact(card.id, [[5, 9]], "card number");
  assert.equal(masked.complete, true);
  assert.ok(!(await client.get(card.id)).text.includes("4111"));
  const rest = await client.eraseWhere(c, "account closed", { user_id: "u3" });
  assert.deepEqual(rest.erased, [card.id]);
  await assert.rejects(client.eraseWhere(c, "again", { user_id: "u3" }), NotFound);
});

test("legal holds refuse with LegalHold; exports; branch merge and drop", async () => {
  const c = `${cube}-holds`;
  const w = await client.add(c, "evidence", { subject: `dana-${process.pid}` });
  await assert.rejects(client.placeHold({ cube: c }, "litigation"), AccessDenied);
  const hold = await root.placeHold({ memoryId: w.id }, "litigation");
  assert.equal(hold.scope, "memory");
  assert.ok((await root.holds()).some((h) => h.hold_id === hold.hold_id));
  const refused = await client.delete(w.id).catch((error) => error);
  assert.ok(refused instanceof LegalHold && refused instanceof Conflict);
  assert.deepEqual(refused.holdIds, [hold.hold_id]);
  await assert.rejects(client.erase(w.id, "asked"), LegalHold);
  await root.releaseHold(hold.hold_id, "case closed");
  await assert.rejects(root.releaseHold(hold.hold_id), NotFound);

  const records = await client.export(c);
  assert.equal(records[0].cube, c);
  const about = await root.subjectExport(`dana-${process.pid}`);
  assert.equal(about[0].subject, `dana-${process.pid}`);
  await assert.rejects(client.subjectExport(`dana-${process.pid}`), AccessDenied);

  const name = `ts-merge-${process.pid}`;
  await client.createBranch(name);
  assert.ok((await client.branches()).some((b) => b.name === name));
  const merged = await client.mergeBranch(name);
  assert.equal(merged.branch, name);
  const dropped = await client.dropBranch(name);
  assert.equal(dropped.name, name);
  assert.ok(!(await client.branches()).some((b) => b.name === name));
  assert.ok((await client.delete(w.id)).offset > w.offset);
});

test("ingest a conversation; the extracted fact is found with lineage to its message", async () => {
  const chat = `${cube}-chat`;
  const messages = [
    { role: "user", content: "I live in Oslo.", name: "Dee", timestamp: "2026-11-02T09:00:00Z" },
    { role: "assistant", content: "Noted, Dee." },
  ];
  const said = await client.ingest(chat, messages, { user_id: "dee", batchId: "ts-batch-1" });
  assert.equal(said.count, 2);
  const again = await client.ingest(chat, messages, { user_id: "dee", batchId: "ts-batch-1" });
  assert.ok(again.duplicate);
  assert.deepEqual(again.offsets, said.offsets);
  await assert.rejects(client.ingest(chat, [{ role: "narrator", content: "Once" }]), InvalidRequest);
  let hits = [];
  for (let i = 0; i < 1200 && hits.length === 0; i++) {
    // extraction is a consumer of the log (serve's background thread); not a timing assertion
    hits = await client.search("where does Dee live", { cubes: [chat], where: { user_id: "dee" } });
    if (hits.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.deepEqual(hits.map((h) => h.text), ["Dee lives in Oslo."]);
  assert.ok(JSON.stringify(await client.lineage(hits[0].id)).includes(said.message_ids[0]));
  assert.equal((await client.messagesStatus(chat)).pending, 0);
  const dup = await client.add(chat, "Dee lives in Oslo.", { metadata: { user_id: "dee" } });
  assert.equal(dup.id, hits[0].id); // a duplicate add writes nothing and answers the existing memory
  const forced = await client.add(chat, "Dee lives in Oslo.", { metadata: { user_id: "dee" }, allowDuplicate: true });
  assert.notEqual(forced.id, hits[0].id);
});
