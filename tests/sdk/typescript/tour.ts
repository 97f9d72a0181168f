// Conformance tour: drives a Keywarden server through the official `@unkey/api` SDK and
// checks the values that come back, not just that no exception was thrown.
//
// Environment:
//   KEYWARDEN_URL                base URL of the server, e.g. http://127.0.0.1:7070
//   KEYWARDEN_ROOT_KEY           a root key holding every permission
//   KEYWARDEN_LIMITED_ROOT_KEY   a root key holding only `api.*.read_api`
//
// Each section runs on its own data; a failing section is reported and the tour goes on, so
// one run lists every mismatch. The exit status is 1 if any section failed.

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";

import { Unkey } from "@unkey/api";
import {
  APIError,
  BadRequestErrorResponse,
  ForbiddenErrorResponse,
  NotFoundErrorResponse,
  PreconditionFailedErrorResponse,
  UnauthorizedErrorResponse,
  UnkeyError,
} from "@unkey/api/models/errors";

function env(name: string): string {
  const value = process.env[name];
  if (!value) {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
  return value;
}

const serverURL = env("KEYWARDEN_URL");
const rootKey = env("KEYWARDEN_ROOT_KEY");
const limitedRootKey = env("KEYWARDEN_LIMITED_ROOT_KEY");

const unkey = new Unkey({ rootKey, serverURL, timeoutMs: 10_000 });
/** Calls expected to fail are not retried (4xx never is; this also covers a stray 5xx). */
const noRetry = { retries: { strategy: "none" as const } };

const PREFIX = "sdkts";
const BASE58 = /^[1-9A-HJ-NP-Za-km-z]+$/;
const suffix = randomBytes(4).toString("hex");

// ---------------------------------------------------------------------------------------------
// helpers

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Creates an API with delete protection. That is a Keywarden extension of `apis.createApi`
 * the SDK cannot send, so this one request is made without it.
 */
async function newProtectedApi(label: string): Promise<string> {
  const res = await fetch(new URL("/v2/apis.createApi", serverURL), {
    method: "POST",
    headers: { authorization: `Bearer ${rootKey}`, "content-type": "application/json" },
    body: JSON.stringify({ name: `sdkts-${label}-${suffix}`, deleteProtection: true }),
  });
  const body = await res.text();
  assert.equal(res.status, 200, `createApi with deleteProtection: ${body}`);
  return JSON.parse(body).data.apiId;
}

async function newApi(label: string): Promise<string> {
  const res = await unkey.apis.createApi({ name: `sdkts-${label}-${suffix}` });
  assert.equal(typeof res.data.apiId, "string");
  assert.ok(res.data.apiId.length > 0, "apiId is empty");
  return res.data.apiId;
}

/** Asserts `key` is `<prefix>_<base58>`, the Keywarden key format. */
function assertKeyFormat(key: string, prefix: string): void {
  assert.ok(key.startsWith(`${prefix}_`), `key ${key} does not start with ${prefix}_`);
  const body = key.slice(prefix.length + 1);
  assert.match(body, BASE58, `key body of ${key} is not base58`);
  assert.ok(body.length >= 22, `key body of ${key} is too short`);
}

function assertRequestId(meta: { requestId: string }): void {
  assert.equal(typeof meta.requestId, "string");
  assert.ok(meta.requestId.length > 0, "meta.requestId is empty");
}

/**
 * Runs `call`, which must throw an instance of `cls` with HTTP status `status`; returns the
 * error for further checks.
 */
async function expectError<T extends UnkeyError>(
  call: () => Promise<unknown>,
  cls: abstract new (...args: never[]) => T,
  status: number,
): Promise<T> {
  let thrown: unknown;
  try {
    await call();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown !== undefined, `expected ${cls.name} (${status}), but the call succeeded`);
  if (!(thrown instanceof cls)) {
    const detail =
      thrown instanceof UnkeyError
        ? `${thrown.name} status ${thrown.statusCode}: ${thrown.body}`
        : String(thrown);
    assert.fail(`expected ${cls.name} (${status}), got ${detail}`);
  }
  assert.equal(thrown.statusCode, status, `status of ${cls.name}`);
  return thrown;
}

async function verify(key: string, cost?: number) {
  const res = await unkey.keys.verifyKey(cost === undefined ? { key } : { key, credits: { cost } });
  assertRequestId(res.meta);
  return res.data;
}

// ---------------------------------------------------------------------------------------------
// sections

async function apisCreateAndGet(): Promise<void> {
  const name = `sdkts-apis-${suffix}`;
  const created = await unkey.apis.createApi({ name });
  assertRequestId(created.meta);
  const apiId = created.data.apiId;
  assert.match(apiId, /^[a-zA-Z0-9_]{8,255}$/, "apiId format");

  const got = await unkey.apis.getApi({ apiId });
  assertRequestId(got.meta);
  assert.equal(got.data.id, apiId);
  assert.equal(got.data.name, name);

  // A second API gets its own id and name.
  const other = await unkey.apis.createApi({ name: `${name}-2` });
  assert.notEqual(other.data.apiId, apiId);
  assert.equal((await unkey.apis.getApi({ apiId: other.data.apiId })).data.name, `${name}-2`);
}

async function createKeyAndRead(): Promise<void> {
  const apiId = await newApi("create");
  const expires = Date.now() + 3_600_000;
  const meta = { plan: "pro", seats: 3, nested: { tags: ["a", "b"], ok: true } };
  const before = Date.now();
  const created = await unkey.keys.createKey({
    apiId,
    prefix: PREFIX,
    name: "monthly key",
    meta,
    expires,
    credits: { remaining: 100, refill: { interval: "monthly", amount: 250, refillDay: 15 } },
  });
  const after = Date.now();
  assertRequestId(created.meta);
  const { keyId, key } = created.data;
  assert.ok(keyId.length >= 3, "keyId");
  assertKeyFormat(key, PREFIX);

  const expected = {
    keyId,
    enabled: true,
    name: "monthly key",
    meta,
    expires,
    credits: { remaining: 100, refill: { interval: "monthly", amount: 250, refillDay: 15 } },
  };
  const checkKey = (k: Awaited<ReturnType<typeof unkey.keys.getKey>>["data"], via: string) => {
    assert.equal(k.keyId, expected.keyId, `${via}: keyId`);
    assert.equal(k.enabled, expected.enabled, `${via}: enabled`);
    assert.equal(k.name, expected.name, `${via}: name`);
    assert.deepEqual(k.meta, expected.meta, `${via}: meta`);
    assert.equal(k.expires, expected.expires, `${via}: expires`);
    assert.deepEqual(k.credits, expected.credits, `${via}: credits`);
    assert.ok(k.start.startsWith(`${PREFIX}_`), `${via}: start ${k.start}`);
    assert.ok(key.startsWith(k.start), `${via}: start ${k.start} is not a prefix of the key`);
    assert.ok(k.start.length < key.length, `${via}: start reveals the whole key`);
    assert.ok(
      k.createdAt >= before - 1000 && k.createdAt <= after + 1000,
      `${via}: createdAt ${k.createdAt} not within [${before}, ${after}]`,
    );
    assert.equal(k.plaintext, undefined, `${via}: plaintext without decrypt`);
    assert.deepEqual(k.permissions ?? [], [], `${via}: permissions`);
    assert.deepEqual(k.roles ?? [], [], `${via}: roles`);
    assert.equal(k.identity, undefined, `${via}: identity`);
  };

  const got = await unkey.keys.getKey({ keyId });
  assertRequestId(got.meta);
  checkKey(got.data, "getKey");

  const me = await unkey.keys.whoami({ key });
  assertRequestId(me.meta);
  checkKey(me.data, "whoami");

  const page = await unkey.apis.listKeys({ apiId });
  assertRequestId(page.result.meta);
  assert.equal(page.result.data.length, 1, "listKeys: one key");
  checkKey(page.result.data[0], "listKeys");
  assert.equal(page.result.pagination?.hasMore, false, "listKeys: hasMore");
  assert.equal(page.result.pagination?.cursor, undefined, "listKeys: cursor on the last page");

  // A daily refill has no refillDay; a key without a prefix or options is still well-formed.
  const daily = await unkey.keys.createKey({
    apiId,
    prefix: PREFIX,
    credits: { remaining: 10, refill: { interval: "daily", amount: 10 } },
  });
  const dailyKey = (await unkey.keys.getKey({ keyId: daily.data.keyId })).data;
  assert.deepEqual(dailyKey.credits, { remaining: 10, refill: { interval: "daily", amount: 10 } });
  assert.equal(dailyKey.name, undefined, "daily: name");
  assert.equal(dailyKey.meta, undefined, "daily: meta");
  assert.equal(dailyKey.expires, undefined, "daily: expires");

  const plain = await unkey.keys.createKey({ apiId });
  assert.match(plain.data.key, /^[A-Za-z0-9_]+$/, "key without an explicit prefix");
  const plainKey = (await unkey.keys.getKey({ keyId: plain.data.keyId })).data;
  assert.equal(plainKey.credits, undefined, "no credits configured: credits omitted");
  assert.equal(plainKey.enabled, true);

  // enabled: false at creation.
  const off = await unkey.keys.createKey({ apiId, prefix: PREFIX, enabled: false });
  assert.equal((await unkey.keys.getKey({ keyId: off.data.keyId })).data.enabled, false);
  assert.equal((await verify(off.data.key)).code, "DISABLED");

  // The three keys of this API are listed, each once.
  const all = await unkey.apis.listKeys({ apiId });
  const ids = all.result.data.map((k) => k.keyId).sort();
  assert.deepEqual(ids, [keyId, daily.data.keyId, plain.data.keyId, off.data.keyId].sort());
}

async function verifyOutcomes(): Promise<void> {
  const apiId = await newApi("verify");
  const meta = { tier: "gold" };
  const expires = Date.now() + 3_600_000;
  const created = await unkey.keys.createKey({
    apiId,
    prefix: PREFIX,
    name: "verified",
    meta,
    expires,
    credits: { remaining: 100 },
  });
  const { keyId, key } = created.data;

  // VALID: the key's details come back and one credit is spent by default.
  const valid = await verify(key);
  assert.equal(valid.valid, true);
  assert.equal(valid.code, "VALID");
  assert.equal(valid.keyId, keyId);
  assert.equal(valid.name, "verified");
  assert.deepEqual(valid.meta, meta);
  assert.equal(valid.expires, expires);
  assert.equal(valid.enabled, true);
  assert.equal(valid.credits, 99);
  assert.deepEqual(valid.permissions ?? [], []);
  assert.deepEqual(valid.roles ?? [], []);

  // An explicit cost, and tags (accepted, not echoed).
  const tagged = await unkey.keys.verifyKey({
    key,
    tags: ["path=/v1/things", "region=local"],
    credits: { cost: 9 },
  });
  assert.equal(tagged.data.code, "VALID");
  assert.equal(tagged.data.credits, 90);

  // NOT_FOUND: an unknown key, with no key details.
  const unknownKey = `${PREFIX}_${"1".repeat(28)}`;
  const missing = await verify(unknownKey);
  assert.equal(missing.valid, false);
  assert.equal(missing.code, "NOT_FOUND");
  assert.equal(missing.keyId, undefined, "NOT_FOUND carries no keyId");
  assert.equal(missing.credits, undefined, "NOT_FOUND carries no credits");

  // DISABLED after updateKey(enabled=false); the details are still there. No credit is spent.
  await unkey.keys.updateKey({ keyId, enabled: false });
  assert.equal((await unkey.keys.getKey({ keyId })).data.enabled, false);
  const disabled = await verify(key);
  assert.equal(disabled.valid, false);
  assert.equal(disabled.code, "DISABLED");
  assert.equal(disabled.keyId, keyId);
  assert.equal(disabled.enabled, false);
  await unkey.keys.updateKey({ keyId, enabled: true });
  const again = await verify(key);
  assert.equal(again.code, "VALID");
  assert.equal(again.credits, 89, "a DISABLED verification spent credits");

  // EXPIRED: a key created with an expiry in the past.
  const past = Date.now() - 60_000;
  const old = await unkey.keys.createKey({ apiId, prefix: PREFIX, expires: past });
  const expired = await verify(old.data.key);
  assert.equal(expired.valid, false);
  assert.equal(expired.code, "EXPIRED");
  assert.equal(expired.keyId, old.data.keyId);
  assert.equal(expired.expires, past);

  // EXPIRED also after moving a live key's expiry into the past with updateKey.
  await unkey.keys.updateKey({ keyId, expires: past });
  assert.equal((await verify(key)).code, "EXPIRED");
  await unkey.keys.updateKey({ keyId, expires: null });
  const revived = await verify(key);
  assert.equal(revived.code, "VALID");
  assert.equal(revived.expires, undefined, "expires cleared with null");

  // USAGE_EXCEEDED: spend the balance exactly, then run out; nothing is deducted on failure.
  const metered = await unkey.keys.createKey({
    apiId,
    prefix: PREFIX,
    credits: { remaining: 3 },
  });
  const mk = metered.data.key;
  const tooMuch = await verify(mk, 5);
  assert.equal(tooMuch.code, "USAGE_EXCEEDED");
  assert.equal(tooMuch.valid, false);
  assert.equal(tooMuch.credits, 3, "a failed verification must not deduct");
  const exact = await verify(mk, 3);
  assert.equal(exact.code, "VALID");
  assert.equal(exact.credits, 0);
  const exhausted = await verify(mk);
  assert.equal(exhausted.valid, false);
  assert.equal(exhausted.code, "USAGE_EXCEEDED");
  assert.equal(exhausted.credits, 0);
  const free = await verify(mk, 0);
  assert.equal(free.valid, true, "cost 0 at 0 remaining is VALID");
  assert.equal(free.code, "VALID");
  assert.equal(free.credits, 0);
  assert.deepEqual((await unkey.keys.getKey({ keyId: metered.data.keyId })).data.credits, {
    remaining: 0,
  });

  // A key without credits ignores costs and reports no credits.
  const unlimited = await unkey.keys.createKey({ apiId, prefix: PREFIX });
  const u = await verify(unlimited.data.key, 1_000);
  assert.equal(u.code, "VALID");
  assert.equal(u.credits, undefined, "unlimited key: credits omitted");
}

async function updateKeyFields(): Promise<void> {
  const apiId = await newApi("update");
  const created = await unkey.keys.createKey({
    apiId,
    prefix: PREFIX,
    name: "to be cleared",
    meta: { a: 1 },
    expires: Date.now() + 3_600_000,
    credits: { remaining: 7, refill: { interval: "daily", amount: 7 } },
  });
  const { keyId, key } = created.data;

  // Omitted fields stay as they were.
  const res = await unkey.keys.updateKey({ keyId, meta: { b: "two" } });
  assertRequestId(res.meta);
  let k = (await unkey.keys.getKey({ keyId })).data;
  assert.equal(k.name, "to be cleared");
  assert.deepEqual(k.meta, { b: "two" }, "meta is replaced, not merged");
  assert.deepEqual(k.credits, { remaining: 7, refill: { interval: "daily", amount: 7 } });
  assert.equal(typeof k.updatedAt, "number", "updatedAt after an update");

  // Explicit null clears; a new value replaces.
  await unkey.keys.updateKey({ keyId, name: null, meta: null, expires: null });
  k = (await unkey.keys.getKey({ keyId })).data;
  assert.equal(k.name, undefined, "name cleared with null");
  assert.equal(k.meta, undefined, "meta cleared with null");
  assert.equal(k.expires, undefined, "expires cleared with null");
  const who = (await unkey.keys.whoami({ key })).data;
  assert.equal(who.name, undefined, "whoami: name cleared");

  await unkey.keys.updateKey({ keyId, name: "renamed" });
  assert.equal((await unkey.keys.getKey({ keyId })).data.name, "renamed");
  assert.equal((await verify(key, 0)).name, "renamed");

  // Credits: change the refill, then drop it, then make the key unlimited.
  await unkey.keys.updateKey({
    keyId,
    credits: { remaining: 40, refill: { interval: "monthly", amount: 40, refillDay: 31 } },
  });
  k = (await unkey.keys.getKey({ keyId })).data;
  assert.deepEqual(k.credits, {
    remaining: 40,
    refill: { interval: "monthly", amount: 40, refillDay: 31 },
  });
  await unkey.keys.updateKey({ keyId, credits: { refill: null } });
  k = (await unkey.keys.getKey({ keyId })).data;
  assert.deepEqual(k.credits, { remaining: 40 }, "refill cleared, remaining kept");
  await unkey.keys.updateKey({ keyId, credits: null });
  k = (await unkey.keys.getKey({ keyId })).data;
  assert.ok(
    k.credits === undefined || k.credits.remaining === null,
    `credits: null makes the key unlimited, got ${JSON.stringify(k.credits)}`,
  );
  assert.equal((await verify(key)).credits, undefined);

  // Unknown key → 404.
  await expectError(
    () => unkey.keys.updateKey({ keyId: "key_doesnotexist0000", name: "x" }, noRetry),
    NotFoundErrorResponse,
    404,
  );
}

async function updateCredits(): Promise<void> {
  const apiId = await newApi("credits");
  const created = await unkey.keys.createKey({
    apiId,
    prefix: PREFIX,
    credits: { remaining: 5, refill: { interval: "daily", amount: 50 } },
  });
  const { keyId, key } = created.data;

  const set = await unkey.keys.updateCredits({ keyId, operation: "set", value: 10 });
  assertRequestId(set.meta);
  assert.equal(set.data.remaining, 10);
  assert.deepEqual(set.data.refill, { interval: "daily", amount: 50 }, "set keeps the refill");

  const inc = await unkey.keys.updateCredits({ keyId, operation: "increment", value: 5 });
  assert.equal(inc.data.remaining, 15);
  assert.equal((await verify(key, 0)).credits, 15);

  const dec = await unkey.keys.updateCredits({ keyId, operation: "decrement", value: 4 });
  assert.equal(dec.data.remaining, 11);

  const clamp = await unkey.keys.updateCredits({ keyId, operation: "decrement", value: 1_000 });
  assert.equal(clamp.data.remaining, 0, "decrement below zero clamps to 0");
  assert.equal((await verify(key)).code, "USAGE_EXCEEDED");

  const unlimited = await unkey.keys.updateCredits({ keyId, operation: "set", value: null });
  assert.equal(unlimited.data.remaining, null, "set null → remaining null");
  assert.equal(unlimited.data.refill, undefined, "set null clears the refill");
  const after = await verify(key, 1_000_000);
  assert.equal(after.code, "VALID");
  assert.equal(after.credits, undefined);

  // Back to a limited balance from unlimited.
  const limited = await unkey.keys.updateCredits({ keyId, operation: "set", value: 2 });
  assert.equal(limited.data.remaining, 2);
  assert.deepEqual((await unkey.keys.getKey({ keyId })).data.credits, { remaining: 2 });
  assert.equal((await verify(key)).credits, 1);

  // increment needs a value.
  const bad = await expectError(
    () => unkey.keys.updateCredits({ keyId, operation: "increment" }, noRetry),
    BadRequestErrorResponse,
    400,
  );
  assert.ok(bad.error.errors.length > 0, "400 without errors[]");
}

async function rerollKey(): Promise<void> {
  const apiId = await newApi("reroll");
  const meta = { owner: "reroll" };
  const created = await unkey.keys.createKey({
    apiId,
    prefix: PREFIX,
    name: "rotating",
    meta,
    credits: { remaining: 20, refill: { interval: "monthly", amount: 20, refillDay: 1 } },
  });
  const { keyId: oldId, key: oldKey } = created.data;

  const grace = 60_000;
  const before = Date.now();
  const rerolled = await unkey.keys.rerollKey({ keyId: oldId, expiration: grace });
  const after = Date.now();
  assertRequestId(rerolled.meta);
  const { keyId: newId, key: newKey } = rerolled.data;
  assert.notEqual(newId, oldId, "reroll returns a new keyId");
  assert.notEqual(newKey, oldKey);
  assertKeyFormat(newKey, PREFIX);

  const fresh = await verify(newKey);
  assert.equal(fresh.code, "VALID");
  assert.equal(fresh.keyId, newId);
  assert.equal(fresh.name, "rotating", "new key copies the name");
  assert.deepEqual(fresh.meta, meta, "new key copies meta");
  assert.equal(fresh.credits, 19, "new key copies the remaining credits");
  const newData = (await unkey.keys.getKey({ keyId: newId })).data;
  assert.deepEqual(newData.credits, {
    remaining: 19,
    refill: { interval: "monthly", amount: 20, refillDay: 1 },
  });
  assert.equal(newData.expires, undefined, "new key copies the (absent) expiry");

  const stale = await verify(oldKey);
  assert.equal(stale.code, "VALID", "old key stays valid within the grace period");
  assert.equal(stale.keyId, oldId);
  const oldData = (await unkey.keys.getKey({ keyId: oldId })).data;
  assert.equal(typeof oldData.expires, "number", "old key gets an expiry");
  assert.ok(
    oldData.expires! >= before + grace - 1000 && oldData.expires! <= after + grace,
    `old key expires ${oldData.expires} not within [${before + grace}, ${after + grace}]`,
  );

  // A key with an expiry: the new key keeps it, the old one's is cut to the grace period.
  const inAnHour = Date.now() + 3_600_000;
  const dated = await unkey.keys.createKey({ apiId, prefix: PREFIX, expires: inAnHour });
  const t0 = Date.now();
  const datedNew = await unkey.keys.rerollKey({ keyId: dated.data.keyId, expiration: grace });
  const t1 = Date.now();
  assert.equal(
    (await unkey.keys.getKey({ keyId: datedNew.data.keyId })).data.expires,
    inAnHour,
    "new key copies the expiry",
  );
  const datedOld = (await unkey.keys.getKey({ keyId: dated.data.keyId })).data.expires!;
  assert.ok(
    datedOld >= t0 + grace - 1000 && datedOld <= t1 + grace,
    `old dated key expires ${datedOld} not within [${t0 + grace}, ${t1 + grace}]`,
  );
  await unkey.keys.deleteKey({ keyId: dated.data.keyId });
  await unkey.keys.deleteKey({ keyId: datedNew.data.keyId });

  // The new key shows up in the listing next to the old one.
  const listed = (await unkey.apis.listKeys({ apiId })).result.data.map((k) => k.keyId).sort();
  assert.deepEqual(listed, [oldId, newId].sort());

  // expiration 0: the old key expires now.
  const second = await unkey.keys.rerollKey({ keyId: newId, expiration: 0 });
  await sleep(50);
  assert.equal((await verify(second.data.key)).code, "VALID");
  const dead = await verify(newKey);
  assert.equal(dead.code, "EXPIRED", "expiration 0 ends the old key at once");
  assert.equal(dead.valid, false);

  await expectError(
    () => unkey.keys.rerollKey({ keyId: "key_doesnotexist0000", expiration: 0 }, noRetry),
    NotFoundErrorResponse,
    404,
  );
}

async function deleteKey(): Promise<void> {
  const apiId = await newApi("delete-key");
  const soft = await unkey.keys.createKey({ apiId, prefix: PREFIX });
  const hard = await unkey.keys.createKey({ apiId, prefix: PREFIX });
  const keep = await unkey.keys.createKey({ apiId, prefix: PREFIX });
  assert.equal((await verify(soft.data.key)).code, "VALID");

  const res = await unkey.keys.deleteKey({ keyId: soft.data.keyId });
  assertRequestId(res.meta);
  const gone = await verify(soft.data.key);
  assert.equal(gone.code, "NOT_FOUND");
  assert.equal(gone.valid, false);
  assert.equal(gone.keyId, undefined, "a deleted key's details are not shown");
  const nf = await expectError(
    () => unkey.keys.getKey({ keyId: soft.data.keyId }, noRetry),
    NotFoundErrorResponse,
    404,
  );
  assert.equal(nf.error.status, 404);
  await expectError(
    () => unkey.keys.whoami({ key: soft.data.key }, noRetry),
    NotFoundErrorResponse,
    404,
  );

  await unkey.keys.deleteKey({ keyId: hard.data.keyId, permanent: true });
  assert.equal((await verify(hard.data.key)).code, "NOT_FOUND");
  await expectError(
    () => unkey.keys.getKey({ keyId: hard.data.keyId }, noRetry),
    NotFoundErrorResponse,
    404,
  );

  const left = (await unkey.apis.listKeys({ apiId })).result.data.map((k) => k.keyId);
  assert.deepEqual(left, [keep.data.keyId], "listKeys shows only the surviving key");
  assert.equal((await verify(keep.data.key)).code, "VALID");

  await expectError(
    () => unkey.keys.deleteKey({ keyId: soft.data.keyId }, noRetry),
    NotFoundErrorResponse,
    404,
  );
}

async function deleteApi(): Promise<void> {
  const apiId = await newApi("delete-api");
  const a = await unkey.keys.createKey({ apiId, prefix: PREFIX });
  const b = await unkey.keys.createKey({ apiId, prefix: PREFIX, credits: { remaining: 1 } });
  assert.equal((await verify(a.data.key)).code, "VALID");

  const res = await unkey.apis.deleteApi({ apiId });
  assertRequestId(res.meta);
  for (const key of [a.data.key, b.data.key]) {
    const v = await verify(key);
    assert.equal(v.code, "NOT_FOUND", "keys of a deleted API");
    assert.equal(v.valid, false);
  }
  await expectError(() => unkey.apis.getApi({ apiId }, noRetry), NotFoundErrorResponse, 404);
  await expectError(() => unkey.apis.listKeys({ apiId }, noRetry), NotFoundErrorResponse, 404);
  await expectError(() => unkey.apis.deleteApi({ apiId }, noRetry), NotFoundErrorResponse, 404);
  await expectError(
    () => unkey.keys.createKey({ apiId, prefix: PREFIX }, noRetry),
    NotFoundErrorResponse,
    404,
  );

  // 412 on deleteApi, the endpoint that declares it: a delete-protected API stays, keys too.
  const protectedId = await newProtectedApi("protected");
  const kept = await unkey.keys.createKey({ apiId: protectedId, prefix: PREFIX });
  const refused = await expectError(
    () => unkey.apis.deleteApi({ apiId: protectedId }, noRetry),
    PreconditionFailedErrorResponse,
    412,
  );
  assert.equal(refused.error.status, 412);
  assertRequestId(refused.meta);
  assert.equal((await unkey.apis.getApi({ apiId: protectedId })).data.id, protectedId);
  assert.equal((await verify(kept.data.key)).code, "VALID");
}

async function migrateKeys(): Promise<void> {
  const apiId = await newApi("migrate");
  const plaintext = `legacy_${randomBytes(18).toString("hex")}`;
  const hash = createHash("sha256").update(plaintext, "utf8").digest("base64");
  const malformed = "this is not a sha-256 hash!";
  const expires = Date.now() + 86_400_000;

  const res = await unkey.keys.migrateKeys({
    migrationId: `sdkts-${suffix}`,
    apiId,
    keys: [
      {
        hash,
        name: "imported",
        meta: { source: "legacy" },
        expires,
        credits: { remaining: 5 },
      },
      { hash: malformed },
    ],
  });
  assertRequestId(res.meta);
  assert.equal(res.data.migrated.length, 1, `migrated: ${JSON.stringify(res.data)}`);
  assert.equal(res.data.migrated[0].hash, hash);
  const keyId = res.data.migrated[0].keyId;
  assert.ok(keyId.length >= 3);
  assert.deepEqual(res.data.failed, [malformed]);

  const v = await verify(plaintext);
  assert.equal(v.code, "VALID", "the migrated plaintext verifies");
  assert.equal(v.keyId, keyId);
  assert.equal(v.name, "imported");
  assert.deepEqual(v.meta, { source: "legacy" });
  assert.equal(v.expires, expires);
  assert.equal(v.credits, 4);

  const k = (await unkey.keys.getKey({ keyId })).data;
  assert.equal(k.name, "imported");
  assert.equal(k.enabled, true);
  assert.deepEqual(k.credits, { remaining: 4 });
  const listed = (await unkey.apis.listKeys({ apiId })).result.data.map((x) => x.keyId);
  assert.deepEqual(listed, [keyId]);

  // The same hash again is a duplicate and fails; a disabled import verifies DISABLED.
  const other = `legacy_${randomBytes(18).toString("hex")}`;
  const otherHash = createHash("sha256").update(other, "utf8").digest("base64");
  const again = await unkey.keys.migrateKeys({
    migrationId: `sdkts-${suffix}`,
    apiId,
    keys: [{ hash }, { hash: otherHash, enabled: false }],
  });
  assert.deepEqual(again.data.failed, [hash], "a duplicate hash fails");
  assert.deepEqual(
    again.data.migrated.map((m) => m.hash),
    [otherHash],
  );
  assert.equal((await verify(other)).code, "DISABLED");
}

async function pagination(): Promise<void> {
  const apiId = await newApi("pages");
  const created = new Set<string>();
  for (let i = 0; i < 7; i++) {
    const res = await unkey.keys.createKey({ apiId, prefix: PREFIX, name: `page-key-${i}` });
    created.add(res.data.keyId);
  }
  assert.equal(created.size, 7);

  const res = await unkey.apis.listKeys({ apiId, limit: 3 });
  const seen: string[] = [];
  const sizes: number[] = [];
  const hasMore: boolean[] = [];
  let pages = 0;
  for await (const page of res) {
    pages += 1;
    assert.ok(pages <= 10, "the auto-pager does not terminate");
    assertRequestId(page.result.meta);
    sizes.push(page.result.data.length);
    hasMore.push(page.result.pagination?.hasMore ?? false);
    for (const k of page.result.data) {
      seen.push(k.keyId);
      assert.ok(k.name?.startsWith("page-key-"), `listed key has name ${k.name}`);
    }
  }
  assert.deepEqual(sizes, [3, 3, 1], "page sizes");
  assert.deepEqual(hasMore, [true, true, false], "hasMore per page");
  assert.equal(seen.length, 7, "keys listed");
  assert.equal(new Set(seen).size, 7, "every key listed exactly once");
  assert.deepEqual([...seen].sort(), [...created].sort());

  // Walking by hand with the cursor gives the same sequence.
  const manual: string[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 10; i++) {
    const page = await unkey.apis.listKeys({ apiId, limit: 3, ...(cursor ? { cursor } : {}) });
    manual.push(...page.result.data.map((k) => k.keyId));
    cursor = page.result.pagination?.cursor;
    if (!cursor) break;
  }
  assert.deepEqual(manual, seen);
}

async function errors(): Promise<void> {
  // 400: a name too short; errors[] names the field.
  const bad = await expectError(
    () => unkey.apis.createApi({ name: "ab" }, noRetry),
    BadRequestErrorResponse,
    400,
  );
  assert.equal(bad.error.status, 400);
  assert.equal(typeof bad.error.title, "string");
  assert.equal(typeof bad.error.detail, "string");
  assert.ok(bad.error.type.startsWith("https://"), `error.type ${bad.error.type}`);
  assert.ok(bad.error.errors.length > 0, "400 without errors[]");
  assert.ok(
    bad.error.errors.some((e) => e.location.includes("name")),
    `no error names the field: ${JSON.stringify(bad.error.errors)}`,
  );
  assertRequestId(bad.meta);

  // 400 from the server for a value the SDK does not check (byteLength out of range).
  const apiId = await newApi("errors");
  const badLength = await expectError(
    () => unkey.keys.createKey({ apiId, byteLength: 8 }, noRetry),
    BadRequestErrorResponse,
    400,
  );
  assert.ok(
    badLength.error.errors.some((e) => e.location.includes("byteLength")),
    `no error names byteLength: ${JSON.stringify(badLength.error.errors)}`,
  );

  // 401: an unknown root key.
  const stranger = new Unkey({ rootKey: `unknown_root_key_${suffix}_0123456789`, serverURL });
  const unauthorized = await expectError(
    () => stranger.apis.getApi({ apiId }, noRetry),
    UnauthorizedErrorResponse,
    401,
  );
  assert.equal(unauthorized.error.status, 401);

  // 403: a root key with only api.*.read_api may read the API but not create keys.
  const limited = new Unkey({ rootKey: limitedRootKey, serverURL });
  assert.equal((await limited.apis.getApi({ apiId })).data.id, apiId);
  const forbidden = await expectError(
    () => limited.keys.createKey({ apiId }, noRetry),
    ForbiddenErrorResponse,
    403,
  );
  assert.equal(forbidden.error.status, 403);
  await expectError(
    () => limited.apis.createApi({ name: `sdkts-forbidden-${suffix}` }, noRetry),
    ForbiddenErrorResponse,
    403,
  );

  // 404: an unknown key id and an unknown API id.
  const notFound = await expectError(
    () => unkey.keys.getKey({ keyId: "key_doesnotexist0000" }, noRetry),
    NotFoundErrorResponse,
    404,
  );
  assert.equal(notFound.error.status, 404);
  await expectError(
    () => unkey.apis.getApi({ apiId: "api_doesnotexist0000" }, noRetry),
    NotFoundErrorResponse,
    404,
  );

  // 412: recoverable keys are not available. createKey does not declare 412, so the SDK
  // surfaces it as the generic APIError.
  const precondition = await expectError(
    () => unkey.keys.createKey({ apiId, recoverable: true }, noRetry),
    APIError,
    412,
  );
  assert.ok(!(precondition instanceof PreconditionFailedErrorResponse));
  const body = JSON.parse(precondition.body);
  assert.equal(body.error.status, 412);
  assert.equal(typeof body.meta.requestId, "string");
}

// ---------------------------------------------------------------------------------------------

const sections: [string, () => Promise<void>][] = [
  ["apis.createApi + apis.getApi", apisCreateAndGet],
  ["keys.createKey + getKey/whoami/listKeys", createKeyAndRead],
  ["keys.verifyKey outcomes", verifyOutcomes],
  ["keys.updateKey", updateKeyFields],
  ["keys.updateCredits", updateCredits],
  ["keys.rerollKey", rerollKey],
  ["keys.deleteKey", deleteKey],
  ["apis.deleteApi", deleteApi],
  ["keys.migrateKeys", migrateKeys],
  ["apis.listKeys pagination", pagination],
  ["error classes", errors],
];

let failed = 0;
for (const [name, run] of sections) {
  const started = Date.now();
  try {
    await run();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}`);
    console.log(
      String(e instanceof Error ? (e.stack ?? e.message) : e)
        .split("\n")
        .map((line) => `     ${line}`)
        .join("\n"),
    );
    if (e instanceof UnkeyError) console.log(`     response body: ${e.body}`);
  }
}
console.log(`${sections.length - failed} of ${sections.length} sections passed`);
process.exit(failed === 0 ? 0 : 1);
