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
import type {
  Identity,
  KeysVerifyKeyRatelimit,
  Permission,
  RatelimitResponse,
  Role,
  VerifyKeyRatelimitData,
} from "@unkey/api/models/components";
import {
  APIError,
  BadRequestErrorResponse,
  ConflictErrorResponse,
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
const SECOND = 1_000;
const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

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

/**
 * A request without the SDK, to look at the wire or at server defaults the SDK never leaves to
 * the server (it always sends `limit`, `cost` and `autoApply`). Expects HTTP 200.
 */
async function postRaw(path: string, body: unknown): Promise<any> {
  const res = await fetch(new URL(path, serverURL), {
    method: "POST",
    headers: { authorization: `Bearer ${rootKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(res.status, 200, `${path}: ${text}`);
  return JSON.parse(text);
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

async function verifyLimits(key: string, ratelimits: KeysVerifyKeyRatelimit[], cost?: number) {
  const res = await unkey.keys.verifyKey(
    cost === undefined ? { key, ratelimits } : { key, ratelimits, credits: { cost } },
  );
  assertRequestId(res.meta);
  return res.data;
}

/**
 * Rate-limit windows are fixed windows aligned to the Unix epoch, weighted by the previous one
 * (a sliding window). Exact counts only hold when every call of a check lands in the same
 * window, so this waits for the next window when the current one ends within `margin` ms. With
 * the hour-long windows used below it almost never waits.
 */
async function inOneWindow(duration: number, margin = 5_000): Promise<void> {
  const left = duration - (Date.now() % duration);
  if (left < margin) await sleep(left + 100);
}

/** `reset` is the end of the current fixed window: a multiple of `duration` after the call. */
function assertReset(reset: number, duration: number, before: number, after: number, via: string) {
  assert.equal(reset % duration, 0, `${via}: reset ${reset} is not a multiple of ${duration}`);
  assert.ok(
    reset > before - 1000 && reset <= after + duration,
    `${via}: reset ${reset} not within (${before - 1000}, ${after + duration}]`,
  );
}

type LimitConfig = { name: string; limit: number; duration: number; autoApply: boolean };

/** A key's or identity's limits without their ids, sorted by name; checks the ids' format. */
function limitsOf(limits: RatelimitResponse[] | undefined, via: string): LimitConfig[] {
  const sorted = [...(limits ?? [])].sort((a, b) => a.name.localeCompare(b.name));
  for (const l of sorted) assert.match(l.id, /^rl_[a-zA-Z0-9_]+$/, `${via}: id of limit ${l.name}`);
  return sorted.map(({ name, limit, duration, autoApply }) => ({
    name,
    limit,
    duration,
    autoApply,
  }));
}

/** name → rl_ id of a key's or identity's limits. */
function limitIds(limits: RatelimitResponse[] | undefined): Map<string, string> {
  return new Map((limits ?? []).map((l) => [l.name, l.id]));
}

/** An identity as a comparable value: ratelimits sorted by name, absent meta as `{}`. */
function normalIdentity(identity: Identity | undefined) {
  if (identity === undefined) return undefined;
  return {
    id: identity.id,
    externalId: identity.externalId,
    meta: identity.meta ?? {},
    ratelimits: [...(identity.ratelimits ?? [])].sort((a, b) => a.name.localeCompare(b.name)),
  };
}

/** The entry for limit `name` in a verification's `ratelimits`; there must be exactly one. */
function evaluated(
  data: { ratelimits?: VerifyKeyRatelimitData[] | undefined },
  name: string,
): VerifyKeyRatelimitData {
  const found = (data.ratelimits ?? []).filter((r) => r.name === name);
  assert.equal(
    found.length,
    1,
    `limit ${name} evaluated ${found.length} times: ${JSON.stringify(data.ratelimits)}`,
  );
  return found[0];
}

/** The names of the limits a verification evaluated, sorted. */
function evaluatedNames(data: { ratelimits?: VerifyKeyRatelimitData[] | undefined }): string[] {
  return (data.ratelimits ?? []).map((r) => r.name).sort();
}

/** An evaluated limit without `reset` (checked separately with `assertReset`). */
function withoutReset(r: VerifyKeyRatelimitData) {
  const { reset: _reset, ...rest } = r;
  return rest;
}

function assertErrorLocation(e: BadRequestErrorResponse, field: string): void {
  assert.ok(
    e.error.errors.some((x) => x.location.includes(field)),
    `no error names ${field}: ${JSON.stringify(e.error.errors)}`,
  );
}

type PermissionView = { id: string; name: string; slug: string; description: string | null };
type RoleView = {
  id: string;
  name: string;
  description: string | null;
  permissions: PermissionView[];
};

function bySlug(a: { slug: string }, b: { slug: string }): number {
  return a.slug < b.slug ? -1 : a.slug > b.slug ? 1 : 0;
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** A permission as a comparable value (an absent description as `null`). */
function permissionView(p: Permission): PermissionView {
  return { id: p.id, name: p.name, slug: p.slug, description: p.description ?? null };
}

/** Permissions as comparable values, sorted by slug. */
function permissionViews(list: Permission[] | undefined): PermissionView[] {
  return (list ?? []).map(permissionView).sort(bySlug);
}

/** A role as a comparable value: permissions sorted by slug, absent ones as `[]`. */
function roleView(r: Role): RoleView {
  return {
    id: r.id,
    name: r.name,
    description: r.description ?? null,
    permissions: permissionViews(r.permissions),
  };
}

/** Roles as comparable values, sorted by name. */
function roleViews(list: Role[] | undefined): RoleView[] {
  return (list ?? []).map(roleView).sort(byName);
}

/** Slugs or role names as a key reports them, sorted. */
function sorted(list: string[] | undefined): string[] {
  return [...(list ?? [])].sort();
}

async function getPermissionView(permission: string): Promise<PermissionView> {
  return permissionView((await unkey.permissions.getPermission({ permission })).data);
}

async function getRoleView(role: string): Promise<RoleView> {
  return roleView((await unkey.permissions.getRole({ role })).data);
}

/** What getKey, whoami, listKeys and verifyKey report a key holds: slugs and role names. */
async function assertHolds(
  apiId: string,
  created: { keyId: string; key: string },
  permissions: string[],
  roles: string[],
  via: string,
): Promise<void> {
  const want = { permissions: sorted(permissions), roles: sorted(roles) };
  const holds = (k: { permissions?: string[] | undefined; roles?: string[] | undefined }) => ({
    permissions: sorted(k.permissions),
    roles: sorted(k.roles),
  });
  const got = (await unkey.keys.getKey({ keyId: created.keyId })).data;
  assert.deepEqual(holds(got), want, `${via}: getKey`);
  const me = (await unkey.keys.whoami({ key: created.key })).data;
  assert.deepEqual(holds(me), want, `${via}: whoami`);
  const listed = (await unkey.apis.listKeys({ apiId })).result.data.find(
    (k) => k.keyId === created.keyId,
  );
  assert.ok(listed !== undefined, `${via}: key not listed`);
  assert.deepEqual(holds(listed), want, `${via}: listKeys`);
  const v = await verify(created.key, 0);
  assert.deepEqual(holds(v), want, `${via}: verifyKey`);
}

/** Verifies `key` against a permissions query. */
async function verifyQuery(key: string, permissions: string) {
  const res = await unkey.keys.verifyKey({ key, permissions });
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

async function identitiesCreateAndGet(): Promise<void> {
  const externalId = `sdkts-user-${suffix}`;
  const meta = { plan: "pro", seats: 5, nested: { flags: ["beta"], ok: true } };
  const created = await unkey.identities.createIdentity({
    externalId,
    meta,
    ratelimits: [
      { name: "requests", limit: 10, duration: MINUTE, autoApply: true },
      { name: "tokens", limit: 5000, duration: HOUR },
    ],
  });
  assertRequestId(created.meta);
  const identityId = created.data.identityId;
  assert.match(identityId, /^id_[a-zA-Z0-9_]+$/, "identityId format");

  // By id and by externalId; autoApply defaults to false.
  const byId = await unkey.identities.getIdentity({ identity: identityId });
  assertRequestId(byId.meta);
  assert.equal(byId.data.id, identityId);
  assert.equal(byId.data.externalId, externalId);
  assert.deepEqual(byId.data.meta, meta);
  assert.deepEqual(limitsOf(byId.data.ratelimits, "getIdentity"), [
    { name: "requests", limit: 10, duration: MINUTE, autoApply: true },
    { name: "tokens", limit: 5000, duration: HOUR, autoApply: false },
  ]);
  const ids = limitIds(byId.data.ratelimits);
  assert.notEqual(ids.get("requests"), ids.get("tokens"), "each limit has its own id");
  const byExternalId = await unkey.identities.getIdentity({ identity: externalId });
  assert.deepEqual(normalIdentity(byExternalId.data), normalIdentity(byId.data));
  // The SDK always sends autoApply; without it the server also takes false.
  const rawExternalId = `sdkts-raw-${suffix}`;
  await postRaw("/v2/identities.createIdentity", {
    externalId: rawExternalId,
    ratelimits: [{ name: "requests", limit: 1, duration: MINUTE }],
  });
  assert.deepEqual(
    limitsOf(
      (await unkey.identities.getIdentity({ identity: rawExternalId })).data.ratelimits,
      "raw",
    ),
    [{ name: "requests", limit: 1, duration: MINUTE, autoApply: false }],
  );

  // Only an externalId: no meta, no limits.
  const bareExternalId = `sdkts-bare-${suffix}`;
  const bare = await unkey.identities.createIdentity({ externalId: bareExternalId });
  assert.notEqual(bare.data.identityId, identityId);
  const bareData = (await unkey.identities.getIdentity({ identity: bare.data.identityId })).data;
  assert.equal(bareData.externalId, bareExternalId);
  assert.deepEqual(bareData.meta ?? {}, {}, "no meta");
  assert.deepEqual(bareData.ratelimits ?? [], [], "no ratelimits");

  // A duplicate externalId is a conflict and changes nothing.
  const conflict = await expectError(
    () => unkey.identities.createIdentity({ externalId, meta: { other: true } }, noRetry),
    ConflictErrorResponse,
    409,
  );
  assert.equal(conflict.error.status, 409);
  assert.ok(
    conflict.error.type.endsWith("/identity_already_exists"),
    `409 error.type ${conflict.error.type}`,
  );
  assertRequestId(conflict.meta);
  assert.deepEqual(
    (await unkey.identities.getIdentity({ identity: externalId })).data.meta,
    meta,
    "a refused duplicate left the identity alone",
  );

  // Unknown id or externalId → 404.
  await expectError(
    () => unkey.identities.getIdentity({ identity: "id_doesnotexist0000" }, noRetry),
    NotFoundErrorResponse,
    404,
  );
  const missing = await expectError(
    () => unkey.identities.getIdentity({ identity: `sdkts-nobody-${suffix}` }, noRetry),
    NotFoundErrorResponse,
    404,
  );
  assert.equal(missing.error.status, 404);

  // 400: an externalId outside [a-zA-Z0-9_.-], a limit window under a second.
  const badExternalId = await expectError(
    () => unkey.identities.createIdentity({ externalId: "has spaces!" }, noRetry),
    BadRequestErrorResponse,
    400,
  );
  assertErrorLocation(badExternalId, "externalId");
  const badLimit = await expectError(
    () =>
      unkey.identities.createIdentity(
        {
          externalId: `sdkts-badlimit-${suffix}`,
          ratelimits: [{ name: "requests", limit: 10, duration: 999 }],
        },
        noRetry,
      ),
    BadRequestErrorResponse,
    400,
  );
  assertErrorLocation(badLimit, "ratelimits");
  await expectError(
    () => unkey.identities.getIdentity({ identity: `sdkts-badlimit-${suffix}` }, noRetry),
    NotFoundErrorResponse,
    404,
  );
}

async function identitiesList(): Promise<void> {
  const tag = `sdkts-list-${suffix}`;
  const created = new Map<string, string>(); // externalId → identity id
  for (let i = 0; i < 7; i++) {
    const externalId = `${tag}-${i}`;
    const res = await unkey.identities.createIdentity({
      externalId,
      meta: { index: i },
      ...(i === 0
        ? { ratelimits: [{ name: "requests", limit: 3, duration: MINUTE, autoApply: true }] }
        : {}),
    });
    created.set(externalId, res.data.identityId);
  }

  // The auto-pager over a search, in pages of 3; listed identities carry meta and limits.
  const res = await unkey.identities.listIdentities({ limit: 3, search: tag });
  const seen: string[] = [];
  const sizes: number[] = [];
  const hasMore: boolean[] = [];
  let pages = 0;
  for await (const page of res) {
    pages += 1;
    assert.ok(pages <= 10, "the auto-pager does not terminate");
    assertRequestId(page.result.meta);
    sizes.push(page.result.data.length);
    hasMore.push(page.result.pagination.hasMore);
    for (const identity of page.result.data) {
      seen.push(identity.id);
      const index = Number(identity.externalId.slice(tag.length + 1));
      assert.equal(created.get(identity.externalId), identity.id, `listed ${identity.externalId}`);
      assert.deepEqual(identity.meta, { index }, `meta of ${identity.externalId}`);
      assert.deepEqual(
        limitsOf(identity.ratelimits, "listIdentities"),
        index === 0 ? [{ name: "requests", limit: 3, duration: MINUTE, autoApply: true }] : [],
        `ratelimits of ${identity.externalId}`,
      );
    }
  }
  assert.deepEqual(sizes, [3, 3, 1], "page sizes");
  assert.deepEqual(hasMore, [true, true, false], "hasMore per page");
  assert.equal(new Set(seen).size, 7, "every identity listed exactly once");
  assert.deepEqual([...seen].sort(), [...created.values()].sort());

  // Walking by hand with the cursor gives the same sequence.
  const manual: string[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 10; i++) {
    const page = await unkey.identities.listIdentities({
      limit: 3,
      search: tag,
      ...(cursor ? { cursor } : {}),
    });
    manual.push(...page.result.data.map((x) => x.id));
    cursor = page.result.pagination.cursor;
    if (!cursor) break;
  }
  assert.deepEqual(manual, seen);

  // search is a case-insensitive substring of the externalId or the id.
  const upper = await unkey.identities.listIdentities({ search: tag.toUpperCase() });
  assert.deepEqual(upper.result.data.map((x) => x.id).sort(), [...created.values()].sort());
  const one = await unkey.identities.listIdentities({ search: `${tag}-4` });
  assert.deepEqual(
    one.result.data.map((x) => x.externalId),
    [`${tag}-4`],
  );
  const fourth = created.get(`${tag}-4`)!;
  const byId = await unkey.identities.listIdentities({ search: fourth.toUpperCase() });
  assert.deepEqual(
    byId.result.data.map((x) => x.id),
    [fourth],
    "search by id",
  );
  const none = await unkey.identities.listIdentities({ search: `no-such-identity-${suffix}` });
  assert.deepEqual(none.result.data, []);
  assert.equal(none.result.pagination.hasMore, false);
  assert.equal(none.result.pagination.cursor, undefined, "no cursor on an empty page");

  // Without a search (default limit 100) every identity is listed once, ours among them.
  const everything: string[] = [];
  pages = 0;
  for await (const page of await unkey.identities.listIdentities({})) {
    pages += 1;
    assert.ok(pages <= 20, "the auto-pager does not terminate");
    assert.ok(page.result.data.length <= 100, "a page holds at most 100 identities");
    everything.push(...page.result.data.map((x) => x.id));
  }
  assert.equal(new Set(everything).size, everything.length, "an identity listed twice");
  for (const id of created.values()) assert.ok(everything.includes(id), `${id} not listed`);

  // limit is 1..100.
  for (const limit of [0, 101]) {
    const bad = await expectError(
      () => unkey.identities.listIdentities({ limit }, noRetry),
      BadRequestErrorResponse,
      400,
    );
    assertErrorLocation(bad, "limit");
  }
}

async function identitiesUpdate(): Promise<void> {
  const externalId = `sdkts-update-${suffix}`;
  const created = await unkey.identities.createIdentity({
    externalId,
    meta: { plan: "free" },
    ratelimits: [
      { name: "requests", limit: 10, duration: MINUTE, autoApply: true },
      { name: "tokens", limit: 100, duration: HOUR },
    ],
  });
  const identityId = created.data.identityId;
  const original = (await unkey.identities.getIdentity({ identity: identityId })).data;
  const originalIds = limitIds(original.ratelimits);

  // meta alone: replaced, not merged; the limits stay, ids and all.
  const metaOnly = await unkey.identities.updateIdentity({
    identity: identityId,
    meta: { plan: "pro", seats: 2 },
  });
  assertRequestId(metaOnly.meta);
  assert.equal(metaOnly.data.id, identityId);
  assert.equal(metaOnly.data.externalId, externalId);
  assert.deepEqual(metaOnly.data.meta, { plan: "pro", seats: 2 });
  assert.deepEqual(
    normalIdentity(metaOnly.data)?.ratelimits,
    normalIdentity(original)?.ratelimits,
    "ratelimits untouched by a meta update",
  );

  // ratelimits (addressed by externalId): replaced by name. A name that stays keeps its id,
  // a name left out is gone, a new name gets a new id. meta is untouched.
  const limits = await unkey.identities.updateIdentity({
    identity: externalId,
    ratelimits: [
      { name: "requests", limit: 20, duration: HOUR, autoApply: false },
      { name: "burst", limit: 5, duration: 10 * SECOND, autoApply: true },
    ],
  });
  assert.equal(limits.data.id, identityId);
  assert.deepEqual(limits.data.meta, { plan: "pro", seats: 2 }, "meta untouched");
  assert.deepEqual(limitsOf(limits.data.ratelimits, "updateIdentity"), [
    { name: "burst", limit: 5, duration: 10 * SECOND, autoApply: true },
    { name: "requests", limit: 20, duration: HOUR, autoApply: false },
  ]);
  const newIds = limitIds(limits.data.ratelimits);
  assert.equal(newIds.get("requests"), originalIds.get("requests"), "requests keeps its id");
  assert.ok(![...originalIds.values()].includes(newIds.get("burst")!), "burst gets a new id");
  const stored = (await unkey.identities.getIdentity({ identity: identityId })).data;
  assert.deepEqual(normalIdentity(stored), normalIdentity(limits.data), "getIdentity after update");

  // The updated limit is what a key of the identity is checked against.
  const apiId = await newApi("identity-update");
  const key = await unkey.keys.createKey({ apiId, prefix: PREFIX, externalId });
  await inOneWindow(HOUR);
  const v = await verifyLimits(key.data.key, [{ name: "requests" }]);
  assert.equal(v.code, "VALID");
  assert.deepEqual(withoutReset(evaluated(v, "requests")), {
    exceeded: false,
    id: originalIds.get("requests"),
    name: "requests",
    limit: 20,
    duration: HOUR,
    remaining: 19,
    autoApply: false,
  });

  // {} clears meta; [] clears the limits.
  const noMeta = await unkey.identities.updateIdentity({ identity: identityId, meta: {} });
  assert.deepEqual(noMeta.data.meta ?? {}, {}, "meta cleared with {}");
  assert.equal(noMeta.data.ratelimits?.length, 2, "ratelimits untouched by clearing meta");
  const noLimits = await unkey.identities.updateIdentity({ identity: identityId, ratelimits: [] });
  assert.deepEqual(noLimits.data.ratelimits ?? [], [], "ratelimits cleared with []");
  const cleared = (await unkey.identities.getIdentity({ identity: externalId })).data;
  assert.deepEqual(cleared.meta ?? {}, {});
  assert.deepEqual(cleared.ratelimits ?? [], []);

  await expectError(
    () => unkey.identities.updateIdentity({ identity: "id_doesnotexist0000", meta: {} }, noRetry),
    NotFoundErrorResponse,
    404,
  );
  const bad = await expectError(
    () =>
      unkey.identities.updateIdentity(
        { identity: identityId, ratelimits: [{ name: "requests", limit: 0, duration: MINUTE }] },
        noRetry,
      ),
    BadRequestErrorResponse,
    400,
  );
  assertErrorLocation(bad, "ratelimits");
}

async function identitiesDelete(): Promise<void> {
  const apiId = await newApi("identity-delete");
  const externalId = `sdkts-delete-${suffix}`;
  const created = await unkey.identities.createIdentity({
    externalId,
    meta: { doomed: true },
    ratelimits: [{ name: "shared", limit: 1, duration: HOUR, autoApply: true }],
  });
  const identityId = created.data.identityId;
  const key = await unkey.keys.createKey({ apiId, prefix: PREFIX, externalId });
  await inOneWindow(HOUR);
  const linked = await verify(key.data.key);
  assert.equal(linked.code, "VALID");
  assert.equal(linked.identity?.id, identityId);
  assert.equal((await verify(key.data.key)).code, "RATE_LIMITED", "the identity's limit applies");

  // The response is only `meta` (the SDK models no `data` for it).
  const res = await unkey.identities.deleteIdentity({ identity: externalId });
  assertRequestId(res.meta);
  for (const identity of [identityId, externalId]) {
    await expectError(
      () => unkey.identities.getIdentity({ identity }, noRetry),
      NotFoundErrorResponse,
      404,
    );
  }

  // The key keeps working, without the identity or its limits.
  const orphan = await verify(key.data.key);
  assert.equal(orphan.code, "VALID", "a key of a deleted identity");
  assert.equal(orphan.identity, undefined, "verify: identity after deleteIdentity");
  assert.deepEqual(orphan.ratelimits ?? [], [], "the identity's limits are gone");
  assert.equal((await unkey.keys.getKey({ keyId: key.data.keyId })).data.identity, undefined);

  // The externalId is free again; the new identity is a different one and owns no keys.
  const again = await unkey.identities.createIdentity({ externalId });
  assert.notEqual(again.data.identityId, identityId, "a recreated identity gets a new id");
  assert.equal(
    (await unkey.keys.getKey({ keyId: key.data.keyId })).data.identity,
    undefined,
    "the old key is not linked to the recreated identity",
  );
  assert.deepEqual(
    (await unkey.apis.listKeys({ apiId, externalId })).result.data,
    [],
    "listKeys by the recreated identity's externalId",
  );

  // A second delete is a 404. deleteIdentity declares its errors as application/problem+json,
  // which Keywarden (like Unkey) only sends when asked for, so the SDK raises the generic APIError.
  const gone = await expectError(
    () => unkey.identities.deleteIdentity({ identity: identityId }, noRetry),
    APIError,
    404,
  );
  assert.equal(JSON.parse(gone.body).error.status, 404);

  // On the wire the success body is `{"meta": …}` alone.
  const raw = await postRaw("/v2/identities.deleteIdentity", { identity: again.data.identityId });
  assert.deepEqual(Object.keys(raw), ["meta"], `deleteIdentity body: ${JSON.stringify(raw)}`);
  await expectError(
    () => unkey.identities.getIdentity({ identity: externalId }, noRetry),
    NotFoundErrorResponse,
    404,
  );
}

async function keyIdentitiesAndLimits(): Promise<void> {
  const apiId = await newApi("key-identity");

  // createKey with an externalId nobody has yet creates the identity; key-level limits are
  // stored with the key and shown apart from the identity's.
  const ownerExternalId = `sdkts-owner-${suffix}`;
  const a = await unkey.keys.createKey({
    apiId,
    prefix: PREFIX,
    externalId: ownerExternalId,
    ratelimits: [
      { name: "requests", limit: 5, duration: MINUTE, autoApply: true },
      { name: "heavy", limit: 2, duration: HOUR },
    ],
  });
  const owner = (await unkey.identities.getIdentity({ identity: ownerExternalId })).data;
  assert.match(owner.id, /^id_/, "identity created by createKey");
  const aLimits = [
    { name: "heavy", limit: 2, duration: HOUR, autoApply: false },
    { name: "requests", limit: 5, duration: MINUTE, autoApply: true },
  ];
  const checkA = (k: Awaited<ReturnType<typeof unkey.keys.getKey>>["data"], via: string) => {
    assert.equal(k.identity?.id, owner.id, `${via}: identity.id`);
    assert.equal(k.identity?.externalId, ownerExternalId, `${via}: identity.externalId`);
    assert.deepEqual(k.identity?.meta ?? {}, {}, `${via}: identity.meta`);
    assert.deepEqual(k.identity?.ratelimits ?? [], [], `${via}: identity.ratelimits`);
    assert.deepEqual(limitsOf(k.ratelimits, via), aLimits, `${via}: ratelimits`);
  };
  const aData = (await unkey.keys.getKey({ keyId: a.data.keyId })).data;
  checkA(aData, "getKey");
  checkA((await unkey.keys.whoami({ key: a.data.key })).data, "whoami");
  const aIds = limitIds(aData.ratelimits);

  // Keys of an existing identity show its meta and limits.
  const teamExternalId = `sdkts-team-${suffix}`;
  const team = await unkey.identities.createIdentity({
    externalId: teamExternalId,
    meta: { tier: "team" },
    ratelimits: [{ name: "team_requests", limit: 100, duration: HOUR, autoApply: true }],
  });
  const teamData = (await unkey.identities.getIdentity({ identity: team.data.identityId })).data;
  const b = await unkey.keys.createKey({ apiId, prefix: PREFIX, externalId: teamExternalId });
  const c = await unkey.keys.createKey({ apiId, prefix: PREFIX, externalId: teamExternalId });
  const plain = await unkey.keys.createKey({ apiId, prefix: PREFIX });
  const bData = (await unkey.keys.getKey({ keyId: b.data.keyId })).data;
  assert.deepEqual(normalIdentity(bData.identity), normalIdentity(teamData), "getKey: identity");
  assert.deepEqual(bData.ratelimits ?? [], [], "identity limits are not key limits");
  assert.equal((await unkey.keys.getKey({ keyId: plain.data.keyId })).data.identity, undefined);

  // apis.listKeys shows the same, and filters by externalId.
  const listed = (await unkey.apis.listKeys({ apiId })).result.data;
  assert.equal(listed.length, 4);
  checkA(
    listed.find((k) => k.keyId === a.data.keyId)!,
    "listKeys",
  );
  assert.deepEqual(
    normalIdentity(listed.find((k) => k.keyId === c.data.keyId)!.identity),
    normalIdentity(teamData),
    "listKeys: identity",
  );
  const teamKeys = await unkey.apis.listKeys({ apiId, externalId: teamExternalId });
  assert.deepEqual(
    teamKeys.result.data.map((k) => k.keyId).sort(),
    [b.data.keyId, c.data.keyId].sort(),
    "listKeys filtered by externalId",
  );
  assert.deepEqual(
    (await unkey.apis.listKeys({ apiId, externalId: ownerExternalId })).result.data.map(
      (k) => k.keyId,
    ),
    [a.data.keyId],
  );
  const filteredPages: number[] = [];
  for await (const page of await unkey.apis.listKeys({
    apiId,
    externalId: teamExternalId,
    limit: 1,
  })) {
    filteredPages.push(page.result.data.length);
    assert.ok(filteredPages.length <= 5, "the auto-pager does not terminate");
  }
  assert.deepEqual(filteredPages, [1, 1], "filtered pages of 1");

  // updateKey ratelimits: replaced by name, a kept name keeps its id; other fields untouched.
  await unkey.keys.updateKey({
    keyId: a.data.keyId,
    ratelimits: [
      { name: "requests", limit: 7, duration: HOUR, autoApply: true },
      { name: "burst", limit: 3, duration: MINUTE },
    ],
  });
  let k = (await unkey.keys.getKey({ keyId: a.data.keyId })).data;
  assert.deepEqual(limitsOf(k.ratelimits, "after updateKey"), [
    { name: "burst", limit: 3, duration: MINUTE, autoApply: false },
    { name: "requests", limit: 7, duration: HOUR, autoApply: true },
  ]);
  const updatedIds = limitIds(k.ratelimits);
  assert.equal(updatedIds.get("requests"), aIds.get("requests"), "requests keeps its id");
  assert.ok(![...aIds.values()].includes(updatedIds.get("burst")!), "burst gets a new id");
  assert.equal(k.identity?.id, owner.id, "updating limits leaves the identity");
  await unkey.keys.updateKey({ keyId: a.data.keyId, ratelimits: [] });
  k = (await unkey.keys.getKey({ keyId: a.data.keyId })).data;
  assert.deepEqual(k.ratelimits ?? [], [], "ratelimits cleared with []");

  // updateKey externalId: link to an existing identity, to a new one (created), unlink (null).
  await unkey.keys.updateKey({ keyId: plain.data.keyId, externalId: teamExternalId });
  k = (await unkey.keys.getKey({ keyId: plain.data.keyId })).data;
  assert.equal(k.identity?.id, team.data.identityId, "linked to the team");
  assert.equal(
    (await unkey.apis.listKeys({ apiId, externalId: teamExternalId })).result.data.length,
    3,
  );
  const freshExternalId = `sdkts-fresh-${suffix}`;
  await unkey.keys.updateKey({ keyId: plain.data.keyId, externalId: freshExternalId });
  k = (await unkey.keys.getKey({ keyId: plain.data.keyId })).data;
  const fresh = (await unkey.identities.getIdentity({ identity: freshExternalId })).data;
  assert.equal(k.identity?.id, fresh.id, "linked to a newly created identity");
  assert.equal(k.identity?.externalId, freshExternalId);
  await unkey.keys.updateKey({ keyId: plain.data.keyId, externalId: null });
  k = (await unkey.keys.getKey({ keyId: plain.data.keyId })).data;
  assert.equal(k.identity, undefined, "externalId: null unlinks");
  assert.equal(
    (await unkey.identities.getIdentity({ identity: freshExternalId })).data.id,
    fresh.id,
    "unlinking keeps the identity",
  );
  assert.equal((await verify(plain.data.key)).identity, undefined, "verify after unlinking");

  // Omitting externalId leaves the link as it is.
  await unkey.keys.updateKey({ keyId: b.data.keyId, name: "renamed" });
  assert.equal(
    (await unkey.keys.getKey({ keyId: b.data.keyId })).data.identity?.id,
    team.data.identityId,
  );

  const bad = await expectError(
    () => unkey.keys.createKey({ apiId, externalId: "not valid!" }, noRetry),
    BadRequestErrorResponse,
    400,
  );
  assertErrorLocation(bad, "externalId");
  const badLimit = await expectError(
    () =>
      unkey.keys.updateKey(
        { keyId: b.data.keyId, ratelimits: [{ name: "requests", limit: 1, duration: 999 }] },
        noRetry,
      ),
    BadRequestErrorResponse,
    400,
  );
  assertErrorLocation(badLimit, "ratelimits");
}

async function verifyKeyLimits(): Promise<void> {
  const apiId = await newApi("verify-limits");
  await inOneWindow(HOUR);

  // An auto-applied key limit costs 1 on every verification.
  const auto = await unkey.keys.createKey({
    apiId,
    prefix: PREFIX,
    ratelimits: [{ name: "requests", limit: 3, duration: HOUR, autoApply: true }],
  });
  const autoId = (await unkey.keys.getKey({ keyId: auto.data.keyId })).data.ratelimits?.[0].id;
  for (let i = 0; i < 3; i++) {
    const before = Date.now();
    const v = await verify(auto.data.key);
    const after = Date.now();
    assert.equal(v.code, "VALID", `call ${i + 1}`);
    assert.equal(v.ratelimits?.length, 1, `call ${i + 1}: ratelimits`);
    assert.deepEqual(withoutReset(v.ratelimits![0]), {
      exceeded: false,
      id: autoId,
      name: "requests",
      limit: 3,
      duration: HOUR,
      remaining: 2 - i,
      autoApply: true,
    });
    assertReset(v.ratelimits![0].reset, HOUR, before, after, `call ${i + 1}`);
  }
  const limited = await verify(auto.data.key);
  assert.equal(limited.valid, false);
  assert.equal(limited.code, "RATE_LIMITED");
  assert.equal(limited.keyId, auto.data.keyId, "RATE_LIMITED carries the key's details");
  assert.equal(evaluated(limited, "requests").exceeded, true);
  assert.equal(evaluated(limited, "requests").remaining, 0);

  // RATE_LIMITED spends no credits.
  const metered = await unkey.keys.createKey({
    apiId,
    prefix: PREFIX,
    credits: { remaining: 10 },
    ratelimits: [{ name: "requests", limit: 1, duration: HOUR, autoApply: true }],
  });
  const first = await verify(metered.data.key);
  assert.equal(first.code, "VALID");
  assert.equal(first.credits, 9);
  const blocked = await verify(metered.data.key, 5);
  assert.equal(blocked.code, "RATE_LIMITED");
  assert.equal(blocked.credits, 9, "a rate-limited verification must not spend credits");
  assert.deepEqual((await unkey.keys.getKey({ keyId: metered.data.keyId })).data.credits, {
    remaining: 9,
  });

  // USAGE_EXCEEDED gives back the rate-limit count it took (a Keywarden extension).
  const broke = await unkey.keys.createKey({
    apiId,
    prefix: PREFIX,
    credits: { remaining: 1 },
    ratelimits: [{ name: "requests", limit: 2, duration: HOUR, autoApply: true }],
  });
  const spent = await verify(broke.data.key);
  assert.equal(spent.code, "VALID");
  assert.equal(evaluated(spent, "requests").remaining, 1);
  const exhausted = await verify(broke.data.key);
  assert.equal(exhausted.code, "USAGE_EXCEEDED");
  assert.equal(exhausted.credits, 0);
  const free = await verify(broke.data.key, 0);
  assert.equal(free.code, "VALID", "the USAGE_EXCEEDED call's rate-limit count was refunded");
  assert.equal(evaluated(free, "requests").remaining, 0);
  assert.equal((await verify(broke.data.key, 0)).code, "RATE_LIMITED");

  // A stored limit without autoApply is checked only when named, with the cost given there;
  // a denied call consumes nothing.
  const named = await unkey.keys.createKey({
    apiId,
    prefix: PREFIX,
    ratelimits: [{ name: "heavy", limit: 3, duration: HOUR }],
  });
  const heavyId = (await unkey.keys.getKey({ keyId: named.data.keyId })).data.ratelimits?.[0].id;
  const unnamed = await verify(named.data.key);
  assert.equal(unnamed.code, "VALID");
  assert.deepEqual(unnamed.ratelimits ?? [], [], "a limit that is not auto-applied is not checked");
  const heavy = await verifyLimits(named.data.key, [{ name: "heavy" }]);
  assert.equal(heavy.code, "VALID");
  assert.deepEqual(withoutReset(evaluated(heavy, "heavy")), {
    exceeded: false,
    id: heavyId,
    name: "heavy",
    limit: 3,
    duration: HOUR,
    remaining: 2,
    autoApply: false,
  });
  const tooHeavy = await verifyLimits(named.data.key, [{ name: "heavy", cost: 3 }]);
  assert.equal(tooHeavy.code, "RATE_LIMITED");
  assert.equal(evaluated(tooHeavy, "heavy").exceeded, true);
  const rest = await verifyLimits(named.data.key, [{ name: "heavy", cost: 2 }]);
  assert.equal(rest.code, "VALID", "the denied call consumed nothing");
  assert.equal(evaluated(rest, "heavy").remaining, 0);

  // An inline limit (limit + duration) is not stored and has no id.
  const bare = await unkey.keys.createKey({ apiId, prefix: PREFIX });
  const adhoc = [{ name: "adhoc", limit: 2, duration: HOUR }];
  const before = Date.now();
  const inline1 = await verifyLimits(bare.data.key, adhoc);
  const after = Date.now();
  assert.equal(inline1.code, "VALID");
  assert.deepEqual(withoutReset(evaluated(inline1, "adhoc")), {
    exceeded: false,
    id: "",
    name: "adhoc",
    limit: 2,
    duration: HOUR,
    remaining: 1,
    autoApply: false,
  });
  assertReset(evaluated(inline1, "adhoc").reset, HOUR, before, after, "inline");
  assert.equal(evaluated(await verifyLimits(bare.data.key, adhoc), "adhoc").remaining, 0);
  const inline3 = await verifyLimits(bare.data.key, adhoc);
  assert.equal(inline3.code, "RATE_LIMITED");
  assert.equal(evaluated(inline3, "adhoc").exceeded, true);
  assert.deepEqual(
    (await unkey.keys.getKey({ keyId: bare.data.keyId })).data.ratelimits ?? [],
    [],
    "inline limits are not stored",
  );
  assert.deepEqual((await verify(bare.data.key)).ratelimits ?? [], [], "nor applied later");

  // A name neither the key nor its identity has → 412 (undeclared on verifyKey, so the SDK
  // raises the generic APIError); nothing is spent.
  const paid = await unkey.keys.createKey({ apiId, prefix: PREFIX, credits: { remaining: 5 } });
  const unknown = await expectError(
    () =>
      unkey.keys.verifyKey({ key: paid.data.key, ratelimits: [{ name: "nonexistent" }] }, noRetry),
    APIError,
    412,
  );
  assert.ok(!(unknown instanceof PreconditionFailedErrorResponse));
  assert.equal(JSON.parse(unknown.body).error.status, 412);
  assert.equal((await verify(paid.data.key, 0)).credits, 5, "a 412 verification spent credits");

  // Naming an auto-applied limit sets its cost. Several limits are checked together: when one
  // fails, none is counted.
  const multi = await unkey.keys.createKey({
    apiId,
    prefix: PREFIX,
    ratelimits: [
      { name: "requests", limit: 10, duration: HOUR, autoApply: true },
      { name: "heavy", limit: 2, duration: HOUR },
    ],
  });
  const costly = await verifyLimits(multi.data.key, [{ name: "requests", cost: 4 }]);
  assert.equal(costly.code, "VALID");
  assert.deepEqual(evaluatedNames(costly), ["requests"]);
  assert.equal(evaluated(costly, "requests").remaining, 6);
  const denied = await verifyLimits(multi.data.key, [{ name: "heavy", cost: 3 }]);
  assert.equal(denied.code, "RATE_LIMITED");
  assert.deepEqual(evaluatedNames(denied), ["heavy", "requests"]);
  assert.equal(evaluated(denied, "heavy").exceeded, true);
  assert.equal(evaluated(denied, "requests").exceeded, false);
  const both = await verifyLimits(multi.data.key, [{ name: "heavy", cost: 2 }]);
  assert.equal(both.code, "VALID");
  assert.equal(evaluated(both, "heavy").remaining, 0);
  assert.equal(evaluated(both, "requests").remaining, 5, "the denied call counted on requests");
  const withInline = await verifyLimits(multi.data.key, [
    { name: "adhoc", limit: 1, duration: HOUR },
  ]);
  assert.deepEqual(evaluatedNames(withInline), ["adhoc", "requests"]);
  assert.equal(evaluated(withInline, "requests").remaining, 4);
}

async function verifyIdentityLimits(): Promise<void> {
  const apiId = await newApi("verify-identity");
  const externalId = `sdkts-shared-${suffix}`;
  await unkey.identities.createIdentity({
    externalId,
    meta: { org: "acme" },
    ratelimits: [
      { name: "shared", limit: 4, duration: HOUR, autoApply: true },
      { name: "requests", limit: 100, duration: HOUR, autoApply: true },
      { name: "exports", limit: 1, duration: HOUR },
    ],
  });
  const identity = (await unkey.identities.getIdentity({ identity: externalId })).data;
  const identityIds = limitIds(identity.ratelimits);
  const k1 = await unkey.keys.createKey({ apiId, prefix: PREFIX, externalId });
  // k2 has its own "requests", which wins over the identity's.
  const k2 = await unkey.keys.createKey({
    apiId,
    prefix: PREFIX,
    externalId,
    ratelimits: [{ name: "requests", limit: 2, duration: HOUR, autoApply: true }],
  });
  const k2Data = (await unkey.keys.getKey({ keyId: k2.data.keyId })).data;
  const k2RequestsId = k2Data.ratelimits?.[0].id;
  assert.deepEqual(
    normalIdentity(k2Data.identity),
    normalIdentity(identity),
    "identity.ratelimits lists only the identity's limits",
  );
  await inOneWindow(HOUR);

  // Every auto-applied limit is checked; the response shows the identity.
  const v1 = await verify(k1.data.key);
  assert.equal(v1.code, "VALID");
  assert.deepEqual(normalIdentity(v1.identity), normalIdentity(identity), "verify: identity");
  assert.deepEqual(evaluatedNames(v1), ["requests", "shared"]);
  assert.deepEqual(withoutReset(evaluated(v1, "shared")), {
    exceeded: false,
    id: identityIds.get("shared"),
    name: "shared",
    limit: 4,
    duration: HOUR,
    remaining: 3,
    autoApply: true,
  });
  assert.equal(evaluated(v1, "requests").id, identityIds.get("requests"));
  assert.equal(evaluated(v1, "requests").remaining, 99);

  // The identity's budget is shared by its keys; the key's own limit wins on the same name.
  const v2 = await verify(k2.data.key);
  assert.equal(v2.code, "VALID");
  assert.equal(evaluated(v2, "shared").remaining, 2, "shared across the identity's keys");
  assert.deepEqual(withoutReset(evaluated(v2, "requests")), {
    exceeded: false,
    id: k2RequestsId,
    name: "requests",
    limit: 2,
    duration: HOUR,
    remaining: 1,
    autoApply: true,
  });

  // A named identity limit that is not auto-applied, also shared.
  const e1 = await verifyLimits(k1.data.key, [{ name: "exports" }]);
  assert.equal(e1.code, "VALID");
  assert.deepEqual(evaluatedNames(e1), ["exports", "requests", "shared"]);
  assert.deepEqual(withoutReset(evaluated(e1, "exports")), {
    exceeded: false,
    id: identityIds.get("exports"),
    name: "exports",
    limit: 1,
    duration: HOUR,
    remaining: 0,
    autoApply: false,
  });
  assert.equal(evaluated(e1, "shared").remaining, 1);
  const e2 = await verifyLimits(k2.data.key, [{ name: "exports" }]);
  assert.equal(e2.code, "RATE_LIMITED", "exports is shared with k1");
  assert.equal(evaluated(e2, "exports").exceeded, true);

  // The denied call consumed nothing: shared still has 1 left, k2's requests too.
  const v3 = await verify(k2.data.key);
  assert.equal(v3.code, "VALID");
  assert.equal(evaluated(v3, "shared").remaining, 0);
  assert.equal(evaluated(v3, "requests").remaining, 0);
  const v4 = await verify(k1.data.key);
  assert.equal(v4.code, "RATE_LIMITED");
  assert.equal(v4.valid, false);
  assert.equal(evaluated(v4, "shared").exceeded, true);
  assert.equal(v4.identity?.id, identity.id);
}

async function ratelimitLimit(): Promise<void> {
  const namespace = `sdkts-ns-${suffix}`;
  await inOneWindow(HOUR);

  // A new namespace is created on first use; limit/remaining/reset per call; the default cost
  // is 1; an exceeded limit is still HTTP 200, with success false.
  for (let i = 0; i < 3; i++) {
    const before = Date.now();
    const res = await unkey.ratelimit.limit({
      namespace,
      identifier: "user_a",
      limit: 3,
      duration: HOUR,
    });
    const after = Date.now();
    assertRequestId(res.meta);
    const { reset, ...rest } = res.data;
    assert.deepEqual(rest, { limit: 3, remaining: 2 - i, success: true }, `call ${i + 1}`);
    assertReset(reset, HOUR, before, after, `call ${i + 1}`);
  }
  const denied = await unkey.ratelimit.limit({
    namespace,
    identifier: "user_a",
    limit: 3,
    duration: HOUR,
  });
  assert.equal(denied.data.success, false);
  assert.equal(denied.data.limit, 3);
  assert.equal(denied.data.remaining, 0);
  assert.equal(denied.data.overrideId, undefined);

  // Counters are per identifier and per namespace.
  const other = await unkey.ratelimit.limit({
    namespace,
    identifier: "user_b",
    limit: 3,
    duration: HOUR,
  });
  assert.equal(other.data.success, true);
  assert.equal(other.data.remaining, 2, "another identifier");
  const elsewhere = await unkey.ratelimit.limit({
    namespace: `${namespace}-2`,
    identifier: "user_a",
    limit: 3,
    duration: HOUR,
  });
  assert.equal(elsewhere.data.remaining, 2, "the same identifier in another namespace");

  // The SDK always sends cost; without it the server also charges 1.
  const defaultCost = await postRaw("/v2/ratelimit.limit", {
    namespace,
    identifier: "user_default_cost",
    limit: 5,
    duration: HOUR,
  });
  assert.deepEqual([defaultCost.data.success, defaultCost.data.remaining], [true, 4]);

  // cost: a call that does not fit is denied, consumes nothing and reports what is left;
  // cost 0 only looks.
  const call = (cost: number) =>
    unkey.ratelimit.limit({ namespace, identifier: "user_cost", limit: 10, duration: HOUR, cost });
  const c4 = (await call(4)).data;
  assert.deepEqual([c4.success, c4.remaining], [true, 6], "cost 4");
  const c7 = (await call(7)).data;
  assert.deepEqual([c7.success, c7.remaining], [false, 6], "cost 7 with 6 left");
  const c0 = (await call(0)).data;
  assert.deepEqual([c0.success, c0.remaining], [true, 6], "cost 0 after a denied call");
  const c6 = (await call(6)).data;
  assert.deepEqual([c6.success, c6.remaining], [true, 0], "cost 6 uses up the rest");
  const full = (await call(0)).data;
  assert.deepEqual([full.success, full.remaining], [true, 0], "cost 0 at the limit");
  assert.equal((await call(1)).data.success, false, "cost 1 at the limit");

  // reset is the end of the current window for short and for the longest windows.
  for (const duration of [SECOND, 2_592_000_000]) {
    const before = Date.now();
    const res = await unkey.ratelimit.limit({
      namespace,
      identifier: `user_window_${duration}`,
      limit: 5,
      duration,
    });
    const after = Date.now();
    assert.equal(res.data.success, true);
    assertReset(res.data.reset, duration, before, after, `duration ${duration}`);
  }

  // 400 with errors[] naming the field.
  const invalid: [string, Parameters<typeof unkey.ratelimit.limit>[0]][] = [
    ["duration", { namespace, identifier: "x", limit: 1, duration: 999 }],
    ["duration", { namespace, identifier: "x", limit: 1, duration: 2_592_000_001 }],
    ["limit", { namespace, identifier: "x", limit: 0, duration: MINUTE }],
    ["cost", { namespace, identifier: "x", limit: 1, duration: MINUTE, cost: -1 }],
    ["identifier", { namespace, identifier: "", limit: 1, duration: MINUTE }],
  ];
  for (const [field, request] of invalid) {
    const bad = await expectError(
      () => unkey.ratelimit.limit(request, noRetry),
      BadRequestErrorResponse,
      400,
    );
    assertErrorLocation(bad, field);
  }
}

async function ratelimitMultiLimit(): Promise<void> {
  const ns1 = `sdkts-multi-${suffix}`;
  const ns2 = `sdkts-multi2-${suffix}`;
  // Day windows end on hour boundaries too, so this covers both durations used here.
  await inOneWindow(HOUR);

  const before = Date.now();
  const ok = await unkey.ratelimit.multiLimit([
    { namespace: ns1, identifier: "alice", limit: 3, duration: HOUR },
    { namespace: ns1, identifier: "bob", limit: 5, duration: HOUR, cost: 2 },
    { namespace: ns2, identifier: "alice", limit: 1, duration: DAY },
  ]);
  const after = Date.now();
  assertRequestId(ok.meta);
  assert.equal(ok.data.passed, true);
  assert.equal(ok.data.limits.length, 3);
  const find = (limits: typeof ok.data.limits, namespace: string, identifier: string) => {
    const found = limits.filter((l) => l.namespace === namespace && l.identifier === identifier);
    assert.equal(found.length, 1, `${namespace}/${identifier} in ${JSON.stringify(limits)}`);
    return found[0];
  };
  const expected = [
    { namespace: ns1, identifier: "alice", limit: 3, remaining: 2, passed: true, duration: HOUR },
    { namespace: ns1, identifier: "bob", limit: 5, remaining: 3, passed: true, duration: HOUR },
    { namespace: ns2, identifier: "alice", limit: 1, remaining: 0, passed: true, duration: DAY },
  ];
  for (const { duration, ...want } of expected) {
    const got = find(ok.data.limits, want.namespace, want.identifier);
    const { reset, ...rest } = got;
    assert.deepEqual(rest, want);
    assertReset(reset, duration, before, after, `${want.namespace}/${want.identifier}`);
  }

  // All or nothing: ns2/alice is used up, so ns1/alice and ns1/bob are not counted either.
  const failed = await unkey.ratelimit.multiLimit([
    { namespace: ns1, identifier: "alice", limit: 3, duration: HOUR },
    { namespace: ns1, identifier: "bob", limit: 5, duration: HOUR, cost: 2 },
    { namespace: ns2, identifier: "alice", limit: 1, duration: DAY },
  ]);
  assert.equal(failed.data.passed, false);
  assert.equal(failed.data.limits.length, 3);
  const culprit = find(failed.data.limits, ns2, "alice");
  assert.equal(culprit.passed, false);
  assert.equal(culprit.remaining, 0);
  const peek = async (namespace: string, identifier: string, limit: number) =>
    (await unkey.ratelimit.limit({ namespace, identifier, limit, duration: HOUR, cost: 0 })).data;
  assert.equal((await peek(ns1, "alice", 3)).remaining, 2, "alice counted by a failed batch");
  assert.equal((await peek(ns1, "bob", 5)).remaining, 3, "bob counted by a failed batch");

  // A batch of one behaves like ratelimit.limit.
  const single = await unkey.ratelimit.multiLimit([
    { namespace: ns1, identifier: "carol", limit: 2, duration: HOUR },
  ]);
  assert.equal(single.data.passed, true);
  assert.equal(single.data.limits[0].remaining, 1);

  // 1..100 checks; each is validated like ratelimit.limit.
  await expectError(() => unkey.ratelimit.multiLimit([], noRetry), BadRequestErrorResponse, 400);
  const tooMany = Array.from({ length: 101 }, (_, i) => ({
    namespace: ns1,
    identifier: `many_${i}`,
    limit: 1,
    duration: HOUR,
  }));
  await expectError(
    () => unkey.ratelimit.multiLimit(tooMany, noRetry),
    BadRequestErrorResponse,
    400,
  );
  const bad = await expectError(
    () =>
      unkey.ratelimit.multiLimit(
        [
          { namespace: ns1, identifier: "dave", limit: 1, duration: HOUR },
          { namespace: ns1, identifier: "erin", limit: 1, duration: 999 },
        ],
        noRetry,
      ),
    BadRequestErrorResponse,
    400,
  );
  assertErrorLocation(bad, "duration");
  assert.equal((await peek(ns1, "dave", 1)).remaining, 1, "a rejected batch counted");
}

async function ratelimitOverrides(): Promise<void> {
  const namespace = `sdkts-overrides-${suffix}`;
  // The namespace comes into being with its first limit call.
  await unkey.ratelimit.limit({ namespace, identifier: "warmup", limit: 1, duration: HOUR });
  await inOneWindow(HOUR);

  const wildcard = await unkey.ratelimit.setOverride({
    namespace,
    identifier: "premium_*",
    limit: 100,
    duration: MINUTE,
  });
  assertRequestId(wildcard.meta);
  const wildcardId = wildcard.data.overrideId;
  assert.match(wildcardId, /^rlor_[a-zA-Z0-9_]+$/, "overrideId format");
  const exact = await unkey.ratelimit.setOverride({
    namespace,
    identifier: "premium_gold",
    limit: 1,
    duration: HOUR,
  });
  const exactId = exact.data.overrideId;
  assert.notEqual(exactId, wildcardId);

  // A matching identifier gets the override's limit and window, and its id.
  const before = Date.now();
  const silver = await unkey.ratelimit.limit({
    namespace,
    identifier: "premium_silver",
    limit: 2,
    duration: DAY,
  });
  const after = Date.now();
  const { reset, ...rest } = silver.data;
  assert.deepEqual(rest, { limit: 100, remaining: 99, success: true, overrideId: wildcardId });
  assertReset(reset, MINUTE, before, after, "the override's window, not the request's day");

  // An exact override beats a wildcard one.
  const gold1 = (
    await unkey.ratelimit.limit({ namespace, identifier: "premium_gold", limit: 2, duration: DAY })
  ).data;
  assert.deepEqual(
    { ...gold1, reset: 0 },
    { limit: 1, remaining: 0, success: true, overrideId: exactId, reset: 0 },
  );
  const gold2 = (
    await unkey.ratelimit.limit({ namespace, identifier: "premium_gold", limit: 2, duration: DAY })
  ).data;
  assert.equal(gold2.success, false);
  assert.equal(gold2.overrideId, exactId);

  // No override matches: the request's own limit, no overrideId.
  const basic = (
    await unkey.ratelimit.limit({ namespace, identifier: "basic_user", limit: 2, duration: HOUR })
  ).data;
  assert.deepEqual({ ...basic, reset: 0 }, { limit: 2, remaining: 1, success: true, reset: 0 });

  // getOverride; setOverride again is an upsert that keeps the id.
  const got = await unkey.ratelimit.getOverride({ namespace, identifier: "premium_*" });
  assertRequestId(got.meta);
  assert.deepEqual(got.data, {
    overrideId: wildcardId,
    duration: MINUTE,
    identifier: "premium_*",
    limit: 100,
  });
  const upsert = await unkey.ratelimit.setOverride({
    namespace,
    identifier: "premium_*",
    limit: 50,
    duration: MINUTE,
  });
  assert.equal(upsert.data.overrideId, wildcardId, "an upsert keeps the overrideId");
  assert.equal(
    (await unkey.ratelimit.getOverride({ namespace, identifier: "premium_*" })).data.limit,
    50,
  );
  const bronze = (
    await unkey.ratelimit.limit({
      namespace,
      identifier: "premium_bronze",
      limit: 2,
      duration: DAY,
    })
  ).data;
  assert.deepEqual([bronze.limit, bronze.remaining, bronze.overrideId], [50, 49, wildcardId]);

  // limit 0 blocks.
  const block = await unkey.ratelimit.setOverride({
    namespace,
    identifier: "blocked_user",
    limit: 0,
    duration: MINUTE,
  });
  const blocked = (
    await unkey.ratelimit.limit({
      namespace,
      identifier: "blocked_user",
      limit: 1000,
      duration: HOUR,
    })
  ).data;
  assert.deepEqual(
    { ...blocked, reset: 0 },
    { limit: 0, remaining: 0, success: false, overrideId: block.data.overrideId, reset: 0 },
  );

  // listOverrides: pages of 10 by default, through the auto-pager.
  const all = new Map<string, { limit: number; duration: number; overrideId: string }>([
    ["premium_*", { limit: 50, duration: MINUTE, overrideId: wildcardId }],
    ["premium_gold", { limit: 1, duration: HOUR, overrideId: exactId }],
    ["blocked_user", { limit: 0, duration: MINUTE, overrideId: block.data.overrideId }],
  ]);
  for (let i = 0; i < 9; i++) {
    const res = await unkey.ratelimit.setOverride({
      namespace,
      identifier: `bulk_${i}`,
      limit: i + 1,
      duration: HOUR + i * SECOND,
    });
    all.set(`bulk_${i}`, {
      limit: i + 1,
      duration: HOUR + i * SECOND,
      overrideId: res.data.overrideId,
    });
  }
  const walk = async (limit?: number) => {
    const sizes: number[] = [];
    const hasMore: boolean[] = [];
    const seen: string[] = [];
    const res = await unkey.ratelimit.listOverrides(
      limit === undefined ? { namespace } : { namespace, limit },
    );
    for await (const page of res) {
      assert.ok(sizes.length < 10, "the auto-pager does not terminate");
      assertRequestId(page.result.meta);
      sizes.push(page.result.data.length);
      hasMore.push(page.result.pagination.hasMore);
      for (const o of page.result.data) {
        seen.push(o.identifier);
        assert.deepEqual(
          { limit: o.limit, duration: o.duration, overrideId: o.overrideId },
          all.get(o.identifier),
          `listed override ${o.identifier}`,
        );
      }
    }
    assert.equal(new Set(seen).size, seen.length, "an override listed twice");
    assert.deepEqual([...seen].sort(), [...all.keys()].sort());
    return { sizes, hasMore };
  };
  assert.deepEqual(await walk(), { sizes: [10, 2], hasMore: [true, false] }, "default pages");
  // The SDK always sends limit (10); without it the server also pages by 10.
  const unlimited = await postRaw("/v2/ratelimit.listOverrides", { namespace });
  assert.equal(unlimited.data.length, 10, "listOverrides without limit");
  assert.equal(unlimited.pagination.hasMore, true);
  assert.equal(typeof unlimited.pagination.cursor, "string");
  assert.deepEqual(await walk(5), { sizes: [5, 5, 2], hasMore: [true, true, false] }, "pages of 5");

  // deleteOverride: gone from get and list; the wildcard applies to the identifier again.
  const deleted = await unkey.ratelimit.deleteOverride({ namespace, identifier: "premium_gold" });
  assertRequestId(deleted.meta);
  assert.deepEqual(deleted.data, {});
  all.delete("premium_gold");
  await expectError(
    () => unkey.ratelimit.getOverride({ namespace, identifier: "premium_gold" }, noRetry),
    NotFoundErrorResponse,
    404,
  );
  assert.deepEqual(await walk(), { sizes: [10, 1], hasMore: [true, false] }, "after a delete");
  const gold3 = (
    await unkey.ratelimit.limit({ namespace, identifier: "premium_gold", limit: 2, duration: DAY })
  ).data;
  assert.equal(gold3.limit, 50, "the wildcard override applies after the exact one is deleted");
  assert.equal(gold3.overrideId, wildcardId);
  await expectError(
    () => unkey.ratelimit.deleteOverride({ namespace, identifier: "premium_gold" }, noRetry),
    NotFoundErrorResponse,
    404,
  );

  // Unknown namespace → 404 on get, list and delete.
  const nowhere = `sdkts-nowhere-${suffix}`;
  await expectError(
    () => unkey.ratelimit.getOverride({ namespace: nowhere, identifier: "x" }, noRetry),
    NotFoundErrorResponse,
    404,
  );
  await expectError(
    () => unkey.ratelimit.listOverrides({ namespace: nowhere }, noRetry),
    NotFoundErrorResponse,
    404,
  );
  await expectError(
    () => unkey.ratelimit.deleteOverride({ namespace: nowhere, identifier: "x" }, noRetry),
    NotFoundErrorResponse,
    404,
  );

  // 400: a window under a second, a negative limit.
  const shortWindow = await expectError(
    () =>
      unkey.ratelimit.setOverride({ namespace, identifier: "x", limit: 1, duration: 999 }, noRetry),
    BadRequestErrorResponse,
    400,
  );
  assertErrorLocation(shortWindow, "duration");
  const negative = await expectError(
    () =>
      unkey.ratelimit.setOverride(
        { namespace, identifier: "x", limit: -1, duration: MINUTE },
        noRetry,
      ),
    BadRequestErrorResponse,
    400,
  );
  assertErrorLocation(negative, "limit");
}

async function permissionsCreateAndGet(): Promise<void> {
  const slug = `sdkts${suffix}.documents.read`;
  const created = await unkey.permissions.createPermission({
    name: "Read documents",
    slug,
    description: "Lets a key read documents",
  });
  assertRequestId(created.meta);
  const id = created.data.permissionId;
  assert.match(id, /^perm_[a-zA-Z0-9_]+$/, "permissionId format");
  const expected = { id, name: "Read documents", slug, description: "Lets a key read documents" };

  // By id and by slug.
  const byId = await unkey.permissions.getPermission({ permission: id });
  assertRequestId(byId.meta);
  assert.deepEqual(permissionView(byId.data), expected, "getPermission by id");
  assert.deepEqual(await getPermissionView(slug), expected, "getPermission by slug");

  // No description; every character a slug may have; names need not be unique.
  const oddSlug = `sdkts:${suffix}_All-chars.*`;
  const odd = await unkey.permissions.createPermission({ name: "Read documents", slug: oddSlug });
  assert.notEqual(odd.data.permissionId, id);
  const oddData = (await unkey.permissions.getPermission({ permission: oddSlug })).data;
  assert.equal(oddData.description, undefined, "no description");
  assert.deepEqual(permissionView(oddData), {
    id: odd.data.permissionId,
    name: "Read documents",
    slug: oddSlug,
    description: null,
  });

  // A duplicate slug is a conflict and changes nothing.
  const conflict = await expectError(
    () => unkey.permissions.createPermission({ name: "Other", slug }, noRetry),
    ConflictErrorResponse,
    409,
  );
  assert.equal(conflict.error.status, 409);
  assertRequestId(conflict.meta);
  assert.deepEqual(await getPermissionView(slug), expected, "a refused duplicate changed it");

  // Unknown id or slug → 404.
  for (const permission of ["perm_doesnotexist0000", `sdkts${suffix}.nothing`]) {
    const missing = await expectError(
      () => unkey.permissions.getPermission({ permission }, noRetry),
      NotFoundErrorResponse,
      404,
    );
    assert.equal(missing.error.status, 404);
  }

  // 400 with errors[] naming the field; nothing is created.
  const invalid: [string, Parameters<typeof unkey.permissions.createPermission>[0]][] = [
    ["slug", { name: "x", slug: `sdkts${suffix}.has space` }],
    ["slug", { name: "x", slug: `sdkts${suffix}/slash` }],
    ["slug", { name: "x", slug: "" }],
    ["slug", { name: "x", slug: `sdkts${suffix}.${"s".repeat(120)}` }],
    ["name", { name: "", slug: `sdkts${suffix}.noname` }],
    ["name", { name: "n".repeat(513), slug: `sdkts${suffix}.longname` }],
    ["description", { name: "x", slug: `sdkts${suffix}.longdesc`, description: "d".repeat(513) }],
  ];
  for (const [field, request] of invalid) {
    const bad = await expectError(
      () => unkey.permissions.createPermission(request, noRetry),
      BadRequestErrorResponse,
      400,
    );
    assertErrorLocation(bad, field);
    if (request.slug !== "") {
      await expectError(
        () => unkey.permissions.getPermission({ permission: request.slug }, noRetry),
        NotFoundErrorResponse,
        404,
      );
    }
  }
}

async function permissionsList(): Promise<void> {
  const tag = `sdkts${suffix}.plist`;
  const created = new Map<string, PermissionView>(); // id → permission
  for (let i = 0; i < 7; i++) {
    const name = i === 4 ? `Needle ${suffix}` : `Listed permission ${i}`;
    const description = i % 2 === 0 ? `number ${i}` : undefined;
    const slug = `${tag}.p${i}`;
    const res = await unkey.permissions.createPermission(
      description === undefined ? { name, slug } : { name, slug, description },
    );
    const id = res.data.permissionId;
    created.set(id, { id, name, slug, description: description ?? null });
  }

  // The auto-pager over a search, in pages of 3.
  const seen: string[] = [];
  const sizes: number[] = [];
  const hasMore: boolean[] = [];
  for await (const page of await unkey.permissions.listPermissions({ limit: 3, search: tag })) {
    assert.ok(sizes.length < 10, "the auto-pager does not terminate");
    assertRequestId(page.result.meta);
    sizes.push(page.result.data.length);
    hasMore.push(page.result.pagination.hasMore);
    for (const p of page.result.data) {
      seen.push(p.id);
      assert.deepEqual(permissionView(p), created.get(p.id), `listed permission ${p.slug}`);
    }
  }
  assert.deepEqual(sizes, [3, 3, 1], "page sizes");
  assert.deepEqual(hasMore, [true, true, false], "hasMore per page");
  assert.equal(new Set(seen).size, 7, "every permission listed exactly once");
  assert.deepEqual([...seen].sort(), [...created.keys()].sort());

  // Walking by hand with the cursor gives the same sequence.
  const manual: string[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 10; i++) {
    const page = await unkey.permissions.listPermissions({
      limit: 3,
      search: tag,
      ...(cursor ? { cursor } : {}),
    });
    manual.push(...page.result.data.map((p) => p.id));
    cursor = page.result.pagination.cursor;
    if (!cursor) break;
  }
  assert.deepEqual(manual, seen);

  // search is a case-insensitive substring of the slug, the name or the id.
  const search = async (term: string) =>
    (await unkey.permissions.listPermissions({ search: term })).result.data.map((p) => p.id);
  assert.deepEqual((await search(tag.toUpperCase())).sort(), [...created.keys()].sort(), "slug");
  const needle = [...created.values()].find((p) => p.name.startsWith("Needle"))!;
  assert.deepEqual(await search(`needle ${suffix}`.toUpperCase()), [needle.id], "search by name");
  const third = [...created.keys()][2];
  assert.deepEqual(await search(third.toLowerCase()), [third], "search by id");
  const none = await unkey.permissions.listPermissions({ search: `sdkts-nothing-${suffix}` });
  assert.deepEqual(none.result.data, []);
  assert.equal(none.result.pagination.hasMore, false);
  assert.equal(none.result.pagination.cursor, undefined, "no cursor on an empty page");

  // Without a search (default limit 100) every permission is listed once, ours among them.
  const everything: string[] = [];
  for await (const page of await unkey.permissions.listPermissions({})) {
    assert.ok(everything.length < 10_000, "the auto-pager does not terminate");
    assert.ok(page.result.data.length <= 100, "a page holds at most 100 permissions");
    everything.push(...page.result.data.map((p) => p.id));
  }
  assert.equal(new Set(everything).size, everything.length, "a permission listed twice");
  for (const id of created.keys()) assert.ok(everything.includes(id), `${id} not listed`);

  // limit is 1..100.
  for (const limit of [0, 101]) {
    const bad = await expectError(
      () => unkey.permissions.listPermissions({ limit }, noRetry),
      BadRequestErrorResponse,
      400,
    );
    assertErrorLocation(bad, "limit");
  }
}

async function permissionsDelete(): Promise<void> {
  const apiId = await newApi("permission-delete");
  const ns = `sdkts${suffix}.pdel`;
  const doomedSlug = `${ns}.doomed`;
  const keptSlug = `${ns}.kept`;
  const doomed = await unkey.permissions.createPermission({ name: "Doomed", slug: doomedSlug });
  const roleName = `sdkts-pdel-${suffix}`;
  await unkey.permissions.createRole({ name: roleName, permissions: [doomedSlug, keptSlug] });
  const kept = await getPermissionView(keptSlug);
  const direct = (
    await unkey.keys.createKey({
      apiId,
      prefix: PREFIX,
      permissions: [doomedSlug, keptSlug],
      roles: [roleName],
    })
  ).data;
  const throughRole = (await unkey.keys.createKey({ apiId, prefix: PREFIX, roles: [roleName] }))
    .data;
  for (const k of [direct, throughRole]) {
    assert.equal((await verifyQuery(k.key, doomedSlug)).code, "VALID", "before the delete");
  }

  // By slug: gone, and gone from the role and from every key, at once.
  const res = await unkey.permissions.deletePermission({ permission: doomedSlug });
  assertRequestId(res.meta);
  assert.deepEqual(res.data, {});
  for (const permission of [doomedSlug, doomed.data.permissionId]) {
    await expectError(
      () => unkey.permissions.getPermission({ permission }, noRetry),
      NotFoundErrorResponse,
      404,
    );
  }
  assert.deepEqual((await getRoleView(roleName)).permissions, [kept], "the role lost it");
  await assertHolds(apiId, direct, [keptSlug], [roleName], "a key that held it directly");
  await assertHolds(apiId, throughRole, [keptSlug], [roleName], "a key that held it by role");
  // Adding a permission the key already holds returns its direct permissions unchanged.
  const directNow = await unkey.keys.addPermissions({
    keyId: direct.keyId,
    permissions: [keptSlug],
  });
  assert.deepEqual(permissionViews(directNow.data), [kept], "direct permissions after");
  for (const k of [direct, throughRole]) {
    const denied = await verifyQuery(k.key, doomedSlug);
    assert.equal(denied.code, "INSUFFICIENT_PERMISSIONS", "a deleted permission still grants");
    assert.equal(denied.valid, false);
  }
  const listed = await unkey.permissions.listPermissions({ search: ns });
  assert.deepEqual(permissionViews(listed.result.data), [kept], "listPermissions after");

  // By id; a second delete is a 404.
  const other = await unkey.permissions.createPermission({ name: "Other", slug: `${ns}.other` });
  await unkey.permissions.deletePermission({ permission: other.data.permissionId });
  await expectError(
    () => unkey.permissions.getPermission({ permission: `${ns}.other` }, noRetry),
    NotFoundErrorResponse,
    404,
  );
  const again = await expectError(
    () => unkey.permissions.deletePermission({ permission: doomedSlug }, noRetry),
    NotFoundErrorResponse,
    404,
  );
  assert.equal(again.error.status, 404);

  // The slug is free again; the new permission is not given back to the key.
  const recreated = await unkey.permissions.createPermission({ name: "Again", slug: doomedSlug });
  assert.notEqual(recreated.data.permissionId, doomed.data.permissionId);
  await assertHolds(apiId, direct, [keptSlug], [roleName], "after recreating the slug");
}

async function rolesCreateAndGet(): Promise<void> {
  const ns = `sdkts${suffix}.roles`;
  const existing = await unkey.permissions.createPermission({
    name: "Edit documents",
    slug: `${ns}.documents.edit`,
    description: "edit",
  });
  const existingView = await getPermissionView(existing.data.permissionId);
  const freshSlug = `${ns}.documents.publish`;
  const name = `sdkts-editor-${suffix}`;
  const created = await unkey.permissions.createRole({
    name,
    description: "Edits and publishes documents",
    permissions: [existingView.slug, freshSlug],
  });
  assertRequestId(created.meta);
  const roleId = created.data.roleId;
  assert.match(roleId, /^role_[a-zA-Z0-9_]+$/, "roleId format");

  // The missing slug was created, named after itself; the existing permission was reused.
  const fresh = await getPermissionView(freshSlug);
  assert.match(fresh.id, /^perm_[a-zA-Z0-9_]+$/);
  assert.deepEqual(fresh, { id: fresh.id, name: freshSlug, slug: freshSlug, description: null });
  const expected: RoleView = {
    id: roleId,
    name,
    description: "Edits and publishes documents",
    permissions: [existingView, fresh].sort(bySlug),
  };
  const byId = await unkey.permissions.getRole({ role: roleId });
  assertRequestId(byId.meta);
  assert.deepEqual(roleView(byId.data), expected, "getRole by id");
  assert.deepEqual(await getRoleView(name), expected, "getRole by name");

  // Only a name (any text, 1..128 characters): no description, no permissions.
  const bareName = `Billing Manager ${suffix}`;
  const bare = await unkey.permissions.createRole({ name: bareName });
  const bareData = (await unkey.permissions.getRole({ role: bareName })).data;
  assert.equal(bareData.description, undefined, "no description");
  assert.deepEqual(roleView(bareData), {
    id: bare.data.roleId,
    name: bareName,
    description: null,
    permissions: [],
  });

  // A duplicate name is a conflict and changes nothing.
  const conflict = await expectError(
    () => unkey.permissions.createRole({ name, permissions: [`${ns}.other`] }, noRetry),
    ConflictErrorResponse,
    409,
  );
  assert.equal(conflict.error.status, 409);
  assert.deepEqual(await getRoleView(roleId), expected, "a refused duplicate changed the role");

  // Unknown id or name → 404 naming the role.
  for (const role of ["role_doesnotexist0000", `sdkts-nobody-${suffix}`]) {
    const missing = await expectError(
      () => unkey.permissions.getRole({ role }, noRetry),
      NotFoundErrorResponse,
      404,
    );
    assert.equal(missing.error.detail, `Role '${role}' was not found.`);
  }

  // 400 with errors[] naming the field; neither the role nor its permissions are created.
  const longName = "r".repeat(129);
  const invalid: [string, Parameters<typeof unkey.permissions.createRole>[0]][] = [
    ["name", { name: "" }],
    ["name", { name: longName }],
    ["description", { name: `sdkts-longdesc-${suffix}`, description: "d".repeat(513) }],
    ["permissions", { name: `sdkts-badslug-${suffix}`, permissions: [`${ns}.ok`, "not a slug"] }],
  ];
  for (const [field, request] of invalid) {
    const bad = await expectError(
      () => unkey.permissions.createRole(request, noRetry),
      BadRequestErrorResponse,
      400,
    );
    assertErrorLocation(bad, field);
  }
  for (const role of [longName, `sdkts-longdesc-${suffix}`, `sdkts-badslug-${suffix}`]) {
    await expectError(
      () => unkey.permissions.getRole({ role }, noRetry),
      NotFoundErrorResponse,
      404,
    );
  }
  await expectError(
    () => unkey.permissions.getPermission({ permission: `${ns}.ok` }, noRetry),
    NotFoundErrorResponse,
    404,
  );
  // Nor did the refused duplicate create the permission it named.
  assert.deepEqual(
    (await unkey.permissions.listPermissions({ search: `${ns}.other` })).result.data,
    [],
    "a createRole refused as a duplicate created its permission",
  );
}

async function rolesList(): Promise<void> {
  const tag = `sdkts-rlist-${suffix}`;
  const ns = `sdkts${suffix}.rlist`;
  const created = new Map<string, RoleView>(); // id → role
  for (let i = 0; i < 5; i++) {
    const name = `${tag}-${i}`;
    const res = await unkey.permissions.createRole({
      name,
      description: `role ${i}`,
      permissions: i === 0 ? [] : [`${ns}.p${i}`, `${ns}.shared`],
    });
    created.set(res.data.roleId, await getRoleView(res.data.roleId));
  }
  const shared = await getPermissionView(`${ns}.shared`);
  const r3 = [...created.values()][3];
  assert.deepEqual(
    r3.permissions.map((p) => p.slug),
    [`${ns}.p3`, `${ns}.shared`],
  );
  assert.ok(
    r3.permissions.some((p) => p.id === shared.id),
    "roles share one permission",
  );

  // The auto-pager over a search, in pages of 2; listed roles carry their permissions.
  const seen: string[] = [];
  const sizes: number[] = [];
  const hasMore: boolean[] = [];
  for await (const page of await unkey.permissions.listRoles({ limit: 2, search: tag })) {
    assert.ok(sizes.length < 10, "the auto-pager does not terminate");
    assertRequestId(page.result.meta);
    sizes.push(page.result.data.length);
    hasMore.push(page.result.pagination.hasMore);
    for (const r of page.result.data) {
      seen.push(r.id);
      assert.deepEqual(roleView(r), created.get(r.id), `listed role ${r.name}`);
    }
  }
  assert.deepEqual(sizes, [2, 2, 1], "page sizes");
  assert.deepEqual(hasMore, [true, true, false], "hasMore per page");
  assert.deepEqual([...seen].sort(), [...created.keys()].sort());
  const manual: string[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 10; i++) {
    const page = await unkey.permissions.listRoles({
      limit: 2,
      search: tag,
      ...(cursor ? { cursor } : {}),
    });
    manual.push(...page.result.data.map((r) => r.id));
    cursor = page.result.pagination.cursor;
    if (!cursor) break;
  }
  assert.deepEqual(manual, seen, "walking by hand with the cursor");

  // search is a case-insensitive substring of the name or the id.
  const search = async (term: string) =>
    (await unkey.permissions.listRoles({ search: term })).result.data.map((r) => r.id);
  assert.deepEqual((await search(tag.toUpperCase())).sort(), [...created.keys()].sort());
  assert.deepEqual(await search(`${tag}-2`), [[...created.keys()][2]], "search by name");
  assert.deepEqual(await search(r3.id.toUpperCase()), [r3.id], "search by id");
  const none = await unkey.permissions.listRoles({ search: `sdkts-nothing-${suffix}` });
  assert.deepEqual(none.result.data, []);
  assert.equal(none.result.pagination.cursor, undefined, "no cursor on an empty page");
  const everything: string[] = [];
  for await (const page of await unkey.permissions.listRoles({})) {
    assert.ok(everything.length < 10_000, "the auto-pager does not terminate");
    assert.ok(page.result.data.length <= 100, "a page holds at most 100 roles");
    everything.push(...page.result.data.map((r) => r.id));
  }
  assert.equal(new Set(everything).size, everything.length, "a role listed twice");
  for (const id of created.keys()) assert.ok(everything.includes(id), `${id} not listed`);
  for (const limit of [0, 101]) {
    const bad = await expectError(
      () => unkey.permissions.listRoles({ limit }, noRetry),
      BadRequestErrorResponse,
      400,
    );
    assertErrorLocation(bad, "limit");
  }
}

async function rolesDelete(): Promise<void> {
  const apiId = await newApi("role-delete");
  const tag = `sdkts-rdel-${suffix}`;
  const ns = `sdkts${suffix}.rdel`;
  const [p1, p2, p3, shared] = [`${ns}.p1`, `${ns}.p2`, `${ns}.p3`, `${ns}.shared`];
  const names = { byName: `${tag}-1`, byId: `${tag}-2`, kept: `${tag}-kept` };
  const byNameId = (
    await unkey.permissions.createRole({ name: names.byName, permissions: [p1, shared] })
  ).data.roleId;
  const byIdId = (await unkey.permissions.createRole({ name: names.byId, permissions: [p2] })).data
    .roleId;
  await unkey.permissions.createRole({ name: names.kept, permissions: [shared, p3] });
  const k = (
    await unkey.keys.createKey({
      apiId,
      prefix: PREFIX,
      roles: [names.byName, names.byId, names.kept],
    })
  ).data;
  assert.equal((await verifyQuery(k.key, `${p1} AND ${p2} AND ${p3}`)).code, "VALID", "before");

  // By name and by id; the roles' permissions stay.
  const res = await unkey.permissions.deleteRole({ role: names.byName });
  assertRequestId(res.meta);
  assert.deepEqual(res.data, {});
  await unkey.permissions.deleteRole({ role: byIdId });
  for (const role of [names.byName, byNameId, names.byId, byIdId]) {
    await expectError(
      () => unkey.permissions.getRole({ role }, noRetry),
      NotFoundErrorResponse,
      404,
    );
  }
  for (const slug of [p1, p2]) assert.equal((await getPermissionView(slug)).slug, slug);

  // A second delete is a 404. deleteRole declares no 404, so the SDK raises the generic APIError.
  const gone = await expectError(
    () => unkey.permissions.deleteRole({ role: names.byName }, noRetry),
    APIError,
    404,
  );
  assert.ok(!(gone instanceof NotFoundErrorResponse));
  const body = JSON.parse(gone.body);
  assert.equal(body.error.status, 404);
  assert.equal(body.error.detail, `Role '${names.byName}' was not found.`);

  // The name is free again; the new role is another one.
  const again = await unkey.permissions.createRole({ name: names.byName });
  assert.notEqual(again.data.roleId, byNameId);
  const left = (await unkey.permissions.listRoles({ search: tag })).result.data;
  assert.deepEqual(left.map((r) => r.name).sort(), [names.byName, names.kept].sort());

  // The key lost the deleted roles at once, also where it was verified before, and did not get
  // the recreated one.
  await assertHolds(apiId, k, [p3, shared], [names.kept], "after deleteRole");
  const denied = await verifyQuery(k.key, `${p1} OR ${p2}`);
  assert.equal(denied.code, "INSUFFICIENT_PERMISSIONS", "a deleted role still grants");
}

async function rolePermissions(): Promise<void> {
  const apiId = await newApi("role-permissions");
  const ns = `sdkts${suffix}.rperm`;
  const [a, b, c] = [`${ns}.a`, `${ns}.b`, `${ns}.c`];
  const name = `sdkts-rperm-${suffix}`;
  const roleId = (await unkey.permissions.createRole({ name, permissions: [a, b] })).data.roleId;
  const k = (await unkey.keys.createKey({ apiId, prefix: PREFIX, roles: [name] })).data;
  assert.equal((await verifyQuery(k.key, `${a} AND ${b}`)).code, "VALID", "before");

  // The new set replaces the old (c is created); the response is the role's permissions after.
  const set = await unkey.permissions.setRolePermissions({ roleId, permissions: [b, c] });
  assertRequestId(set.meta);
  const [aView, bView, cView] = [
    await getPermissionView(a),
    await getPermissionView(b),
    await getPermissionView(c),
  ];
  assert.deepEqual(cView, { id: cView.id, name: c, slug: c, description: null }, "c created");
  assert.deepEqual(permissionViews(set.data), [bView, cView]);
  assert.deepEqual((await getRoleView(roleId)).permissions, [bView, cView], "getRole after");

  // The key sees the change at once.
  const lost = await verifyQuery(k.key, a);
  assert.equal(lost.code, "INSUFFICIENT_PERMISSIONS", "a permission the role no longer has");
  assert.deepEqual(sorted(lost.permissions), [b, c]);
  const gained = await verifyQuery(k.key, `${b} AND ${c}`);
  assert.equal(gained.code, "VALID", "a permission the role just got");
  await assertHolds(apiId, k, [b, c], [name], "after setRolePermissions");

  // The role's name works in roleId too.
  const byName = await unkey.permissions.setRolePermissions({ roleId: name, permissions: [a] });
  assert.deepEqual(permissionViews(byName.data), [aView]);
  assert.equal((await verifyQuery(k.key, a)).code, "VALID");

  // [] clears.
  const cleared = await unkey.permissions.setRolePermissions({ roleId, permissions: [] });
  assert.deepEqual(cleared.data, []);
  assert.deepEqual((await getRoleView(name)).permissions, []);
  assert.equal((await verifyQuery(k.key, a)).code, "INSUFFICIENT_PERMISSIONS");
  await assertHolds(apiId, k, [], [name], "after clearing the role");
  assert.equal((await getPermissionView(b)).slug, b, "the permissions themselves stay");

  // Unknown role → 404 naming it; an invalid slug → 400 and the role is unchanged.
  const nobody = `sdkts-nobody-${suffix}`;
  const missing = await expectError(
    () => unkey.permissions.setRolePermissions({ roleId: nobody, permissions: [a] }, noRetry),
    NotFoundErrorResponse,
    404,
  );
  assert.equal(missing.error.detail, `Role '${nobody}' was not found.`);
  const bad = await expectError(
    () => unkey.permissions.setRolePermissions({ roleId, permissions: [a, "not a slug"] }, noRetry),
    BadRequestErrorResponse,
    400,
  );
  assertErrorLocation(bad, "permissions");
  assert.deepEqual((await getRoleView(roleId)).permissions, [], "a refused set changed the role");
}

async function keyPermissions(): Promise<void> {
  const apiId = await newApi("key-permissions");
  const ns = `sdkts${suffix}.kperm`;
  const [read, write, admin, viaRole] = [
    `${ns}.read`,
    `${ns}.write`,
    `${ns}.admin`,
    `${ns}.via-role`,
  ];
  await unkey.permissions.createPermission({ name: "Read", slug: read, description: "reads" });
  const readView = await getPermissionView(read);
  const roleName = `sdkts-kperm-${suffix}`;
  await unkey.permissions.createRole({ name: roleName, permissions: [viaRole] });
  const k = (await unkey.keys.createKey({ apiId, prefix: PREFIX, roles: [roleName] })).data;
  const keyId = k.keyId;

  // add: the response is the key's direct permissions after; a missing slug is created.
  const added = await unkey.keys.addPermissions({ keyId, permissions: [read, write] });
  assertRequestId(added.meta);
  const writeView = await getPermissionView(write);
  assert.deepEqual(writeView, { id: writeView.id, name: write, slug: write, description: null });
  assert.deepEqual(permissionViews(added.data), [readView, writeView], "addPermissions");
  const again = await unkey.keys.addPermissions({ keyId, permissions: [read] });
  assert.deepEqual(permissionViews(again.data), [readView, writeView], "adding a held one");
  await assertHolds(apiId, k, [read, write, viaRole], [roleName], "after addPermissions");
  assert.equal((await verifyQuery(k.key, `${read} AND ${write} AND ${viaRole}`)).code, "VALID");

  // remove: the permission stays in the workspace.
  const removed = await unkey.keys.removePermissions({ keyId, permissions: [write] });
  assertRequestId(removed.meta);
  assert.deepEqual(permissionViews(removed.data), [readView], "removePermissions");
  assert.equal((await verifyQuery(k.key, write)).code, "INSUFFICIENT_PERMISSIONS");
  assert.deepEqual(await getPermissionView(write), writeView);

  // set replaces the direct permissions (creating missing ones); roles are untouched.
  const set = await unkey.keys.setPermissions({ keyId, permissions: [write, admin] });
  assertRequestId(set.meta);
  const adminView = await getPermissionView(admin);
  assert.deepEqual(permissionViews(set.data), [adminView, writeView], "setPermissions");
  await assertHolds(apiId, k, [admin, write, viaRole], [roleName], "after setPermissions");
  assert.equal((await verifyQuery(k.key, read)).code, "INSUFFICIENT_PERMISSIONS");

  // set [] clears them; what the role grants remains.
  const cleared = await unkey.keys.setPermissions({ keyId, permissions: [] });
  assert.deepEqual(cleared.data, []);
  await assertHolds(apiId, k, [viaRole], [roleName], "after setPermissions []");
  assert.equal((await verifyQuery(k.key, viaRole)).code, "VALID");

  // add and remove need at least one slug; slugs are checked; unknown key → 404.
  for (const call of [
    () => unkey.keys.addPermissions({ keyId, permissions: [] }, noRetry),
    () => unkey.keys.removePermissions({ keyId, permissions: [] }, noRetry),
    () => unkey.keys.addPermissions({ keyId, permissions: [read, "not a slug"] }, noRetry),
    () => unkey.keys.setPermissions({ keyId, permissions: ["not/a/slug"] }, noRetry),
  ]) {
    assertErrorLocation(await expectError(call, BadRequestErrorResponse, 400), "permissions");
  }
  await assertHolds(apiId, k, [viaRole], [roleName], "after refused changes");
  for (const call of [
    () =>
      unkey.keys.addPermissions({ keyId: "key_doesnotexist0000", permissions: [read] }, noRetry),
    () =>
      unkey.keys.removePermissions({ keyId: "key_doesnotexist0000", permissions: [read] }, noRetry),
    () => unkey.keys.setPermissions({ keyId: "key_doesnotexist0000", permissions: [] }, noRetry),
  ]) {
    await expectError(call, NotFoundErrorResponse, 404);
  }
}

async function keyRoles(): Promise<void> {
  const apiId = await newApi("key-roles");
  const ns = `sdkts${suffix}.kroles`;
  const [read, write] = [`${ns}.read`, `${ns}.write`];
  const names = {
    reader: `sdkts-kroles-reader-${suffix}`,
    writer: `sdkts-kroles-writer-${suffix}`,
    empty: `sdkts-kroles-empty-${suffix}`,
  };
  await unkey.permissions.createRole({ name: names.reader, permissions: [read] });
  await unkey.permissions.createRole({
    name: names.writer,
    description: "Reads and writes",
    permissions: [read, write],
  });
  await unkey.permissions.createRole({ name: names.empty });
  const reader = await getRoleView(names.reader);
  const writer = await getRoleView(names.writer);
  const empty = await getRoleView(names.empty);
  const k = (await unkey.keys.createKey({ apiId, prefix: PREFIX })).data;
  const keyId = k.keyId;

  // add: the response is the key's roles after, with their permissions.
  const added = await unkey.keys.addRoles({ keyId, roles: [names.reader] });
  assertRequestId(added.meta);
  assert.deepEqual(roleViews(added.data), [reader], "addRoles");
  const both = await unkey.keys.addRoles({ keyId, roles: [names.writer, names.reader] });
  assert.deepEqual(roleViews(both.data), [reader, writer], "addRoles with a held role");
  // A permission two roles grant is listed once.
  await assertHolds(apiId, k, [read, write], [names.reader, names.writer], "after addRoles");
  assert.equal((await verifyQuery(k.key, `${read} AND ${write}`)).code, "VALID");

  const removed = await unkey.keys.removeRoles({ keyId, roles: [names.reader] });
  assertRequestId(removed.meta);
  assert.deepEqual(roleViews(removed.data), [writer], "removeRoles");
  const set = await unkey.keys.setRoles({ keyId, roles: [names.empty, names.reader] });
  assertRequestId(set.meta);
  assert.deepEqual(roleViews(set.data), [empty, reader], "setRoles");
  await assertHolds(apiId, k, [read], [names.empty, names.reader], "after setRoles");
  assert.equal((await verifyQuery(k.key, write)).code, "INSUFFICIENT_PERMISSIONS");

  // An unknown role fails the whole call with a 404 naming it, and nothing changes.
  const nobody = `sdkts-kroles-nobody-${suffix}`;
  for (const call of [
    () => unkey.keys.addRoles({ keyId, roles: [names.writer, nobody] }, noRetry),
    () => unkey.keys.setRoles({ keyId, roles: [nobody] }, noRetry),
  ]) {
    const missing = await expectError(call, NotFoundErrorResponse, 404);
    assert.equal(missing.error.detail, `Role '${nobody}' was not found.`);
  }
  await assertHolds(apiId, k, [read], [names.empty, names.reader], "after refused changes");

  // [] clears; add and remove need at least one role; unknown key → 404.
  const cleared = await unkey.keys.setRoles({ keyId, roles: [] });
  assert.deepEqual(cleared.data, []);
  await assertHolds(apiId, k, [], [], "after setRoles []");
  for (const call of [
    () => unkey.keys.addRoles({ keyId, roles: [] }, noRetry),
    () => unkey.keys.removeRoles({ keyId, roles: [] }, noRetry),
  ]) {
    assertErrorLocation(await expectError(call, BadRequestErrorResponse, 400), "roles");
  }
  await expectError(
    () => unkey.keys.addRoles({ keyId: "key_doesnotexist0000", roles: [names.reader] }, noRetry),
    NotFoundErrorResponse,
    404,
  );
}

async function keyAccessOnCreateAndUpdate(): Promise<void> {
  const apiId = await newApi("key-access");
  const ns = `sdkts${suffix}.kaccess`;
  const [docsRead, usersManage, billing, ticketsRead, ticketsWrite] = [
    `${ns}.docs.read`,
    `${ns}.users.manage`,
    `${ns}.billing.view`,
    `${ns}.tickets.read`,
    `${ns}.tickets.write`,
  ];
  const admin = `sdkts-kaccess-admin-${suffix}`;
  const support = `sdkts-kaccess-support-${suffix}`;
  await unkey.permissions.createRole({ name: admin, permissions: [usersManage, docsRead] });
  await unkey.permissions.createRole({ name: support, permissions: [ticketsRead] });

  // createKey: direct permissions (billing.view is created) and roles.
  const k = (
    await unkey.keys.createKey({
      apiId,
      prefix: PREFIX,
      name: "staff",
      permissions: [docsRead, billing],
      roles: [admin],
    })
  ).data;
  const billingView = await getPermissionView(billing);
  assert.equal(billingView.name, billing, "a permission created by createKey");
  await assertHolds(apiId, k, [billing, docsRead, usersManage], [admin], "createKey");
  const direct = await unkey.keys.addPermissions({ keyId: k.keyId, permissions: [docsRead] });
  assert.deepEqual(
    direct.data.map((p) => p.slug).sort(),
    [billing, docsRead].sort(),
    "createKey's permissions are the direct ones",
  );

  // updateKey replaces both; omitting them leaves them; [] clears each.
  await unkey.keys.updateKey({ keyId: k.keyId, permissions: [ticketsWrite], roles: [support] });
  await assertHolds(apiId, k, [ticketsRead, ticketsWrite], [support], "updateKey");
  await unkey.keys.updateKey({ keyId: k.keyId, name: "renamed" });
  await assertHolds(apiId, k, [ticketsRead, ticketsWrite], [support], "updateKey without them");
  await unkey.keys.updateKey({ keyId: k.keyId, roles: [] });
  await assertHolds(apiId, k, [ticketsWrite], [], "updateKey roles []");
  await unkey.keys.updateKey({ keyId: k.keyId, permissions: [] });
  await assertHolds(apiId, k, [], [], "updateKey permissions []");

  // rerollKey copies permissions and roles.
  const rolled = (
    await unkey.keys.createKey({ apiId, prefix: PREFIX, permissions: [billing], roles: [admin] })
  ).data;
  const rerolled = (await unkey.keys.rerollKey({ keyId: rolled.keyId, expiration: 0 })).data;
  await assertHolds(apiId, rerolled, [billing, docsRead, usersManage], [admin], "rerolled key");
  for (const keyId of [rolled.keyId, rerolled.keyId]) await unkey.keys.deleteKey({ keyId });

  const badSlug = await expectError(
    () => unkey.keys.createKey({ apiId, permissions: ["not a slug"] }, noRetry),
    BadRequestErrorResponse,
    400,
  );
  assertErrorLocation(badSlug, "permissions");

  // An unknown role → 404 naming it: no key is created or changed, and the new slugs sent
  // along are not created either.
  const nobody = `sdkts-kaccess-nobody-${suffix}`;
  const refused = await expectError(
    () =>
      unkey.keys.createKey(
        { apiId, prefix: PREFIX, permissions: [`${ns}.stray.create`], roles: [nobody] },
        noRetry,
      ),
    NotFoundErrorResponse,
    404,
  );
  assert.equal(refused.error.detail, `Role '${nobody}' was not found.`);
  assert.equal((await unkey.apis.listKeys({ apiId })).result.data.length, 1, "a key was created");
  await expectError(
    () =>
      unkey.keys.updateKey(
        { keyId: k.keyId, permissions: [`${ns}.stray.update`], roles: [nobody] },
        noRetry,
      ),
    NotFoundErrorResponse,
    404,
  );
  await assertHolds(apiId, k, [], [], "after a refused updateKey");
  for (const call of ["create", "update"]) {
    const stray = `${ns}.stray.${call}`;
    const leftover = await unkey.permissions.listPermissions({ search: stray });
    assert.deepEqual(
      leftover.result.data.map((p) => p.slug),
      [],
      `a ${call}Key refused for an unknown role created permission ${stray}`,
    );
  }
}

async function verifyPermissionQueries(): Promise<void> {
  const apiId = await newApi("verify-permissions");
  // Every permission in a query gets this section's prefix, so the queries read plainly.
  const ns = `sdkts${suffix}.vq.`;
  const q = (query: string) =>
    query.replace(/[A-Za-z0-9_.:*-]+/g, (w) => (/^(and|or)$/i.test(w) ? w : `${ns}${w}`));
  const viewer = `sdkts-vq-viewer-${suffix}`;
  await unkey.permissions.createRole({ name: viewer, permissions: [q("users.view")] });
  const meta = { team: "docs" };
  const created = await unkey.keys.createKey({
    apiId,
    prefix: PREFIX,
    name: "gatekeeper",
    meta,
    permissions: [q("documents.read"), q("api.*")],
    roles: [viewer],
    credits: { remaining: 100 },
    ratelimits: [{ name: "requests", limit: 100, duration: HOUR, autoApply: true }],
  });
  const { keyId, key } = created.data;
  const held = sorted([q("documents.read"), q("api.*"), q("users.view")]);
  await inOneWindow(HOUR);

  // Held: documents.read and api.* directly, users.view through the role.
  const cases: [string, boolean][] = [
    ["documents.read", true],
    ["documents.write", false],
    ["users.view", true],
    ["documents.read AND users.view", true],
    ["documents.read AND documents.write", false],
    ["documents.write OR users.view", true],
    ["documents.write OR billing.read", false],
    // Operators in any case; whitespace of any kind.
    ["documents.read and users.view", true],
    ["documents.write oR users.view", true],
    [" \tdocuments.read\n  AND\r\nusers.view ", true],
    // AND binds tighter than OR.
    ["documents.write AND users.view OR documents.read", true],
    ["documents.read OR documents.write AND billing.read", true],
    ["(documents.read OR documents.write) AND billing.read", false],
    ["(documents.write OR users.view) AND (api.* OR billing.read)", true],
    ["((documents.read))", true],
    // Exact matches only; `*` is an ordinary character.
    ["Documents.read", false],
    ["documents", false],
    ["documents.read.all", false],
    ["api.*", true],
    ["api.read", false],
    ["documents.*", false],
  ];
  let credits = 100;
  let remaining = 100;
  for (const [query, satisfied] of cases) {
    const v = await verifyQuery(key, q(query));
    const what = JSON.stringify(query);
    if (satisfied) {
      credits -= 1;
      remaining -= 1;
      assert.equal(v.code, "VALID", what);
      assert.equal(v.valid, true, what);
      assert.equal(evaluated(v, "requests").remaining, remaining, `${what}: rate limit`);
    } else {
      // Refused with the key's details; neither credits nor rate limits are spent.
      assert.equal(v.code, "INSUFFICIENT_PERMISSIONS", what);
      assert.equal(v.valid, false, what);
      assert.equal(v.keyId, keyId, what);
      assert.equal(v.name, "gatekeeper", what);
      assert.deepEqual(v.meta, meta, what);
      assert.equal(v.enabled, true, what);
      assert.deepEqual(v.ratelimits ?? [], [], `${what}: no rate limit is checked`);
    }
    assert.equal(v.credits, credits, `${what}: credits`);
    assert.deepEqual(sorted(v.permissions), held, `${what}: permissions`);
    assert.deepEqual(v.roles, [viewer], `${what}: roles`);
  }
  assert.deepEqual((await unkey.keys.getKey({ keyId })).data.credits, { remaining: credits });
  const plain = await verify(key);
  assert.equal(plain.code, "VALID", "no query: no permission check");
  assert.equal(plain.credits, credits - 1);
  assert.equal(evaluated(plain, "requests").remaining, remaining - 1, "refusals used the limit");

  // The permission check comes after DISABLED and EXPIRED and before the rate limits and credits.
  const broke = await unkey.keys.createKey({
    apiId,
    prefix: PREFIX,
    permissions: [q("documents.read")],
    credits: { remaining: 0 },
  });
  const insufficient = await verifyQuery(broke.data.key, q("documents.write"));
  assert.equal(insufficient.code, "INSUFFICIENT_PERMISSIONS", "before USAGE_EXCEEDED");
  assert.equal(insufficient.credits, 0);
  assert.equal((await verifyQuery(broke.data.key, q("documents.read"))).code, "USAGE_EXCEEDED");
  const busy = await unkey.keys.createKey({
    apiId,
    prefix: PREFIX,
    permissions: [q("documents.read")],
    ratelimits: [{ name: "requests", limit: 1, duration: HOUR, autoApply: true }],
  });
  assert.equal((await verifyQuery(busy.data.key, q("documents.read"))).code, "VALID");
  assert.equal((await verifyQuery(busy.data.key, q("documents.read"))).code, "RATE_LIMITED");
  const limited = await verifyQuery(busy.data.key, q("documents.write"));
  assert.equal(limited.code, "INSUFFICIENT_PERMISSIONS", "before RATE_LIMITED");
  await unkey.keys.updateKey({ keyId: broke.data.keyId, enabled: false });
  assert.equal((await verifyQuery(broke.data.key, q("documents.write"))).code, "DISABLED");
  const old = await unkey.keys.createKey({ apiId, expires: Date.now() - MINUTE });
  assert.equal((await verifyQuery(old.data.key, q("documents.read"))).code, "EXPIRED");
  const missing = await verifyQuery(`${PREFIX}_${"1".repeat(28)}`, q("documents.read"));
  assert.equal(missing.code, "NOT_FOUND");
  assert.equal(missing.keyId, undefined);
}

async function verifyPermissionQuerySyntax(): Promise<void> {
  const apiId = await newApi("query-syntax");
  const { key } = (
    await unkey.keys.createKey({
      apiId,
      prefix: PREFIX,
      permissions: ["a", "b"],
      credits: { remaining: 5 },
      ratelimits: [{ name: "requests", limit: 5, duration: HOUR, autoApply: true }],
    })
  ).data;
  await inOneWindow(HOUR);

  // A query that does not parse is a 400 whose detail says where (0-based characters).
  const broken: [string, number][] = [
    ["a AND", 5],
    ["()", 0],
    ["a b", 2],
    ["a & b", 2],
    ["(a OR b", 7],
    ["AND a", 0],
    ["a)", 1],
    ["a OR OR b", 5],
    ["a AND (b OR c", 13],
  ];
  for (const [query, position] of broken) {
    const e = await expectError(
      () => unkey.keys.verifyKey({ key, permissions: query }, noRetry),
      BadRequestErrorResponse,
      400,
    );
    const what = JSON.stringify(query);
    assert.equal(e.error.status, 400, what);
    assert.ok(
      e.error.type.endsWith("/permissions_query_syntax_error"),
      `${what}: error.type ${e.error.type}`,
    );
    assert.ok(
      e.error.detail.includes(`position ${position}`),
      `${what}: detail ${JSON.stringify(e.error.detail)} does not name position ${position}`,
    );
    assertErrorLocation(e, "permissions");
    assertRequestId(e.meta);
  }
  // An empty or overlong query is a 400 too.
  for (const query of ["", "a OR ".repeat(200) + "a"]) {
    const e = await expectError(
      () => unkey.keys.verifyKey({ key, permissions: query }, noRetry),
      BadRequestErrorResponse,
      400,
    );
    assertErrorLocation(e, "permissions");
  }

  // Nothing was spent.
  const after = await verifyQuery(key, "a AND b");
  assert.equal(after.code, "VALID");
  assert.equal(after.credits, 4, "a refused query spent credits");
  assert.equal(evaluated(after, "requests").remaining, 4, "a refused query used the rate limit");
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
  // …nor touch identities or rate limits.
  const namespace = `sdkts-forbidden-${suffix}`;
  await unkey.ratelimit.limit({ namespace, identifier: "x", limit: 1, duration: MINUTE });
  const forbiddenCalls: [string, () => Promise<unknown>][] = [
    ["createIdentity", () => limited.identities.createIdentity({ externalId: namespace }, noRetry)],
    ["listIdentities", () => limited.identities.listIdentities({}, noRetry)],
    [
      "ratelimit.limit",
      () =>
        limited.ratelimit.limit(
          { namespace, identifier: "x", limit: 1, duration: MINUTE },
          noRetry,
        ),
    ],
    [
      "setOverride",
      () =>
        limited.ratelimit.setOverride(
          { namespace, identifier: "x", limit: 1, duration: MINUTE },
          noRetry,
        ),
    ],
  ];
  // …nor permissions and roles, nor what a key holds.
  const rbacSlug = `sdkts${suffix}.forbidden`;
  const rbacRole = `sdkts-forbidden-${suffix}`;
  await unkey.permissions.createRole({ name: rbacRole, permissions: [rbacSlug] });
  const rbacKey = await unkey.keys.createKey({ apiId, prefix: PREFIX });
  const keyId = rbacKey.data.keyId;
  forbiddenCalls.push(
    [
      "createPermission",
      () => limited.permissions.createPermission({ name: "x", slug: `${rbacSlug}.2` }, noRetry),
    ],
    ["getPermission", () => limited.permissions.getPermission({ permission: rbacSlug }, noRetry)],
    ["listPermissions", () => limited.permissions.listPermissions({}, noRetry)],
    [
      "deletePermission",
      () => limited.permissions.deletePermission({ permission: rbacSlug }, noRetry),
    ],
    ["createRole", () => limited.permissions.createRole({ name: `${rbacRole}-2` }, noRetry)],
    ["getRole", () => limited.permissions.getRole({ role: rbacRole }, noRetry)],
    ["listRoles", () => limited.permissions.listRoles({}, noRetry)],
    ["deleteRole", () => limited.permissions.deleteRole({ role: rbacRole }, noRetry)],
    [
      "setRolePermissions",
      () => limited.permissions.setRolePermissions({ roleId: rbacRole, permissions: [] }, noRetry),
    ],
    [
      "addPermissions",
      () => limited.keys.addPermissions({ keyId, permissions: [rbacSlug] }, noRetry),
    ],
    [
      "removePermissions",
      () => limited.keys.removePermissions({ keyId, permissions: [rbacSlug] }, noRetry),
    ],
    ["setPermissions", () => limited.keys.setPermissions({ keyId, permissions: [] }, noRetry)],
    ["addRoles", () => limited.keys.addRoles({ keyId, roles: [rbacRole] }, noRetry)],
    ["setRoles", () => limited.keys.setRoles({ keyId, roles: [] }, noRetry)],
  );
  for (const [what, call] of forbiddenCalls) {
    let e: ForbiddenErrorResponse;
    try {
      e = await expectError(call, ForbiddenErrorResponse, 403);
    } catch (failure) {
      throw new Error(`${what}: ${failure instanceof Error ? failure.message : failure}`);
    }
    assert.equal(e.error.status, 403, what);
  }
  // Nothing changed.
  assert.deepEqual(
    (await getRoleView(rbacRole)).permissions.map((p) => p.slug),
    [rbacSlug],
  );
  await assertHolds(apiId, rbacKey.data, [], [], "after forbidden changes");

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

// ---------------------------------------------------------------------------------------------
// analytics

async function analyticsGetVerifications(): Promise<void> {
  const apiId = await newApi("analytics");
  const created = await unkey.keys.createKey({ apiId });
  for (let i = 0; i < 3; i++) assert.equal((await verify(created.data.key)).code, "VALID");
  const query =
    "SELECT outcome, count() AS n FROM key_verifications_v1 " +
    `WHERE key_id = '${created.data.keyId}' GROUP BY outcome`;
  // Verifications are written in batches; wait for this one.
  const deadline = Date.now() + 15_000;
  for (;;) {
    const res = await unkey.analytics.getVerifications({ query });
    assertRequestId(res.meta);
    assert.ok(Array.isArray(res.data), "data is an array of rows");
    if (res.data.length > 0 && res.data[0].n === 3) {
      assert.deepEqual(res.data, [{ outcome: "VALID", n: 3 }]);
      break;
    }
    assert.ok(Date.now() < deadline, `analytics counted ${JSON.stringify(res.data)}, not 3`);
    await sleep(100);
  }
  const refused = await expectError(
    () => unkey.analytics.getVerifications({ query: "SELECT * FROM keys" }),
    BadRequestErrorResponse,
    400,
  );
  assert.match(refused.data$.error.detail, /unknown table `keys`/);
}

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
  ["identities.createIdentity + getIdentity", identitiesCreateAndGet],
  ["identities.listIdentities", identitiesList],
  ["identities.updateIdentity", identitiesUpdate],
  ["identities.deleteIdentity", identitiesDelete],
  ["keys: externalId + ratelimits", keyIdentitiesAndLimits],
  ["keys.verifyKey with key rate limits", verifyKeyLimits],
  ["keys.verifyKey with identity rate limits", verifyIdentityLimits],
  ["ratelimit.limit", ratelimitLimit],
  ["ratelimit.multiLimit", ratelimitMultiLimit],
  ["ratelimit overrides", ratelimitOverrides],
  ["permissions.createPermission + getPermission", permissionsCreateAndGet],
  ["permissions.listPermissions", permissionsList],
  ["permissions.deletePermission", permissionsDelete],
  ["permissions.createRole + getRole", rolesCreateAndGet],
  ["permissions.listRoles", rolesList],
  ["permissions.deleteRole", rolesDelete],
  ["permissions.setRolePermissions", rolePermissions],
  ["keys.add/remove/setPermissions", keyPermissions],
  ["keys.add/remove/setRoles", keyRoles],
  ["keys: permissions + roles on create/update/reroll", keyAccessOnCreateAndUpdate],
  ["keys.verifyKey permission queries", verifyPermissionQueries],
  ["keys.verifyKey permission query syntax", verifyPermissionQuerySyntax],
  ["error classes", errors],
  ["analytics.getVerifications", analyticsGetVerifications],
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
