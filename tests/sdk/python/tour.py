"""Conformance tour: drives a Keywarden server through the official `unkey-py` SDK and checks
the values that come back, not just that no exception was raised.

Environment:
  KEYWARDEN_URL                base URL of the server, e.g. http://127.0.0.1:7070
  KEYWARDEN_ROOT_KEY           a root key holding every permission
  KEYWARDEN_LIMITED_ROOT_KEY   a root key holding only `api.*.read_api`

Each section runs on its own data; a failing section is reported and the tour goes on, so one
run lists every mismatch. The exit status is 1 if any section failed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import sys
import time
import traceback
import urllib.request
from typing import Any, Callable, Optional, TypeVar

from unkey.py import Unkey, errors
from unkey.py.utils import BackoffStrategy, RetryConfig


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        print(f"missing environment variable {name}", file=sys.stderr)
        sys.exit(2)
    return value


SERVER_URL = env("KEYWARDEN_URL")
ROOT_KEY = env("KEYWARDEN_ROOT_KEY")
LIMITED_ROOT_KEY = env("KEYWARDEN_LIMITED_ROOT_KEY")

unkey = Unkey(root_key=ROOT_KEY, server_url=SERVER_URL, timeout_ms=10_000)
# Calls expected to fail are not retried (4xx never is; this also covers a stray 5xx).
NO_RETRY = RetryConfig("none", BackoffStrategy(0, 0, 0, 0), False)

PREFIX = "sdkpy"
BASE58 = set("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")
SUFFIX = secrets.token_hex(4)

E = TypeVar("E", bound=errors.UnkeyError)


# ------------------------------------------------------------------------------------------------
# helpers


def now_ms() -> int:
    return int(time.time() * 1000)


def eq(actual: Any, expected: Any, what: str) -> None:
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def code(data: Any) -> str:
    """The verification code as a plain string (the SDK models it as an open enum)."""
    value = data.code
    return value.value if hasattr(value, "value") else str(value)


def credits_dict(credits: Any) -> Optional[dict]:
    """`KeyCreditsData` as the wire shows it, for whole-value comparisons."""
    if credits is None:
        return None
    out: dict = {"remaining": credits.remaining}
    refill = credits.refill
    if refill is not None:
        interval = refill.interval
        r: dict = {
            "interval": interval.value if hasattr(interval, "value") else str(interval),
            "amount": refill.amount,
        }
        if refill.refill_day is not None:
            r["refillDay"] = refill.refill_day
        out["refill"] = r
    return out


def request_id(meta: Any) -> None:
    check(isinstance(meta.request_id, str) and meta.request_id != "", "meta.requestId is empty")


def new_api(label: str) -> str:
    res = unkey.apis.create_api(name=f"sdkpy-{label}-{SUFFIX}")
    check(isinstance(res.data.api_id, str) and res.data.api_id != "", "apiId is empty")
    return res.data.api_id


def new_protected_api(label: str) -> str:
    """Creates an API with delete protection. That is a Keywarden extension of
    `apis.createApi` the SDK cannot send, so this one request is made without it."""
    request = urllib.request.Request(
        SERVER_URL.rstrip("/") + "/v2/apis.createApi",
        data=json.dumps({"name": f"sdkpy-{label}-{SUFFIX}", "deleteProtection": True}).encode(),
        headers={"Authorization": f"Bearer {ROOT_KEY}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        eq(response.status, 200, "createApi with deleteProtection")
        return json.loads(response.read())["data"]["apiId"]


def key_format(key: str, prefix: str) -> None:
    """Asserts `key` is `<prefix>_<base58>`, the Keywarden key format."""
    check(key.startswith(prefix + "_"), f"key {key} does not start with {prefix}_")
    body = key[len(prefix) + 1 :]
    check(set(body) <= BASE58, f"key body of {key} is not base58")
    check(len(body) >= 22, f"key body of {key} is too short")


def expect_error(call: Callable[[], Any], cls: type[E], status: int) -> E:
    """Runs `call`, which must raise `cls` with HTTP status `status`; returns the error."""
    try:
        call()
    except cls as e:
        eq(e.status_code, status, f"status of {cls.__name__}")
        return e
    except errors.UnkeyError as e:
        raise AssertionError(
            f"expected {cls.__name__} ({status}), got {type(e).__name__} "
            f"status {e.status_code}: {e.body}"
        ) from e
    raise AssertionError(f"expected {cls.__name__} ({status}), but the call succeeded")


def verify(key: str, cost: Optional[int] = None) -> Any:
    if cost is None:
        res = unkey.keys.verify_key(key=key)
    else:
        res = unkey.keys.verify_key(key=key, credits={"cost": cost})
    request_id(res.meta)
    return res.data


def get_key(key_id: str) -> Any:
    return unkey.keys.get_key(key_id=key_id).data


def list_ids(api_id: str) -> list[str]:
    res = unkey.apis.list_keys(api_id=api_id)
    check(res is not None, "listKeys returned nothing")
    return [k.key_id for k in res.result.data]


# ------------------------------------------------------------------------------------------------
# sections


def apis_create_and_get() -> None:
    name = f"sdkpy-apis-{SUFFIX}"
    created = unkey.apis.create_api(name=name)
    request_id(created.meta)
    api_id = created.data.api_id
    check(8 <= len(api_id) <= 255, f"apiId format: {api_id}")

    got = unkey.apis.get_api(api_id=api_id)
    request_id(got.meta)
    eq(got.data.id, api_id, "getApi id")
    eq(got.data.name, name, "getApi name")

    other = unkey.apis.create_api(name=name + "-2")
    check(other.data.api_id != api_id, "second API has its own id")
    eq(unkey.apis.get_api(api_id=other.data.api_id).data.name, name + "-2", "second name")


def create_key_and_read() -> None:
    api_id = new_api("create")
    expires = now_ms() + 3_600_000
    meta = {"plan": "pro", "seats": 3, "nested": {"tags": ["a", "b"], "ok": True}}
    before = now_ms()
    created = unkey.keys.create_key(
        api_id=api_id,
        prefix=PREFIX,
        name="monthly key",
        meta=meta,
        expires=expires,
        credits={
            "remaining": 100,
            "refill": {"interval": "monthly", "amount": 250, "refill_day": 15},
        },
    )
    after = now_ms()
    request_id(created.meta)
    key_id, key = created.data.key_id, created.data.key
    check(len(key_id) >= 3, "keyId")
    key_format(key, PREFIX)

    expected_credits = {
        "remaining": 100,
        "refill": {"interval": "monthly", "amount": 250, "refillDay": 15},
    }

    def check_key(k: Any, via: str) -> None:
        eq(k.key_id, key_id, f"{via}: keyId")
        eq(k.enabled, True, f"{via}: enabled")
        eq(k.name, "monthly key", f"{via}: name")
        eq(k.meta, meta, f"{via}: meta")
        eq(k.expires, expires, f"{via}: expires")
        eq(credits_dict(k.credits), expected_credits, f"{via}: credits")
        check(k.start.startswith(PREFIX + "_"), f"{via}: start {k.start}")
        check(key.startswith(k.start), f"{via}: start {k.start} is not a prefix of the key")
        check(len(k.start) < len(key), f"{via}: start reveals the whole key")
        check(
            before - 1000 <= k.created_at <= after + 1000,
            f"{via}: createdAt {k.created_at} not within [{before}, {after}]",
        )
        eq(k.plaintext, None, f"{via}: plaintext without decrypt")
        eq(k.permissions or [], [], f"{via}: permissions")
        eq(k.roles or [], [], f"{via}: roles")
        eq(k.identity, None, f"{via}: identity")

    got = unkey.keys.get_key(key_id=key_id)
    request_id(got.meta)
    check_key(got.data, "getKey")

    me = unkey.keys.whoami(key=key)
    request_id(me.meta)
    check_key(me.data, "whoami")

    page = unkey.apis.list_keys(api_id=api_id)
    assert page is not None
    request_id(page.result.meta)
    eq(len(page.result.data), 1, "listKeys: one key")
    check_key(page.result.data[0], "listKeys")
    eq(page.result.pagination.has_more, False, "listKeys: hasMore")
    eq(page.result.pagination.cursor, None, "listKeys: cursor on the last page")
    eq(page.next(), None, "listKeys: next() after the last page")

    daily = unkey.keys.create_key(
        api_id=api_id,
        prefix=PREFIX,
        credits={"remaining": 10, "refill": {"interval": "daily", "amount": 10}},
    )
    d = get_key(daily.data.key_id)
    eq(
        credits_dict(d.credits),
        {"remaining": 10, "refill": {"interval": "daily", "amount": 10}},
        "daily credits",
    )
    eq(d.name, None, "daily: name")
    eq(d.meta, None, "daily: meta")
    eq(d.expires, None, "daily: expires")

    plain = unkey.keys.create_key(api_id=api_id)
    check(
        all(c.isalnum() or c == "_" for c in plain.data.key),
        f"key without an explicit prefix: {plain.data.key}",
    )
    p = get_key(plain.data.key_id)
    eq(p.credits, None, "no credits configured: credits omitted")
    eq(p.enabled, True, "plain: enabled")

    off = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, enabled=False)
    eq(get_key(off.data.key_id).enabled, False, "created disabled")
    eq(code(verify(off.data.key)), "DISABLED", "verify a key created disabled")

    eq(
        sorted(list_ids(api_id)),
        sorted([key_id, daily.data.key_id, plain.data.key_id, off.data.key_id]),
        "listKeys ids",
    )


def verify_outcomes() -> None:
    api_id = new_api("verify")
    meta = {"tier": "gold"}
    expires = now_ms() + 3_600_000
    created = unkey.keys.create_key(
        api_id=api_id,
        prefix=PREFIX,
        name="verified",
        meta=meta,
        expires=expires,
        credits={"remaining": 100},
    )
    key_id, key = created.data.key_id, created.data.key

    v = verify(key)
    eq(v.valid, True, "valid")
    eq(code(v), "VALID", "code")
    eq(v.key_id, key_id, "keyId")
    eq(v.name, "verified", "name")
    eq(v.meta, meta, "meta")
    eq(v.expires, expires, "expires")
    eq(v.enabled, True, "enabled")
    eq(v.credits, 99, "credits after one verification")
    eq(v.permissions or [], [], "permissions")
    eq(v.roles or [], [], "roles")

    tagged = unkey.keys.verify_key(
        key=key, tags=["path=/v1/things", "region=local"], credits={"cost": 9}
    )
    eq(code(tagged.data), "VALID", "tagged verify")
    eq(tagged.data.credits, 90, "credits after cost 9")

    missing = verify(f"{PREFIX}_{'1' * 28}")
    eq(missing.valid, False, "unknown key valid")
    eq(code(missing), "NOT_FOUND", "unknown key code")
    eq(missing.key_id, None, "NOT_FOUND carries no keyId")
    eq(missing.credits, None, "NOT_FOUND carries no credits")

    unkey.keys.update_key(key_id=key_id, enabled=False)
    eq(get_key(key_id).enabled, False, "getKey after disabling")
    disabled = verify(key)
    eq(disabled.valid, False, "disabled valid")
    eq(code(disabled), "DISABLED", "disabled code")
    eq(disabled.key_id, key_id, "disabled keyId")
    eq(disabled.enabled, False, "disabled enabled")
    unkey.keys.update_key(key_id=key_id, enabled=True)
    again = verify(key)
    eq(code(again), "VALID", "re-enabled")
    eq(again.credits, 89, "a DISABLED verification spent no credits")

    past = now_ms() - 60_000
    old = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, expires=past)
    expired = verify(old.data.key)
    eq(expired.valid, False, "expired valid")
    eq(code(expired), "EXPIRED", "expired code")
    eq(expired.key_id, old.data.key_id, "expired keyId")
    eq(expired.expires, past, "expired expires")

    unkey.keys.update_key(key_id=key_id, expires=past)
    eq(code(verify(key)), "EXPIRED", "expiry moved into the past")
    unkey.keys.update_key(key_id=key_id, expires=None)
    revived = verify(key)
    eq(code(revived), "VALID", "expiry cleared")
    eq(revived.expires, None, "expires cleared with null")

    metered = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, credits={"remaining": 3})
    mk = metered.data.key
    too_much = verify(mk, 5)
    eq(code(too_much), "USAGE_EXCEEDED", "cost above balance")
    eq(too_much.valid, False, "cost above balance valid")
    eq(too_much.credits, 3, "a failed verification must not deduct")
    exact = verify(mk, 3)
    eq(code(exact), "VALID", "exact balance")
    eq(exact.credits, 0, "exact balance credits")
    exhausted = verify(mk)
    eq(exhausted.valid, False, "exhausted valid")
    eq(code(exhausted), "USAGE_EXCEEDED", "exhausted code")
    eq(exhausted.credits, 0, "exhausted credits")
    free = verify(mk, 0)
    eq(free.valid, True, "cost 0 at 0 remaining")
    eq(code(free), "VALID", "cost 0 code")
    eq(free.credits, 0, "cost 0 credits")
    eq(credits_dict(get_key(metered.data.key_id).credits), {"remaining": 0}, "getKey credits")

    # `keyspaces` (unkey-py 3.2.2 only): restrict verification to the key's own keyspace, as
    # reported in `keyspaceId`; another keyspace answers NOT_FOUND and spends nothing.
    fenced = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, credits={"remaining": 10})
    first = verify(fenced.data.key)
    keyspace = first.keyspace_id
    check(isinstance(keyspace, str) and keyspace != "", f"keyspaceId: {keyspace!r}")
    inside = unkey.keys.verify_key(key=fenced.data.key, keyspaces=[keyspace])
    eq(code(inside.data), "VALID", "verify within the key's keyspace")
    eq(inside.data.credits, 8, "credits after a keyspace-restricted verification")
    elsewhere_id = new_api("verify-elsewhere")
    elsewhere = unkey.keys.create_key(api_id=elsewhere_id, prefix=PREFIX)
    other_keyspace = verify(elsewhere.data.key).keyspace_id
    check(other_keyspace != keyspace, "two APIs share a keyspace id")
    outside = unkey.keys.verify_key(key=fenced.data.key, keyspaces=[other_keyspace])
    eq(code(outside.data), "NOT_FOUND", "verify restricted to another keyspace")
    eq(outside.data.valid, False, "verify restricted to another keyspace valid")
    eq(outside.data.key_id, None, "NOT_FOUND by keyspace carries no keyId")
    eq(verify(fenced.data.key, 0).credits, 8, "a keyspace mismatch spent credits")

    unlimited = unkey.keys.create_key(api_id=api_id, prefix=PREFIX)
    u = verify(unlimited.data.key, 1_000)
    eq(code(u), "VALID", "unlimited key")
    eq(u.credits, None, "unlimited key: credits omitted")


def update_key_fields() -> None:
    api_id = new_api("update")
    created = unkey.keys.create_key(
        api_id=api_id,
        prefix=PREFIX,
        name="to be cleared",
        meta={"a": 1},
        expires=now_ms() + 3_600_000,
        credits={"remaining": 7, "refill": {"interval": "daily", "amount": 7}},
    )
    key_id, key = created.data.key_id, created.data.key

    res = unkey.keys.update_key(key_id=key_id, meta={"b": "two"})
    request_id(res.meta)
    k = get_key(key_id)
    eq(k.name, "to be cleared", "omitted name stays")
    eq(k.meta, {"b": "two"}, "meta is replaced, not merged")
    eq(
        credits_dict(k.credits),
        {"remaining": 7, "refill": {"interval": "daily", "amount": 7}},
        "omitted credits stay",
    )
    check(isinstance(k.updated_at, int), "updatedAt after an update")

    unkey.keys.update_key(key_id=key_id, name=None, meta=None, expires=None)
    k = get_key(key_id)
    eq(k.name, None, "name cleared with null")
    eq(k.meta, None, "meta cleared with null")
    eq(k.expires, None, "expires cleared with null")
    eq(unkey.keys.whoami(key=key).data.name, None, "whoami: name cleared")

    unkey.keys.update_key(key_id=key_id, name="renamed")
    eq(get_key(key_id).name, "renamed", "renamed")
    eq(verify(key, 0).name, "renamed", "verify shows the new name")

    unkey.keys.update_key(
        key_id=key_id,
        credits={
            "remaining": 40,
            "refill": {"interval": "monthly", "amount": 40, "refill_day": 31},
        },
    )
    eq(
        credits_dict(get_key(key_id).credits),
        {"remaining": 40, "refill": {"interval": "monthly", "amount": 40, "refillDay": 31}},
        "credits replaced",
    )
    unkey.keys.update_key(key_id=key_id, credits={"refill": None})
    eq(credits_dict(get_key(key_id).credits), {"remaining": 40}, "refill cleared")
    unkey.keys.update_key(key_id=key_id, credits=None)
    c = get_key(key_id).credits
    check(
        c is None or c.remaining is None,
        f"credits: null makes the key unlimited, got {credits_dict(c)}",
    )
    eq(verify(key).credits, None, "unlimited after credits: null")

    expect_error(
        lambda: unkey.keys.update_key(key_id="key_doesnotexist0000", name="x", retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )


def update_credits() -> None:
    api_id = new_api("credits")
    created = unkey.keys.create_key(
        api_id=api_id,
        prefix=PREFIX,
        credits={"remaining": 5, "refill": {"interval": "daily", "amount": 50}},
    )
    key_id, key = created.data.key_id, created.data.key

    s = unkey.keys.update_credits(key_id=key_id, operation="set", value=10)
    request_id(s.meta)
    eq(s.data.remaining, 10, "set 10")
    eq(
        credits_dict(s.data),
        {"remaining": 10, "refill": {"interval": "daily", "amount": 50}},
        "set keeps the refill",
    )
    eq(
        unkey.keys.update_credits(key_id=key_id, operation="increment", value=5).data.remaining,
        15,
        "increment 5",
    )
    eq(verify(key, 0).credits, 15, "verify after increment")
    eq(
        unkey.keys.update_credits(key_id=key_id, operation="decrement", value=4).data.remaining,
        11,
        "decrement 4",
    )
    eq(
        unkey.keys.update_credits(
            key_id=key_id, operation="decrement", value=1_000
        ).data.remaining,
        0,
        "decrement below zero clamps to 0",
    )
    eq(code(verify(key)), "USAGE_EXCEEDED", "after clamping to 0")

    unlimited = unkey.keys.update_credits(key_id=key_id, operation="set", value=None)
    eq(unlimited.data.remaining, None, "set null → remaining null")
    eq(unlimited.data.refill, None, "set null clears the refill")
    after = verify(key, 1_000_000)
    eq(code(after), "VALID", "unlimited verify")
    eq(after.credits, None, "unlimited verify credits")

    limited = unkey.keys.update_credits(key_id=key_id, operation="set", value=2)
    eq(limited.data.remaining, 2, "set 2 from unlimited")
    eq(credits_dict(get_key(key_id).credits), {"remaining": 2}, "getKey after set 2")
    eq(verify(key).credits, 1, "verify after set 2")

    bad = expect_error(
        lambda: unkey.keys.update_credits(key_id=key_id, operation="increment", retries=NO_RETRY),
        errors.BadRequestErrorResponse,
        400,
    )
    check(len(bad.data.error.errors) > 0, "400 without errors[]")


def reroll_key() -> None:
    api_id = new_api("reroll")
    meta = {"owner": "reroll"}
    created = unkey.keys.create_key(
        api_id=api_id,
        prefix=PREFIX,
        name="rotating",
        meta=meta,
        credits={
            "remaining": 20,
            "refill": {"interval": "monthly", "amount": 20, "refill_day": 1},
        },
    )
    old_id, old_key = created.data.key_id, created.data.key

    grace = 60_000
    before = now_ms()
    rerolled = unkey.keys.reroll_key(key_id=old_id, expiration=grace)
    after = now_ms()
    request_id(rerolled.meta)
    new_id, new_key = rerolled.data.key_id, rerolled.data.key
    check(new_id != old_id, "reroll returns a new keyId")
    check(new_key != old_key, "reroll returns a new key")
    key_format(new_key, PREFIX)

    fresh = verify(new_key)
    eq(code(fresh), "VALID", "new key verifies")
    eq(fresh.key_id, new_id, "new key id")
    eq(fresh.name, "rotating", "new key copies the name")
    eq(fresh.meta, meta, "new key copies meta")
    eq(fresh.credits, 19, "new key copies the remaining credits")
    n = get_key(new_id)
    eq(
        credits_dict(n.credits),
        {"remaining": 19, "refill": {"interval": "monthly", "amount": 20, "refillDay": 1}},
        "new key copies the refill",
    )
    eq(n.expires, None, "new key copies the (absent) expiry")

    stale = verify(old_key)
    eq(code(stale), "VALID", "old key stays valid within the grace period")
    eq(stale.key_id, old_id, "old key id")
    o = get_key(old_id)
    check(isinstance(o.expires, int), "old key gets an expiry")
    check(
        before + grace - 1000 <= o.expires <= after + grace,
        f"old key expires {o.expires} not within [{before + grace}, {after + grace}]",
    )
    # A key with an expiry: the new key keeps it, the old one's is cut to the grace period.
    in_an_hour = now_ms() + 3_600_000
    dated = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, expires=in_an_hour)
    t0 = now_ms()
    dated_new = unkey.keys.reroll_key(key_id=dated.data.key_id, expiration=grace)
    t1 = now_ms()
    eq(get_key(dated_new.data.key_id).expires, in_an_hour, "new key copies the expiry")
    dated_old = get_key(dated.data.key_id).expires
    check(
        t0 + grace - 1000 <= dated_old <= t1 + grace,
        f"old dated key expires {dated_old} not within [{t0 + grace}, {t1 + grace}]",
    )
    unkey.keys.delete_key(key_id=dated.data.key_id)
    unkey.keys.delete_key(key_id=dated_new.data.key_id)

    eq(sorted(list_ids(api_id)), sorted([old_id, new_id]), "listKeys after reroll")

    second = unkey.keys.reroll_key(key_id=new_id, expiration=0)
    time.sleep(0.05)
    eq(code(verify(second.data.key)), "VALID", "third key verifies")
    dead = verify(new_key)
    eq(code(dead), "EXPIRED", "expiration 0 ends the old key at once")
    eq(dead.valid, False, "expired old key valid")

    expect_error(
        lambda: unkey.keys.reroll_key(
            key_id="key_doesnotexist0000", expiration=0, retries=NO_RETRY
        ),
        errors.NotFoundErrorResponse,
        404,
    )


def delete_key() -> None:
    api_id = new_api("delete-key")
    soft = unkey.keys.create_key(api_id=api_id, prefix=PREFIX)
    hard = unkey.keys.create_key(api_id=api_id, prefix=PREFIX)
    keep = unkey.keys.create_key(api_id=api_id, prefix=PREFIX)
    eq(code(verify(soft.data.key)), "VALID", "before delete")

    res = unkey.keys.delete_key(key_id=soft.data.key_id)
    request_id(res.meta)
    gone = verify(soft.data.key)
    eq(code(gone), "NOT_FOUND", "deleted key")
    eq(gone.valid, False, "deleted key valid")
    eq(gone.key_id, None, "a deleted key's details are not shown")
    nf = expect_error(
        lambda: unkey.keys.get_key(key_id=soft.data.key_id, retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )
    eq(nf.data.error.status, 404, "error.status")
    expect_error(
        lambda: unkey.keys.whoami(key=soft.data.key, retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )

    unkey.keys.delete_key(key_id=hard.data.key_id, permanent=True)
    eq(code(verify(hard.data.key)), "NOT_FOUND", "permanently deleted key")
    expect_error(
        lambda: unkey.keys.get_key(key_id=hard.data.key_id, retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )

    eq(list_ids(api_id), [keep.data.key_id], "listKeys shows only the surviving key")
    eq(code(verify(keep.data.key)), "VALID", "surviving key")

    expect_error(
        lambda: unkey.keys.delete_key(key_id=soft.data.key_id, retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )


def delete_api() -> None:
    api_id = new_api("delete-api")
    a = unkey.keys.create_key(api_id=api_id, prefix=PREFIX)
    b = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, credits={"remaining": 1})
    eq(code(verify(a.data.key)), "VALID", "before deleteApi")

    res = unkey.apis.delete_api(api_id=api_id)
    request_id(res.meta)
    for key in (a.data.key, b.data.key):
        v = verify(key)
        eq(code(v), "NOT_FOUND", "keys of a deleted API")
        eq(v.valid, False, "keys of a deleted API valid")
    expect_error(
        lambda: unkey.apis.get_api(api_id=api_id, retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )
    expect_error(
        lambda: unkey.apis.list_keys(api_id=api_id, retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )
    expect_error(
        lambda: unkey.apis.delete_api(api_id=api_id, retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )
    expect_error(
        lambda: unkey.keys.create_key(api_id=api_id, prefix=PREFIX, retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )

    # 412 on deleteApi, the endpoint that declares it: a delete-protected API stays, keys too.
    protected_id = new_protected_api("protected")
    kept = unkey.keys.create_key(api_id=protected_id, prefix=PREFIX)
    refused = expect_error(
        lambda: unkey.apis.delete_api(api_id=protected_id, retries=NO_RETRY),
        errors.PreconditionFailedErrorResponse,
        412,
    )
    eq(refused.data.error.status, 412, "412 error.status")
    request_id(refused.data.meta)
    eq(unkey.apis.get_api(api_id=protected_id).data.id, protected_id, "protected API stays")
    eq(code(verify(kept.data.key)), "VALID", "keys of a protected API stay")


def sha256_b64(plaintext: str) -> str:
    return base64.b64encode(hashlib.sha256(plaintext.encode("utf-8")).digest()).decode()


def migrate_keys() -> None:
    api_id = new_api("migrate")
    plaintext = "legacy_" + secrets.token_hex(18)
    digest = sha256_b64(plaintext)
    malformed = "this is not a sha-256 hash!"
    expires = now_ms() + 86_400_000

    res = unkey.keys.migrate_keys(
        migration_id=f"sdkpy-{SUFFIX}",
        api_id=api_id,
        keys=[
            {
                "hash": digest,
                "name": "imported",
                "meta": {"source": "legacy"},
                "expires": expires,
                "credits": {"remaining": 5},
            },
            {"hash": malformed},
        ],
    )
    request_id(res.meta)
    eq(len(res.data.migrated), 1, f"migrated: {res.data}")
    eq(res.data.migrated[0].hash, digest, "migrated hash")
    key_id = res.data.migrated[0].key_id
    check(len(key_id) >= 3, "migrated keyId")
    eq(res.data.failed, [malformed], "failed")

    v = verify(plaintext)
    eq(code(v), "VALID", "the migrated plaintext verifies")
    eq(v.key_id, key_id, "migrated keyId on verify")
    eq(v.name, "imported", "migrated name")
    eq(v.meta, {"source": "legacy"}, "migrated meta")
    eq(v.expires, expires, "migrated expires")
    eq(v.credits, 4, "migrated credits")

    k = get_key(key_id)
    eq(k.name, "imported", "getKey name")
    eq(k.enabled, True, "getKey enabled")
    eq(credits_dict(k.credits), {"remaining": 4}, "getKey credits")
    eq(list_ids(api_id), [key_id], "listKeys after migration")

    other = "legacy_" + secrets.token_hex(18)
    other_digest = sha256_b64(other)
    again = unkey.keys.migrate_keys(
        migration_id=f"sdkpy-{SUFFIX}",
        api_id=api_id,
        keys=[{"hash": digest}, {"hash": other_digest, "enabled": False}],
    )
    eq(again.data.failed, [digest], "a duplicate hash fails")
    eq([m.hash for m in again.data.migrated], [other_digest], "second migration")
    eq(code(verify(other)), "DISABLED", "a disabled import")


def pagination() -> None:
    api_id = new_api("pages")
    created = set()
    for i in range(7):
        res = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, name=f"page-key-{i}")
        created.add(res.data.key_id)
    eq(len(created), 7, "created keys")

    seen: list[str] = []
    sizes: list[int] = []
    has_more: list[bool] = []
    page = unkey.apis.list_keys(api_id=api_id, limit=3)
    pages = 0
    while page is not None:
        pages += 1
        check(pages <= 10, "the auto-pager does not terminate")
        request_id(page.result.meta)
        sizes.append(len(page.result.data))
        has_more.append(page.result.pagination.has_more)
        for k in page.result.data:
            seen.append(k.key_id)
            check(
                (k.name or "").startswith("page-key-"), f"listed key has name {k.name}"
            )
        page = page.next()
    eq(sizes, [3, 3, 1], "page sizes")
    eq(has_more, [True, True, False], "hasMore per page")
    eq(len(seen), 7, "keys listed")
    eq(len(set(seen)), 7, "every key listed exactly once")
    eq(sorted(seen), sorted(created), "listed ids")

    manual: list[str] = []
    cursor: Optional[str] = None
    for _ in range(10):
        p = unkey.apis.list_keys(api_id=api_id, limit=3, cursor=cursor)
        assert p is not None
        manual.extend(k.key_id for k in p.result.data)
        cursor = p.result.pagination.cursor
        if not cursor:
            break
    eq(manual, seen, "walking by hand with the cursor")


def error_classes() -> None:
    bad = expect_error(
        lambda: unkey.apis.create_api(name="ab", retries=NO_RETRY),
        errors.BadRequestErrorResponse,
        400,
    )
    err = bad.data.error
    eq(err.status, 400, "error.status")
    check(isinstance(err.title, str) and isinstance(err.detail, str), "title/detail")
    check(err.type.startswith("https://"), f"error.type {err.type}")
    check(len(err.errors) > 0, "400 without errors[]")
    check(
        any("name" in e.location for e in err.errors),
        f"no error names the field: {[e.location for e in err.errors]}",
    )
    request_id(bad.data.meta)

    api_id = new_api("errors")
    bad_length = expect_error(
        lambda: unkey.keys.create_key(api_id=api_id, byte_length=8, retries=NO_RETRY),
        errors.BadRequestErrorResponse,
        400,
    )
    check(
        any("byteLength" in e.location for e in bad_length.data.error.errors),
        f"no error names byteLength: {[e.location for e in bad_length.data.error.errors]}",
    )

    with Unkey(
        root_key=f"unknown_root_key_{SUFFIX}_0123456789", server_url=SERVER_URL
    ) as stranger:
        unauthorized = expect_error(
            lambda: stranger.apis.get_api(api_id=api_id, retries=NO_RETRY),
            errors.UnauthorizedErrorResponse,
            401,
        )
        eq(unauthorized.data.error.status, 401, "401 error.status")

    with Unkey(root_key=LIMITED_ROOT_KEY, server_url=SERVER_URL) as limited:
        eq(limited.apis.get_api(api_id=api_id).data.id, api_id, "limited key reads the API")
        forbidden = expect_error(
            lambda: limited.keys.create_key(api_id=api_id, retries=NO_RETRY),
            errors.ForbiddenErrorResponse,
            403,
        )
        eq(forbidden.data.error.status, 403, "403 error.status")
        expect_error(
            lambda: limited.apis.create_api(name=f"sdkpy-forbidden-{SUFFIX}", retries=NO_RETRY),
            errors.ForbiddenErrorResponse,
            403,
        )

    not_found = expect_error(
        lambda: unkey.keys.get_key(key_id="key_doesnotexist0000", retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )
    eq(not_found.data.error.status, 404, "404 error.status")
    expect_error(
        lambda: unkey.apis.get_api(api_id="api_doesnotexist0000", retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )

    # createKey does not declare 412, so the SDK raises the generic APIError.
    precondition = expect_error(
        lambda: unkey.keys.create_key(api_id=api_id, recoverable=True, retries=NO_RETRY),
        errors.APIError,
        412,
    )
    check(
        not isinstance(precondition, errors.PreconditionFailedErrorResponse),
        "412 on createKey is undeclared",
    )
    body = json.loads(precondition.body)
    eq(body["error"]["status"], 412, "412 error.status")
    check(isinstance(body["meta"]["requestId"], str), "412 meta.requestId")


# ------------------------------------------------------------------------------------------------

SECTIONS: list[tuple[str, Callable[[], None]]] = [
    ("apis.createApi + apis.getApi", apis_create_and_get),
    ("keys.createKey + getKey/whoami/listKeys", create_key_and_read),
    ("keys.verifyKey outcomes", verify_outcomes),
    ("keys.updateKey", update_key_fields),
    ("keys.updateCredits", update_credits),
    ("keys.rerollKey", reroll_key),
    ("keys.deleteKey", delete_key),
    ("apis.deleteApi", delete_api),
    ("keys.migrateKeys", migrate_keys),
    ("apis.listKeys pagination", pagination),
    ("error classes", error_classes),
]


def main() -> int:
    failed = 0
    for name, run in SECTIONS:
        started = time.monotonic()
        try:
            run()
            print(f"ok   {name} ({int((time.monotonic() - started) * 1000)} ms)", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the next runs
            failed += 1
            print(f"FAIL {name}", flush=True)
            for line in traceback.format_exc().rstrip().splitlines():
                print(f"     {line}")
            if isinstance(e, errors.UnkeyError):
                print(f"     response body: {e.body}")
    print(f"{len(SECTIONS) - failed} of {len(SECTIONS)} sections passed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    with unkey:
        sys.exit(main())
