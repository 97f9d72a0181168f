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
import re
import secrets
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

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
ROOT_PREFIX = "kw_root"
SECOND = 1_000
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000

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


def credits_dict(credits: Any) -> dict | None:
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


def verify(key: str, cost: int | None = None) -> Any:
    if cost is None:
        res = unkey.keys.verify_key(key=key)
    else:
        res = unkey.keys.verify_key(key=key, credits={"cost": cost})
    request_id(res.meta)
    return res.data


def verify_limits(key: str, ratelimits: list[dict], cost: int | None = None) -> Any:
    if cost is None:
        res = unkey.keys.verify_key(key=key, ratelimits=ratelimits)
    else:
        res = unkey.keys.verify_key(key=key, ratelimits=ratelimits, credits={"cost": cost})
    request_id(res.meta)
    return res.data


def in_one_window(duration: int, margin: int = 5_000) -> None:
    """Rate-limit windows are fixed windows aligned to the Unix epoch, weighted by the previous
    one (a sliding window). Exact counts only hold when every call of a check lands in the same
    window, so this waits for the next window when the current one ends within `margin` ms. With
    the hour-long windows used below it almost never waits."""
    left = duration - now_ms() % duration
    if left < margin:
        time.sleep((left + 100) / 1000)


def check_reset(reset: int, duration: int, before: int, after: int, via: str) -> None:
    """`reset` is the end of the current fixed window: a multiple of `duration` after the call."""
    eq(reset % duration, 0, f"{via}: reset {reset} modulo {duration}")
    check(
        before - 1000 < reset <= after + duration,
        f"{via}: reset {reset} not within ({before - 1000}, {after + duration}]",
    )


def limits_of(limits: Any, via: str) -> list[dict]:
    """A key's or identity's limits without their ids, sorted by name; checks the ids' format."""
    out = []
    for limit in sorted(limits or [], key=lambda x: x.name):
        check(
            limit.id.startswith("rl_") and limit.id[3:].replace("_", "").isalnum(),
            f"{via}: id of limit {limit.name}: {limit.id!r}",
        )
        out.append(
            {
                "name": limit.name,
                "limit": limit.limit,
                "duration": limit.duration,
                "autoApply": limit.auto_apply,
            }
        )
    return out


def limit_ids(limits: Any) -> dict[str, str]:
    """name → rl_ id of a key's or identity's limits."""
    return {limit.name: limit.id for limit in limits or []}


def identity_dict(identity: Any) -> dict | None:
    """An identity as a comparable value: ratelimits sorted by name, absent meta as `{}`."""
    if identity is None:
        return None
    return {
        "id": identity.id,
        "externalId": identity.external_id,
        "meta": identity.meta or {},
        "ratelimits": [
            {
                "id": r.id,
                "name": r.name,
                "limit": r.limit,
                "duration": r.duration,
                "autoApply": r.auto_apply,
            }
            for r in sorted(identity.ratelimits or [], key=lambda x: x.name)
        ],
    }


def evaluated(data: Any, name: str) -> Any:
    """The entry for limit `name` in a verification's `ratelimits`; there must be exactly one."""
    found = [r for r in data.ratelimits or [] if r.name == name]
    eq(len(found), 1, f"times limit {name} was evaluated in {data.ratelimits}")
    return found[0]


def evaluated_names(data: Any) -> list[str]:
    return sorted(r.name for r in data.ratelimits or [])


def evaluated_dict(r: Any) -> dict:
    """An evaluated limit without `reset` (checked separately with `check_reset`)."""
    return {
        "exceeded": r.exceeded,
        "id": r.id,
        "name": r.name,
        "limit": r.limit,
        "duration": r.duration,
        "remaining": r.remaining,
        "autoApply": r.auto_apply,
    }


def error_location(e: errors.BadRequestErrorResponse, field: str) -> None:
    locations = [x.location for x in e.data.error.errors]
    check(any(field in loc for loc in locations), f"no error names {field}: {locations}")


def post_raw(path: str, body: Any) -> Any:
    """A request without the SDK, to look at the wire or at server defaults the SDK never leaves
    to the server (it always sends `limit`, `cost` and `auto_apply`). Expects HTTP 200."""
    request = urllib.request.Request(
        SERVER_URL.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ROOT_KEY}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        eq(response.status, 200, f"{path} status")
        return json.loads(response.read())


def get_key(key_id: str) -> Any:
    return unkey.keys.get_key(key_id=key_id).data


def list_ids(api_id: str) -> list[str]:
    res = unkey.apis.list_keys(api_id=api_id)
    check(res is not None, "listKeys returned nothing")
    return [k.key_id for k in res.result.data]


def permission_dict(p: Any) -> dict:
    """A permission as a comparable value (an absent description as `None`)."""
    return {"id": p.id, "name": p.name, "slug": p.slug, "description": p.description}


def permission_dicts(items: Any) -> list[dict]:
    """Permissions as comparable values, sorted by slug."""
    return sorted((permission_dict(p) for p in items or []), key=lambda p: p["slug"])


def role_dict(r: Any) -> dict:
    """A role as a comparable value: permissions sorted by slug, absent ones as `[]`."""
    return {
        "id": r.id,
        "name": r.name,
        "description": r.description,
        "permissions": permission_dicts(r.permissions),
    }


def role_dicts(items: Any) -> list[dict]:
    """Roles as comparable values, sorted by name."""
    return sorted((role_dict(r) for r in items or []), key=lambda r: r["name"])


def get_permission(reference: str) -> dict:
    return permission_dict(unkey.permissions.get_permission(permission=reference).data)


def get_role(reference: str) -> dict:
    return role_dict(unkey.permissions.get_role(role=reference).data)


def holds(k: Any) -> dict:
    """The slugs and role names a key reports it holds, sorted."""
    return {"permissions": sorted(k.permissions or []), "roles": sorted(k.roles or [])}


def assert_holds(
    api_id: str, key_id: str, key: str, permissions: list[str], roles: list[str], via: str
) -> None:
    """What getKey, whoami, listKeys and verifyKey report a key holds."""
    want = {"permissions": sorted(permissions), "roles": sorted(roles)}
    eq(holds(get_key(key_id)), want, f"{via}: getKey")
    eq(holds(unkey.keys.whoami(key=key).data), want, f"{via}: whoami")
    page = unkey.apis.list_keys(api_id=api_id)
    assert page is not None
    listed = [k for k in page.result.data if k.key_id == key_id]
    eq(len(listed), 1, f"{via}: times the key is listed")
    eq(holds(listed[0]), want, f"{via}: listKeys")
    eq(holds(verify(key, 0)), want, f"{via}: verifyKey")


def verify_query(key: str, query: str) -> Any:
    """Verifies `key` against a permissions query."""
    res = unkey.keys.verify_key(key=key, permissions=query)
    request_id(res.meta)
    return res.data


def permissions_search(term: str) -> list[Any]:
    res = unkey.permissions.list_permissions(search=term)
    assert res is not None
    return res.result.data


def roles_search(term: str) -> list[Any]:
    res = unkey.permissions.list_roles(search=term)
    assert res is not None
    return res.result.data


def root_client(key: str) -> Unkey:
    """An SDK client that authenticates with root key `key`; use it in a `with` block."""
    return Unkey(root_key=key, server_url=SERVER_URL, timeout_ms=10_000)


def root_keys_listed(client: Unkey | None = None, limit: int = 100) -> list[Any]:
    """Every root key `client` (by default the tour's) may see, through the auto-pager."""
    page = (client or unkey).root_keys.list_keys(limit=limit)
    listed: list[Any] = []
    while page is not None:
        check(len(listed) < 10_000, "the auto-pager does not terminate")
        listed.extend(page.result.data)
        page = page.next()
    return listed


def root_key_entry(key_id: str, client: Unkey | None = None) -> Any:
    """Root key `key_id` as rootKeys.listKeys shows it; it must be listed exactly once."""
    found = [k for k in root_keys_listed(client) if k.key_id == key_id]
    eq(len(found), 1, f"times root key {key_id} is listed")
    return found[0]


def root_key_dict(entry: Any) -> dict:
    """A listed root key as a comparable value, without its display fragments and times."""
    return {
        "keyId": entry.key_id,
        "name": entry.name,
        "enabled": entry.enabled,
        "expires": entry.expires,
        "permissions": sorted(entry.permissions),
    }


def shows(entry: Any, secret: str) -> bool:
    """Whether a listed root key's `start` and `end` are those of `secret`."""
    return secret.startswith(entry.start) and secret.endswith(entry.end)


def listed_as(secret: str, entries: list[Any]) -> list[Any]:
    """The entries of a root key listing whose display fragments match `secret`."""
    return [k for k in entries if shows(k, secret)]


def tour_root_key_id() -> str:
    """The id of the tour's own root key, found by its display fragments."""
    found = listed_as(ROOT_KEY, root_keys_listed())
    eq(len(found), 1, "times the tour's root key is listed")
    return found[0].key_id


def reads_api(client: Unkey, api_id: str, via: str) -> None:
    """`client`'s root key authenticates and may read the API."""
    eq(client.apis.get_api(api_id=api_id).data.id, api_id, f"{via}: getApi")


def assert_unauthorized(client: Unkey, api_id: str) -> None:
    """`client`'s root key no longer authenticates."""
    e = expect_error(
        lambda: client.apis.get_api(api_id=api_id, retries=NO_RETRY),
        errors.UnauthorizedErrorResponse,
        401,
    )
    eq(e.data.error.status, 401, "401 error.status")


def unauthorized_within_a_second(client: Unkey, api_id: str, via: str) -> None:
    """Like `assert_unauthorized`, for a key that expires now: expiry is checked per request to the
    millisecond, so a request in the same millisecond may still pass."""
    deadline = time.monotonic() + 1
    while True:
        try:
            client.apis.get_api(api_id=api_id, retries=NO_RETRY)
        except errors.UnauthorizedErrorResponse as e:
            eq(e.status_code, 401, f"{via}: status")
            return
        check(time.monotonic() < deadline, f"{via}: the key still authenticates after a second")
        time.sleep(0.05)


def missing_permission(call: Callable[[], Any], permission: str) -> None:
    """`call` is refused with a 403 naming `permission`."""
    e = expect_error(call, errors.ForbiddenErrorResponse, 403)
    eq(e.data.error.status, 403, "403 error.status")
    check(
        permission in e.data.error.detail, f"403 detail {e.data.error.detail!r} lacks {permission}"
    )


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
    cursor: str | None = None
    for _ in range(10):
        p = unkey.apis.list_keys(api_id=api_id, limit=3, cursor=cursor)
        assert p is not None
        manual.extend(k.key_id for k in p.result.data)
        cursor = p.result.pagination.cursor
        if not cursor:
            break
    eq(manual, seen, "walking by hand with the cursor")


def identities_create_and_get() -> None:
    external_id = f"sdkpy-user-{SUFFIX}"
    meta = {"plan": "pro", "seats": 5, "nested": {"flags": ["beta"], "ok": True}}
    created = unkey.identities.create_identity(
        external_id=external_id,
        meta=meta,
        ratelimits=[
            {"name": "requests", "limit": 10, "duration": MINUTE, "auto_apply": True},
            {"name": "tokens", "limit": 5000, "duration": HOUR},
        ],
    )
    request_id(created.meta)
    identity_id = created.data.identity_id
    check(
        identity_id.startswith("id_") and identity_id[3:].replace("_", "").isalnum(),
        f"identityId format: {identity_id}",
    )

    # By id and by externalId; autoApply defaults to false.
    by_id = unkey.identities.get_identity(identity=identity_id)
    request_id(by_id.meta)
    eq(by_id.data.id, identity_id, "getIdentity id")
    eq(by_id.data.external_id, external_id, "getIdentity externalId")
    eq(by_id.data.meta, meta, "getIdentity meta")
    eq(
        limits_of(by_id.data.ratelimits, "getIdentity"),
        [
            {"name": "requests", "limit": 10, "duration": MINUTE, "autoApply": True},
            {"name": "tokens", "limit": 5000, "duration": HOUR, "autoApply": False},
        ],
        "getIdentity ratelimits",
    )
    ids = limit_ids(by_id.data.ratelimits)
    check(ids["requests"] != ids["tokens"], "each limit has its own id")
    by_external_id = unkey.identities.get_identity(identity=external_id)
    eq(identity_dict(by_external_id.data), identity_dict(by_id.data), "getIdentity by externalId")
    # The SDK always sends autoApply; without it the server also takes false.
    raw_external_id = f"sdkpy-raw-{SUFFIX}"
    post_raw(
        "/v2/identities.createIdentity",
        {
            "externalId": raw_external_id,
            "ratelimits": [{"name": "requests", "limit": 1, "duration": MINUTE}],
        },
    )
    eq(
        limits_of(unkey.identities.get_identity(identity=raw_external_id).data.ratelimits, "raw"),
        [{"name": "requests", "limit": 1, "duration": MINUTE, "autoApply": False}],
        "autoApply left to the server",
    )

    # Only an externalId: no meta, no limits.
    bare_external_id = f"sdkpy-bare-{SUFFIX}"
    bare = unkey.identities.create_identity(external_id=bare_external_id)
    check(bare.data.identity_id != identity_id, "a second identity has its own id")
    bare_data = unkey.identities.get_identity(identity=bare.data.identity_id).data
    eq(bare_data.external_id, bare_external_id, "bare externalId")
    eq(bare_data.meta or {}, {}, "bare: no meta")
    eq(bare_data.ratelimits or [], [], "bare: no ratelimits")

    # A duplicate externalId is a conflict and changes nothing.
    conflict = expect_error(
        lambda: unkey.identities.create_identity(
            external_id=external_id, meta={"other": True}, retries=NO_RETRY
        ),
        errors.ConflictErrorResponse,
        409,
    )
    eq(conflict.data.error.status, 409, "409 error.status")
    check(
        conflict.data.error.type.endswith("/identity_already_exists"),
        f"409 error.type {conflict.data.error.type}",
    )
    request_id(conflict.data.meta)
    eq(
        unkey.identities.get_identity(identity=external_id).data.meta,
        meta,
        "a refused duplicate left the identity alone",
    )

    # Unknown id or externalId → 404.
    expect_error(
        lambda: unkey.identities.get_identity(identity="id_doesnotexist0000", retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )
    missing = expect_error(
        lambda: unkey.identities.get_identity(identity=f"sdkpy-nobody-{SUFFIX}", retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )
    eq(missing.data.error.status, 404, "404 error.status")

    # 400: an externalId outside [a-zA-Z0-9_.-], a limit window under a second.
    bad_external_id = expect_error(
        lambda: unkey.identities.create_identity(external_id="has spaces!", retries=NO_RETRY),
        errors.BadRequestErrorResponse,
        400,
    )
    error_location(bad_external_id, "externalId")
    bad_limit = expect_error(
        lambda: unkey.identities.create_identity(
            external_id=f"sdkpy-badlimit-{SUFFIX}",
            ratelimits=[{"name": "requests", "limit": 10, "duration": 999}],
            retries=NO_RETRY,
        ),
        errors.BadRequestErrorResponse,
        400,
    )
    error_location(bad_limit, "ratelimits")
    expect_error(
        lambda: unkey.identities.get_identity(
            identity=f"sdkpy-badlimit-{SUFFIX}", retries=NO_RETRY
        ),
        errors.NotFoundErrorResponse,
        404,
    )


def identities_list() -> None:
    tag = f"sdkpy-list-{SUFFIX}"
    created: dict[str, str] = {}  # externalId → identity id
    for i in range(7):
        external_id = f"{tag}-{i}"
        extra: dict = {}
        if i == 0:
            extra["ratelimits"] = [
                {"name": "requests", "limit": 3, "duration": MINUTE, "auto_apply": True}
            ]
        res = unkey.identities.create_identity(external_id=external_id, meta={"index": i}, **extra)
        created[external_id] = res.data.identity_id

    # The auto-pager over a search, in pages of 3; listed identities carry meta and limits.
    seen: list[str] = []
    sizes: list[int] = []
    has_more: list[bool] = []
    page = unkey.identities.list_identities(limit=3, search=tag)
    pages = 0
    while page is not None:
        pages += 1
        check(pages <= 10, "the auto-pager does not terminate")
        request_id(page.result.meta)
        sizes.append(len(page.result.data))
        has_more.append(page.result.pagination.has_more)
        for identity in page.result.data:
            seen.append(identity.id)
            index = int(identity.external_id[len(tag) + 1 :])
            eq(created.get(identity.external_id), identity.id, f"listed {identity.external_id}")
            eq(identity.meta, {"index": index}, f"meta of {identity.external_id}")
            eq(
                limits_of(identity.ratelimits, "listIdentities"),
                (
                    [{"name": "requests", "limit": 3, "duration": MINUTE, "autoApply": True}]
                    if index == 0
                    else []
                ),
                f"ratelimits of {identity.external_id}",
            )
        page = page.next()
    eq(sizes, [3, 3, 1], "page sizes")
    eq(has_more, [True, True, False], "hasMore per page")
    eq(len(set(seen)), 7, "every identity listed exactly once")
    eq(sorted(seen), sorted(created.values()), "listed ids")

    # Walking by hand with the cursor gives the same sequence.
    manual: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        p = unkey.identities.list_identities(limit=3, search=tag, cursor=cursor)
        assert p is not None
        manual.extend(x.id for x in p.result.data)
        cursor = p.result.pagination.cursor
        if not cursor:
            break
    eq(manual, seen, "walking by hand with the cursor")

    # search is a case-insensitive substring of the externalId or the id.
    def search(term: str) -> list[Any]:
        res = unkey.identities.list_identities(search=term)
        assert res is not None
        return res.result.data

    eq(
        sorted(x.id for x in search(tag.upper())),
        sorted(created.values()),
        "search in upper case",
    )
    eq([x.external_id for x in search(f"{tag}-4")], [f"{tag}-4"], "search for one")
    fourth = created[f"{tag}-4"]
    eq([x.id for x in search(fourth.upper())], [fourth], "search by id")
    none = unkey.identities.list_identities(search=f"no-such-identity-{SUFFIX}")
    assert none is not None
    eq(none.result.data, [], "search without a match")
    eq(none.result.pagination.has_more, False, "hasMore on an empty page")
    eq(none.result.pagination.cursor, None, "no cursor on an empty page")

    # Without a search (default limit 100) every identity is listed once, ours among them.
    everything: list[str] = []
    page = unkey.identities.list_identities()
    pages = 0
    while page is not None:
        pages += 1
        check(pages <= 20, "the auto-pager does not terminate")
        check(len(page.result.data) <= 100, "a page holds at most 100 identities")
        everything.extend(x.id for x in page.result.data)
        page = page.next()
    eq(len(set(everything)), len(everything), "an identity listed twice")
    for identity_id in created.values():
        check(identity_id in everything, f"{identity_id} not listed")

    # limit is 1..100.
    for limit in (0, 101):
        bad = expect_error(
            lambda limit=limit: unkey.identities.list_identities(limit=limit, retries=NO_RETRY),
            errors.BadRequestErrorResponse,
            400,
        )
        error_location(bad, "limit")


def identities_update() -> None:
    external_id = f"sdkpy-update-{SUFFIX}"
    created = unkey.identities.create_identity(
        external_id=external_id,
        meta={"plan": "free"},
        ratelimits=[
            {"name": "requests", "limit": 10, "duration": MINUTE, "auto_apply": True},
            {"name": "tokens", "limit": 100, "duration": HOUR},
        ],
    )
    identity_id = created.data.identity_id
    original = unkey.identities.get_identity(identity=identity_id).data
    original_ids = limit_ids(original.ratelimits)

    # meta alone: replaced, not merged; the limits stay, ids and all.
    meta_only = unkey.identities.update_identity(
        identity=identity_id, meta={"plan": "pro", "seats": 2}
    )
    request_id(meta_only.meta)
    eq(meta_only.data.id, identity_id, "updateIdentity id")
    eq(meta_only.data.external_id, external_id, "updateIdentity externalId")
    eq(meta_only.data.meta, {"plan": "pro", "seats": 2}, "meta replaced, not merged")
    eq(
        identity_dict(meta_only.data)["ratelimits"],
        identity_dict(original)["ratelimits"],
        "ratelimits untouched by a meta update",
    )

    # ratelimits (addressed by externalId): replaced by name. A name that stays keeps its id,
    # a name left out is gone, a new name gets a new id. meta is untouched.
    limits = unkey.identities.update_identity(
        identity=external_id,
        ratelimits=[
            {"name": "requests", "limit": 20, "duration": HOUR, "auto_apply": False},
            {"name": "burst", "limit": 5, "duration": 10 * SECOND, "auto_apply": True},
        ],
    )
    eq(limits.data.id, identity_id, "updated by externalId")
    eq(limits.data.meta, {"plan": "pro", "seats": 2}, "meta untouched")
    eq(
        limits_of(limits.data.ratelimits, "updateIdentity"),
        [
            {"name": "burst", "limit": 5, "duration": 10 * SECOND, "autoApply": True},
            {"name": "requests", "limit": 20, "duration": HOUR, "autoApply": False},
        ],
        "ratelimits replaced",
    )
    new_ids = limit_ids(limits.data.ratelimits)
    eq(new_ids["requests"], original_ids["requests"], "requests keeps its id")
    check(new_ids["burst"] not in original_ids.values(), "burst gets a new id")
    stored = unkey.identities.get_identity(identity=identity_id).data
    eq(identity_dict(stored), identity_dict(limits.data), "getIdentity after update")

    # The updated limit is what a key of the identity is checked against.
    api_id = new_api("identity-update")
    key = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, external_id=external_id)
    in_one_window(HOUR)
    v = verify_limits(key.data.key, [{"name": "requests"}])
    eq(code(v), "VALID", "verify with the updated limit")
    eq(
        evaluated_dict(evaluated(v, "requests")),
        {
            "exceeded": False,
            "id": original_ids["requests"],
            "name": "requests",
            "limit": 20,
            "duration": HOUR,
            "remaining": 19,
            "autoApply": False,
        },
        "the updated limit",
    )

    # {} clears meta; [] clears the limits.
    no_meta = unkey.identities.update_identity(identity=identity_id, meta={})
    eq(no_meta.data.meta or {}, {}, "meta cleared with {}")
    eq(len(no_meta.data.ratelimits or []), 2, "ratelimits untouched by clearing meta")
    no_limits = unkey.identities.update_identity(identity=identity_id, ratelimits=[])
    eq(no_limits.data.ratelimits or [], [], "ratelimits cleared with []")
    cleared = unkey.identities.get_identity(identity=external_id).data
    eq(cleared.meta or {}, {}, "getIdentity: meta cleared")
    eq(cleared.ratelimits or [], [], "getIdentity: ratelimits cleared")

    expect_error(
        lambda: unkey.identities.update_identity(
            identity="id_doesnotexist0000", meta={}, retries=NO_RETRY
        ),
        errors.NotFoundErrorResponse,
        404,
    )
    bad = expect_error(
        lambda: unkey.identities.update_identity(
            identity=identity_id,
            ratelimits=[{"name": "requests", "limit": 0, "duration": MINUTE}],
            retries=NO_RETRY,
        ),
        errors.BadRequestErrorResponse,
        400,
    )
    error_location(bad, "ratelimits")


def identities_delete() -> None:
    api_id = new_api("identity-delete")
    external_id = f"sdkpy-delete-{SUFFIX}"
    created = unkey.identities.create_identity(
        external_id=external_id,
        meta={"doomed": True},
        ratelimits=[{"name": "shared", "limit": 1, "duration": HOUR, "auto_apply": True}],
    )
    identity_id = created.data.identity_id
    key = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, external_id=external_id)
    in_one_window(HOUR)
    linked = verify(key.data.key)
    eq(code(linked), "VALID", "before deleteIdentity")
    eq(linked.identity.id if linked.identity else None, identity_id, "verify: identity")
    eq(code(verify(key.data.key)), "RATE_LIMITED", "the identity's limit applies")

    # The response is only `meta` (the SDK models no `data` for it).
    res = unkey.identities.delete_identity(identity=external_id)
    request_id(res.meta)
    for reference in (identity_id, external_id):
        expect_error(
            lambda reference=reference: unkey.identities.get_identity(
                identity=reference, retries=NO_RETRY
            ),
            errors.NotFoundErrorResponse,
            404,
        )

    # The key keeps working, without the identity or its limits.
    orphan = verify(key.data.key)
    eq(code(orphan), "VALID", "a key of a deleted identity")
    eq(orphan.identity, None, "verify: identity after deleteIdentity")
    eq(orphan.ratelimits or [], [], "the identity's limits are gone")
    eq(get_key(key.data.key_id).identity, None, "getKey: identity after deleteIdentity")

    # The externalId is free again; the new identity is a different one and owns no keys.
    again = unkey.identities.create_identity(external_id=external_id)
    check(again.data.identity_id != identity_id, "a recreated identity gets a new id")
    eq(
        get_key(key.data.key_id).identity,
        None,
        "the old key is not linked to the recreated identity",
    )
    by_external_id = unkey.apis.list_keys(api_id=api_id, external_id=external_id)
    assert by_external_id is not None
    eq(by_external_id.result.data, [], "listKeys by the recreated identity's externalId")

    # A second delete is a 404. deleteIdentity declares its errors as application/problem+json,
    # which Keywarden (like Unkey) only sends when asked for, so the SDK raises the generic
    # APIError.
    gone = expect_error(
        lambda: unkey.identities.delete_identity(identity=identity_id, retries=NO_RETRY),
        errors.APIError,
        404,
    )
    eq(json.loads(gone.body)["error"]["status"], 404, "404 error.status")

    # On the wire the success body is `{"meta": …}` alone.
    body = post_raw("/v2/identities.deleteIdentity", {"identity": again.data.identity_id})
    eq(list(body.keys()), ["meta"], "deleteIdentity body")
    expect_error(
        lambda: unkey.identities.get_identity(identity=external_id, retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )


def key_identities_and_limits() -> None:
    api_id = new_api("key-identity")

    # createKey with an externalId nobody has yet creates the identity; key-level limits are
    # stored with the key and shown apart from the identity's.
    owner_external_id = f"sdkpy-owner-{SUFFIX}"
    a = unkey.keys.create_key(
        api_id=api_id,
        prefix=PREFIX,
        external_id=owner_external_id,
        ratelimits=[
            {"name": "requests", "limit": 5, "duration": MINUTE, "auto_apply": True},
            {"name": "heavy", "limit": 2, "duration": HOUR},
        ],
    )
    owner = unkey.identities.get_identity(identity=owner_external_id).data
    check(owner.id.startswith("id_"), f"identity created by createKey: {owner.id}")
    a_limits = [
        {"name": "heavy", "limit": 2, "duration": HOUR, "autoApply": False},
        {"name": "requests", "limit": 5, "duration": MINUTE, "autoApply": True},
    ]

    def check_a(k: Any, via: str) -> None:
        eq(
            identity_dict(k.identity),
            {"id": owner.id, "externalId": owner_external_id, "meta": {}, "ratelimits": []},
            f"{via}: identity",
        )
        eq(limits_of(k.ratelimits, via), a_limits, f"{via}: ratelimits")

    a_data = get_key(a.data.key_id)
    check_a(a_data, "getKey")
    check_a(unkey.keys.whoami(key=a.data.key).data, "whoami")
    a_ids = limit_ids(a_data.ratelimits)

    # Keys of an existing identity show its meta and limits.
    team_external_id = f"sdkpy-team-{SUFFIX}"
    team = unkey.identities.create_identity(
        external_id=team_external_id,
        meta={"tier": "team"},
        ratelimits=[{"name": "team_requests", "limit": 100, "duration": HOUR, "auto_apply": True}],
    )
    team_data = unkey.identities.get_identity(identity=team.data.identity_id).data
    b = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, external_id=team_external_id)
    c = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, external_id=team_external_id)
    plain = unkey.keys.create_key(api_id=api_id, prefix=PREFIX)
    b_data = get_key(b.data.key_id)
    eq(identity_dict(b_data.identity), identity_dict(team_data), "getKey: identity")
    eq(b_data.ratelimits or [], [], "identity limits are not key limits")
    eq(get_key(plain.data.key_id).identity, None, "a key without an identity")

    # apis.listKeys shows the same, and filters by externalId.
    listed = unkey.apis.list_keys(api_id=api_id)
    assert listed is not None
    by_id = {k.key_id: k for k in listed.result.data}
    eq(len(by_id), 4, "listKeys: all keys")
    check_a(by_id[a.data.key_id], "listKeys")
    eq(identity_dict(by_id[c.data.key_id].identity), identity_dict(team_data), "listKeys: identity")

    def ids_of(external_id: str) -> list[str]:
        res = unkey.apis.list_keys(api_id=api_id, external_id=external_id)
        assert res is not None
        return sorted(k.key_id for k in res.result.data)

    eq(ids_of(team_external_id), sorted([b.data.key_id, c.data.key_id]), "listKeys by team")
    eq(ids_of(owner_external_id), [a.data.key_id], "listKeys by owner")
    filtered_pages: list[int] = []
    page = unkey.apis.list_keys(api_id=api_id, external_id=team_external_id, limit=1)
    while page is not None:
        filtered_pages.append(len(page.result.data))
        check(len(filtered_pages) <= 5, "the auto-pager does not terminate")
        page = page.next()
    eq(filtered_pages, [1, 1], "filtered pages of 1")

    # updateKey ratelimits: replaced by name, a kept name keeps its id; other fields untouched.
    unkey.keys.update_key(
        key_id=a.data.key_id,
        ratelimits=[
            {"name": "requests", "limit": 7, "duration": HOUR, "auto_apply": True},
            {"name": "burst", "limit": 3, "duration": MINUTE},
        ],
    )
    k = get_key(a.data.key_id)
    eq(
        limits_of(k.ratelimits, "after updateKey"),
        [
            {"name": "burst", "limit": 3, "duration": MINUTE, "autoApply": False},
            {"name": "requests", "limit": 7, "duration": HOUR, "autoApply": True},
        ],
        "ratelimits replaced",
    )
    updated_ids = limit_ids(k.ratelimits)
    eq(updated_ids["requests"], a_ids["requests"], "requests keeps its id")
    check(updated_ids["burst"] not in a_ids.values(), "burst gets a new id")
    eq(k.identity.id if k.identity else None, owner.id, "updating limits leaves the identity")
    unkey.keys.update_key(key_id=a.data.key_id, ratelimits=[])
    eq(get_key(a.data.key_id).ratelimits or [], [], "ratelimits cleared with []")

    # updateKey externalId: link to an existing identity, to a new one (created), unlink (None).
    unkey.keys.update_key(key_id=plain.data.key_id, external_id=team_external_id)
    k = get_key(plain.data.key_id)
    eq(k.identity.id if k.identity else None, team.data.identity_id, "linked to the team")
    eq(len(ids_of(team_external_id)), 3, "listKeys by team after linking")
    fresh_external_id = f"sdkpy-fresh-{SUFFIX}"
    unkey.keys.update_key(key_id=plain.data.key_id, external_id=fresh_external_id)
    k = get_key(plain.data.key_id)
    fresh = unkey.identities.get_identity(identity=fresh_external_id).data
    eq(identity_dict(k.identity), identity_dict(fresh), "linked to a newly created identity")
    eq(fresh.external_id, fresh_external_id, "the new identity's externalId")
    unkey.keys.update_key(key_id=plain.data.key_id, external_id=None)
    eq(get_key(plain.data.key_id).identity, None, "externalId: null unlinks")
    eq(
        unkey.identities.get_identity(identity=fresh_external_id).data.id,
        fresh.id,
        "unlinking keeps the identity",
    )
    eq(verify(plain.data.key).identity, None, "verify after unlinking")

    # Omitting externalId leaves the link as it is.
    unkey.keys.update_key(key_id=b.data.key_id, name="renamed")
    k = get_key(b.data.key_id)
    eq(k.identity.id if k.identity else None, team.data.identity_id, "link kept")

    bad = expect_error(
        lambda: unkey.keys.create_key(api_id=api_id, external_id="not valid!", retries=NO_RETRY),
        errors.BadRequestErrorResponse,
        400,
    )
    error_location(bad, "externalId")
    bad_limit = expect_error(
        lambda: unkey.keys.update_key(
            key_id=b.data.key_id,
            ratelimits=[{"name": "requests", "limit": 1, "duration": 999}],
            retries=NO_RETRY,
        ),
        errors.BadRequestErrorResponse,
        400,
    )
    error_location(bad_limit, "ratelimits")


def verify_key_limits() -> None:
    api_id = new_api("verify-limits")
    in_one_window(HOUR)

    # An auto-applied key limit costs 1 on every verification.
    auto = unkey.keys.create_key(
        api_id=api_id,
        prefix=PREFIX,
        ratelimits=[{"name": "requests", "limit": 3, "duration": HOUR, "auto_apply": True}],
    )
    auto_id = limit_ids(get_key(auto.data.key_id).ratelimits)["requests"]
    for i in range(3):
        before = now_ms()
        v = verify(auto.data.key)
        after = now_ms()
        eq(code(v), "VALID", f"call {i + 1}")
        eq(len(v.ratelimits or []), 1, f"call {i + 1}: ratelimits")
        eq(
            evaluated_dict(v.ratelimits[0]),
            {
                "exceeded": False,
                "id": auto_id,
                "name": "requests",
                "limit": 3,
                "duration": HOUR,
                "remaining": 2 - i,
                "autoApply": True,
            },
            f"call {i + 1}: evaluated limit",
        )
        check_reset(v.ratelimits[0].reset, HOUR, before, after, f"call {i + 1}")
    limited = verify(auto.data.key)
    eq(limited.valid, False, "rate limited: valid")
    eq(code(limited), "RATE_LIMITED", "fourth call")
    eq(limited.key_id, auto.data.key_id, "RATE_LIMITED carries the key's details")
    eq(evaluated(limited, "requests").exceeded, True, "exceeded")
    eq(evaluated(limited, "requests").remaining, 0, "remaining when exceeded")

    # RATE_LIMITED spends no credits.
    metered = unkey.keys.create_key(
        api_id=api_id,
        prefix=PREFIX,
        credits={"remaining": 10},
        ratelimits=[{"name": "requests", "limit": 1, "duration": HOUR, "auto_apply": True}],
    )
    first = verify(metered.data.key)
    eq(code(first), "VALID", "metered: first")
    eq(first.credits, 9, "metered: credits after the first call")
    blocked = verify(metered.data.key, 5)
    eq(code(blocked), "RATE_LIMITED", "metered: second")
    eq(blocked.credits, 9, "a rate-limited verification must not spend credits")
    eq(credits_dict(get_key(metered.data.key_id).credits), {"remaining": 9}, "getKey credits")

    # USAGE_EXCEEDED gives back the rate-limit count it took (a Keywarden extension).
    broke = unkey.keys.create_key(
        api_id=api_id,
        prefix=PREFIX,
        credits={"remaining": 1},
        ratelimits=[{"name": "requests", "limit": 2, "duration": HOUR, "auto_apply": True}],
    )
    spent = verify(broke.data.key)
    eq(code(spent), "VALID", "broke: first")
    eq(evaluated(spent, "requests").remaining, 1, "broke: remaining after the first")
    exhausted = verify(broke.data.key)
    eq(code(exhausted), "USAGE_EXCEEDED", "broke: second")
    eq(exhausted.credits, 0, "broke: credits")
    free = verify(broke.data.key, 0)
    eq(code(free), "VALID", "the USAGE_EXCEEDED call's rate-limit count was refunded")
    eq(evaluated(free, "requests").remaining, 0, "broke: remaining after the refund")
    eq(code(verify(broke.data.key, 0)), "RATE_LIMITED", "broke: limit reached")

    # A stored limit without autoApply is checked only when named, with the cost given there;
    # a denied call consumes nothing.
    named = unkey.keys.create_key(
        api_id=api_id,
        prefix=PREFIX,
        ratelimits=[{"name": "heavy", "limit": 3, "duration": HOUR}],
    )
    heavy_id = limit_ids(get_key(named.data.key_id).ratelimits)["heavy"]
    unnamed = verify(named.data.key)
    eq(code(unnamed), "VALID", "unnamed")
    eq(unnamed.ratelimits or [], [], "a limit that is not auto-applied is not checked")
    heavy = verify_limits(named.data.key, [{"name": "heavy"}])
    eq(code(heavy), "VALID", "heavy")
    eq(
        evaluated_dict(evaluated(heavy, "heavy")),
        {
            "exceeded": False,
            "id": heavy_id,
            "name": "heavy",
            "limit": 3,
            "duration": HOUR,
            "remaining": 2,
            "autoApply": False,
        },
        "heavy evaluated",
    )
    too_heavy = verify_limits(named.data.key, [{"name": "heavy", "cost": 3}])
    eq(code(too_heavy), "RATE_LIMITED", "heavy cost 3 with 2 left")
    eq(evaluated(too_heavy, "heavy").exceeded, True, "heavy exceeded")
    rest = verify_limits(named.data.key, [{"name": "heavy", "cost": 2}])
    eq(code(rest), "VALID", "the denied call consumed nothing")
    eq(evaluated(rest, "heavy").remaining, 0, "heavy used up")

    # An inline limit (limit + duration) is not stored and has no id.
    bare = unkey.keys.create_key(api_id=api_id, prefix=PREFIX)
    adhoc = [{"name": "adhoc", "limit": 2, "duration": HOUR}]
    before = now_ms()
    inline1 = verify_limits(bare.data.key, adhoc)
    after = now_ms()
    eq(code(inline1), "VALID", "inline")
    eq(
        evaluated_dict(evaluated(inline1, "adhoc")),
        {
            "exceeded": False,
            "id": "",
            "name": "adhoc",
            "limit": 2,
            "duration": HOUR,
            "remaining": 1,
            "autoApply": False,
        },
        "inline evaluated",
    )
    check_reset(evaluated(inline1, "adhoc").reset, HOUR, before, after, "inline")
    eq(evaluated(verify_limits(bare.data.key, adhoc), "adhoc").remaining, 0, "inline second")
    inline3 = verify_limits(bare.data.key, adhoc)
    eq(code(inline3), "RATE_LIMITED", "inline third")
    eq(evaluated(inline3, "adhoc").exceeded, True, "inline exceeded")
    eq(get_key(bare.data.key_id).ratelimits or [], [], "inline limits are not stored")
    eq(verify(bare.data.key).ratelimits or [], [], "nor applied later")

    # A name neither the key nor its identity has → 412 (undeclared on verifyKey, so the SDK
    # raises the generic APIError); nothing is spent.
    paid = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, credits={"remaining": 5})
    unknown = expect_error(
        lambda: unkey.keys.verify_key(
            key=paid.data.key, ratelimits=[{"name": "nonexistent"}], retries=NO_RETRY
        ),
        errors.APIError,
        412,
    )
    check(
        not isinstance(unknown, errors.PreconditionFailedErrorResponse),
        "412 on verifyKey is undeclared",
    )
    eq(json.loads(unknown.body)["error"]["status"], 412, "412 error.status")
    eq(verify(paid.data.key, 0).credits, 5, "a 412 verification spent credits")

    # Naming an auto-applied limit sets its cost. Several limits are checked together: when one
    # fails, none is counted.
    multi = unkey.keys.create_key(
        api_id=api_id,
        prefix=PREFIX,
        ratelimits=[
            {"name": "requests", "limit": 10, "duration": HOUR, "auto_apply": True},
            {"name": "heavy", "limit": 2, "duration": HOUR},
        ],
    )
    costly = verify_limits(multi.data.key, [{"name": "requests", "cost": 4}])
    eq(code(costly), "VALID", "requests cost 4")
    eq(evaluated_names(costly), ["requests"], "naming an auto-applied limit")
    eq(evaluated(costly, "requests").remaining, 6, "requests after cost 4")
    denied = verify_limits(multi.data.key, [{"name": "heavy", "cost": 3}])
    eq(code(denied), "RATE_LIMITED", "heavy cost 3")
    eq(evaluated_names(denied), ["heavy", "requests"], "both limits evaluated")
    eq(evaluated(denied, "heavy").exceeded, True, "heavy exceeded")
    eq(evaluated(denied, "requests").exceeded, False, "requests not exceeded")
    both = verify_limits(multi.data.key, [{"name": "heavy", "cost": 2}])
    eq(code(both), "VALID", "heavy cost 2")
    eq(evaluated(both, "heavy").remaining, 0, "heavy used up")
    eq(evaluated(both, "requests").remaining, 5, "the denied call counted on requests")
    with_inline = verify_limits(multi.data.key, [{"name": "adhoc", "limit": 1, "duration": HOUR}])
    eq(evaluated_names(with_inline), ["adhoc", "requests"], "inline next to auto-applied")
    eq(evaluated(with_inline, "requests").remaining, 4, "requests next to an inline limit")


def verify_identity_limits() -> None:
    api_id = new_api("verify-identity")
    external_id = f"sdkpy-shared-{SUFFIX}"
    unkey.identities.create_identity(
        external_id=external_id,
        meta={"org": "acme"},
        ratelimits=[
            {"name": "shared", "limit": 4, "duration": HOUR, "auto_apply": True},
            {"name": "requests", "limit": 100, "duration": HOUR, "auto_apply": True},
            {"name": "exports", "limit": 1, "duration": HOUR},
        ],
    )
    identity = unkey.identities.get_identity(identity=external_id).data
    identity_ids = limit_ids(identity.ratelimits)
    k1 = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, external_id=external_id)
    # k2 has its own "requests", which wins over the identity's.
    k2 = unkey.keys.create_key(
        api_id=api_id,
        prefix=PREFIX,
        external_id=external_id,
        ratelimits=[{"name": "requests", "limit": 2, "duration": HOUR, "auto_apply": True}],
    )
    k2_data = get_key(k2.data.key_id)
    k2_requests_id = limit_ids(k2_data.ratelimits)["requests"]
    eq(
        identity_dict(k2_data.identity),
        identity_dict(identity),
        "identity.ratelimits lists only the identity's limits",
    )
    in_one_window(HOUR)

    # Every auto-applied limit is checked; the response shows the identity.
    v1 = verify(k1.data.key)
    eq(code(v1), "VALID", "k1 first")
    eq(identity_dict(v1.identity), identity_dict(identity), "verify: identity")
    eq(evaluated_names(v1), ["requests", "shared"], "auto-applied identity limits")
    eq(
        evaluated_dict(evaluated(v1, "shared")),
        {
            "exceeded": False,
            "id": identity_ids["shared"],
            "name": "shared",
            "limit": 4,
            "duration": HOUR,
            "remaining": 3,
            "autoApply": True,
        },
        "shared evaluated",
    )
    eq(evaluated(v1, "requests").id, identity_ids["requests"], "the identity's requests")
    eq(evaluated(v1, "requests").remaining, 99, "the identity's requests remaining")

    # The identity's budget is shared by its keys; the key's own limit wins on the same name.
    v2 = verify(k2.data.key)
    eq(code(v2), "VALID", "k2 first")
    eq(evaluated(v2, "shared").remaining, 2, "shared across the identity's keys")
    eq(
        evaluated_dict(evaluated(v2, "requests")),
        {
            "exceeded": False,
            "id": k2_requests_id,
            "name": "requests",
            "limit": 2,
            "duration": HOUR,
            "remaining": 1,
            "autoApply": True,
        },
        "the key's requests wins",
    )

    # A named identity limit that is not auto-applied, also shared.
    e1 = verify_limits(k1.data.key, [{"name": "exports"}])
    eq(code(e1), "VALID", "exports from k1")
    eq(evaluated_names(e1), ["exports", "requests", "shared"], "named next to auto-applied")
    eq(
        evaluated_dict(evaluated(e1, "exports")),
        {
            "exceeded": False,
            "id": identity_ids["exports"],
            "name": "exports",
            "limit": 1,
            "duration": HOUR,
            "remaining": 0,
            "autoApply": False,
        },
        "exports evaluated",
    )
    eq(evaluated(e1, "shared").remaining, 1, "shared after exports")
    e2 = verify_limits(k2.data.key, [{"name": "exports"}])
    eq(code(e2), "RATE_LIMITED", "exports is shared with k1")
    eq(evaluated(e2, "exports").exceeded, True, "exports exceeded")

    # The denied call consumed nothing: shared still has 1 left, k2's requests too.
    v3 = verify(k2.data.key)
    eq(code(v3), "VALID", "k2 after the denied call")
    eq(evaluated(v3, "shared").remaining, 0, "shared used up")
    eq(evaluated(v3, "requests").remaining, 0, "k2's requests used up")
    v4 = verify(k1.data.key)
    eq(code(v4), "RATE_LIMITED", "k1 after shared is used up")
    eq(v4.valid, False, "rate limited: valid")
    eq(evaluated(v4, "shared").exceeded, True, "shared exceeded")
    eq(v4.identity.id if v4.identity else None, identity.id, "RATE_LIMITED shows the identity")


def ratelimit_limit() -> None:
    namespace = f"sdkpy-ns-{SUFFIX}"
    in_one_window(HOUR)

    # A new namespace is created on first use; limit/remaining/reset per call; an exceeded
    # limit is still HTTP 200, with success false.
    for i in range(3):
        before = now_ms()
        res = unkey.ratelimit.limit(
            namespace=namespace, identifier="user_a", limit=3, duration=HOUR
        )
        after = now_ms()
        request_id(res.meta)
        d = res.data
        eq(
            (d.limit, d.remaining, d.success, d.override_id),
            (3, 2 - i, True, None),
            f"call {i + 1}: (limit, remaining, success, overrideId)",
        )
        check_reset(d.reset, HOUR, before, after, f"call {i + 1}")
    denied = unkey.ratelimit.limit(
        namespace=namespace, identifier="user_a", limit=3, duration=HOUR
    ).data
    eq(
        (denied.limit, denied.remaining, denied.success, denied.override_id),
        (3, 0, False, None),
        "fourth call",
    )

    # Counters are per identifier and per namespace.
    other = unkey.ratelimit.limit(
        namespace=namespace, identifier="user_b", limit=3, duration=HOUR
    ).data
    eq((other.success, other.remaining), (True, 2), "another identifier")
    elsewhere = unkey.ratelimit.limit(
        namespace=f"{namespace}-2", identifier="user_a", limit=3, duration=HOUR
    ).data
    eq(elsewhere.remaining, 2, "the same identifier in another namespace")

    # The SDK always sends cost; without it the server also charges 1.
    default_cost = post_raw(
        "/v2/ratelimit.limit",
        {"namespace": namespace, "identifier": "user_default_cost", "limit": 5, "duration": HOUR},
    )
    eq(
        (default_cost["data"]["success"], default_cost["data"]["remaining"]),
        (True, 4),
        "cost left to the server",
    )

    # cost: a call that does not fit is denied, consumes nothing and reports what is left;
    # cost 0 only looks.
    def call(cost: int) -> Any:
        return unkey.ratelimit.limit(
            namespace=namespace, identifier="user_cost", limit=10, duration=HOUR, cost=cost
        ).data

    c4 = call(4)
    eq((c4.success, c4.remaining), (True, 6), "cost 4")
    c7 = call(7)
    eq((c7.success, c7.remaining), (False, 6), "cost 7 with 6 left")
    c0 = call(0)
    eq((c0.success, c0.remaining), (True, 6), "cost 0 after a denied call")
    c6 = call(6)
    eq((c6.success, c6.remaining), (True, 0), "cost 6 uses up the rest")
    full = call(0)
    eq((full.success, full.remaining), (True, 0), "cost 0 at the limit")
    eq(call(1).success, False, "cost 1 at the limit")

    # reset is the end of the current window for short and for the longest windows.
    for duration in (SECOND, 2_592_000_000):
        before = now_ms()
        res = unkey.ratelimit.limit(
            namespace=namespace, identifier=f"user_window_{duration}", limit=5, duration=duration
        )
        after = now_ms()
        eq(res.data.success, True, f"duration {duration}")
        check_reset(res.data.reset, duration, before, after, f"duration {duration}")

    # 400 with errors[] naming the field.
    invalid: list[tuple[str, dict]] = [
        ("duration", {"identifier": "x", "limit": 1, "duration": 999}),
        ("duration", {"identifier": "x", "limit": 1, "duration": 2_592_000_001}),
        ("limit", {"identifier": "x", "limit": 0, "duration": MINUTE}),
        ("cost", {"identifier": "x", "limit": 1, "duration": MINUTE, "cost": -1}),
        ("identifier", {"identifier": "", "limit": 1, "duration": MINUTE}),
    ]
    for field, request in invalid:
        bad = expect_error(
            lambda request=request: unkey.ratelimit.limit(
                namespace=namespace, retries=NO_RETRY, **request
            ),
            errors.BadRequestErrorResponse,
            400,
        )
        error_location(bad, field)


def ratelimit_multi_limit() -> None:
    ns1 = f"sdkpy-multi-{SUFFIX}"
    ns2 = f"sdkpy-multi2-{SUFFIX}"
    # Day windows end on hour boundaries too, so this covers both durations used here.
    in_one_window(HOUR)
    batch = [
        {"namespace": ns1, "identifier": "alice", "limit": 3, "duration": HOUR},
        {"namespace": ns1, "identifier": "bob", "limit": 5, "duration": HOUR, "cost": 2},
        {"namespace": ns2, "identifier": "alice", "limit": 1, "duration": DAY},
    ]

    def find(limits: Any, namespace: str, identifier: str) -> Any:
        found = [x for x in limits if x.namespace == namespace and x.identifier == identifier]
        eq(len(found), 1, f"{namespace}/{identifier} in {limits}")
        return found[0]

    before = now_ms()
    ok = unkey.ratelimit.multi_limit(request=batch)
    after = now_ms()
    request_id(ok.meta)
    eq(ok.data.passed, True, "passed")
    eq(len(ok.data.limits), 3, "one result per check")
    expected = [
        (ns1, "alice", 3, 2, HOUR),
        (ns1, "bob", 5, 3, HOUR),
        (ns2, "alice", 1, 0, DAY),
    ]
    for namespace, identifier, limit, remaining, duration in expected:
        got = find(ok.data.limits, namespace, identifier)
        eq(
            (got.limit, got.remaining, got.passed, got.override_id),
            (limit, remaining, True, None),
            f"{namespace}/{identifier}: (limit, remaining, passed, overrideId)",
        )
        check_reset(got.reset, duration, before, after, f"{namespace}/{identifier}")

    # All or nothing: ns2/alice is used up, so ns1/alice and ns1/bob are not counted either.
    failed = unkey.ratelimit.multi_limit(request=batch)
    eq(failed.data.passed, False, "a batch with a failing check")
    eq(len(failed.data.limits), 3, "one result per check")
    culprit = find(failed.data.limits, ns2, "alice")
    eq((culprit.passed, culprit.remaining), (False, 0), "the failing check")

    def peek(namespace: str, identifier: str, limit: int) -> Any:
        return unkey.ratelimit.limit(
            namespace=namespace, identifier=identifier, limit=limit, duration=HOUR, cost=0
        ).data

    eq(peek(ns1, "alice", 3).remaining, 2, "alice counted by a failed batch")
    eq(peek(ns1, "bob", 5).remaining, 3, "bob counted by a failed batch")

    # A batch of one behaves like ratelimit.limit.
    single = unkey.ratelimit.multi_limit(
        request=[{"namespace": ns1, "identifier": "carol", "limit": 2, "duration": HOUR}]
    )
    eq((single.data.passed, single.data.limits[0].remaining), (True, 1), "a batch of one")

    # 1..100 checks; each is validated like ratelimit.limit.
    expect_error(
        lambda: unkey.ratelimit.multi_limit(request=[], retries=NO_RETRY),
        errors.BadRequestErrorResponse,
        400,
    )
    too_many = [
        {"namespace": ns1, "identifier": f"many_{i}", "limit": 1, "duration": HOUR}
        for i in range(101)
    ]
    expect_error(
        lambda: unkey.ratelimit.multi_limit(request=too_many, retries=NO_RETRY),
        errors.BadRequestErrorResponse,
        400,
    )
    bad = expect_error(
        lambda: unkey.ratelimit.multi_limit(
            request=[
                {"namespace": ns1, "identifier": "dave", "limit": 1, "duration": HOUR},
                {"namespace": ns1, "identifier": "erin", "limit": 1, "duration": 999},
            ],
            retries=NO_RETRY,
        ),
        errors.BadRequestErrorResponse,
        400,
    )
    error_location(bad, "duration")
    eq(peek(ns1, "dave", 1).remaining, 1, "a rejected batch counted")


def ratelimit_overrides() -> None:
    namespace = f"sdkpy-overrides-{SUFFIX}"
    # The namespace comes into being with its first limit call.
    unkey.ratelimit.limit(namespace=namespace, identifier="warmup", limit=1, duration=HOUR)
    in_one_window(HOUR)

    def limit(identifier: str, limit: int, duration: int) -> Any:
        return unkey.ratelimit.limit(
            namespace=namespace, identifier=identifier, limit=limit, duration=duration
        ).data

    wildcard = unkey.ratelimit.set_override(
        namespace=namespace, identifier="premium_*", limit=100, duration=MINUTE
    )
    request_id(wildcard.meta)
    wildcard_id = wildcard.data.override_id
    check(
        wildcard_id.startswith("rlor_") and wildcard_id[5:].replace("_", "").isalnum(),
        f"overrideId format: {wildcard_id}",
    )
    exact_id = unkey.ratelimit.set_override(
        namespace=namespace, identifier="premium_gold", limit=1, duration=HOUR
    ).data.override_id
    check(exact_id != wildcard_id, "each override has its own id")

    # A matching identifier gets the override's limit and window, and its id.
    before = now_ms()
    silver = limit("premium_silver", 2, DAY)
    after = now_ms()
    eq(
        (silver.limit, silver.remaining, silver.success, silver.override_id),
        (100, 99, True, wildcard_id),
        "wildcard override",
    )
    check_reset(silver.reset, MINUTE, before, after, "the override's window, not the request's day")

    # An exact override beats a wildcard one.
    gold1 = limit("premium_gold", 2, DAY)
    eq(
        (gold1.limit, gold1.remaining, gold1.success, gold1.override_id),
        (1, 0, True, exact_id),
        "exact override",
    )
    gold2 = limit("premium_gold", 2, DAY)
    eq((gold2.success, gold2.override_id), (False, exact_id), "exact override used up")

    # No override matches: the request's own limit, no overrideId.
    basic = limit("basic_user", 2, HOUR)
    eq(
        (basic.limit, basic.remaining, basic.success, basic.override_id),
        (2, 1, True, None),
        "no override",
    )

    # getOverride; setOverride again is an upsert that keeps the id.
    got = unkey.ratelimit.get_override(namespace=namespace, identifier="premium_*")
    request_id(got.meta)
    eq(
        (got.data.override_id, got.data.duration, got.data.identifier, got.data.limit),
        (wildcard_id, MINUTE, "premium_*", 100),
        "getOverride",
    )
    upsert = unkey.ratelimit.set_override(
        namespace=namespace, identifier="premium_*", limit=50, duration=MINUTE
    )
    eq(upsert.data.override_id, wildcard_id, "an upsert keeps the overrideId")
    eq(
        unkey.ratelimit.get_override(namespace=namespace, identifier="premium_*").data.limit,
        50,
        "getOverride after the upsert",
    )
    bronze = limit("premium_bronze", 2, DAY)
    eq(
        (bronze.limit, bronze.remaining, bronze.override_id),
        (50, 49, wildcard_id),
        "the upserted override applies",
    )

    # limit 0 blocks.
    block_id = unkey.ratelimit.set_override(
        namespace=namespace, identifier="blocked_user", limit=0, duration=MINUTE
    ).data.override_id
    blocked = limit("blocked_user", 1000, HOUR)
    eq(
        (blocked.limit, blocked.remaining, blocked.success, blocked.override_id),
        (0, 0, False, block_id),
        "limit 0 blocks",
    )

    # listOverrides: pages of 10 by default, through the auto-pager.
    everything: dict[str, tuple[int, int, str]] = {
        "premium_*": (50, MINUTE, wildcard_id),
        "premium_gold": (1, HOUR, exact_id),
        "blocked_user": (0, MINUTE, block_id),
    }
    for i in range(9):
        res = unkey.ratelimit.set_override(
            namespace=namespace, identifier=f"bulk_{i}", limit=i + 1, duration=HOUR + i * SECOND
        )
        everything[f"bulk_{i}"] = (i + 1, HOUR + i * SECOND, res.data.override_id)

    def walk(limit: int | None = None) -> tuple[list[int], list[bool]]:
        sizes: list[int] = []
        has_more: list[bool] = []
        seen: list[str] = []
        if limit is None:
            page = unkey.ratelimit.list_overrides(namespace=namespace)
        else:
            page = unkey.ratelimit.list_overrides(namespace=namespace, limit=limit)
        while page is not None:
            check(len(sizes) < 10, "the auto-pager does not terminate")
            request_id(page.result.meta)
            sizes.append(len(page.result.data))
            has_more.append(page.result.pagination.has_more)
            for o in page.result.data:
                seen.append(o.identifier)
                eq(
                    (o.limit, o.duration, o.override_id),
                    everything.get(o.identifier),
                    f"listed override {o.identifier}",
                )
            page = page.next()
        eq(len(set(seen)), len(seen), "an override listed twice")
        eq(sorted(seen), sorted(everything), "listed overrides")
        return sizes, has_more

    eq(walk(), ([10, 2], [True, False]), "default pages")
    # The SDK always sends limit (10); without it the server also pages by 10.
    unlimited = post_raw("/v2/ratelimit.listOverrides", {"namespace": namespace})
    eq(len(unlimited["data"]), 10, "listOverrides without limit")
    eq(unlimited["pagination"]["hasMore"], True, "listOverrides without limit: hasMore")
    check(isinstance(unlimited["pagination"].get("cursor"), str), "listOverrides: cursor")
    eq(walk(5), ([5, 5, 2], [True, True, False]), "pages of 5")

    # deleteOverride: gone from get and list; the wildcard applies to the identifier again.
    deleted = unkey.ratelimit.delete_override(namespace=namespace, identifier="premium_gold")
    request_id(deleted.meta)
    eq(deleted.data.model_dump(), {}, "deleteOverride data")
    del everything["premium_gold"]
    expect_error(
        lambda: unkey.ratelimit.get_override(
            namespace=namespace, identifier="premium_gold", retries=NO_RETRY
        ),
        errors.NotFoundErrorResponse,
        404,
    )
    eq(walk(), ([10, 1], [True, False]), "pages after a delete")
    gold3 = limit("premium_gold", 2, DAY)
    eq(
        (gold3.limit, gold3.override_id),
        (50, wildcard_id),
        "the wildcard override applies after the exact one is deleted",
    )
    expect_error(
        lambda: unkey.ratelimit.delete_override(
            namespace=namespace, identifier="premium_gold", retries=NO_RETRY
        ),
        errors.NotFoundErrorResponse,
        404,
    )

    # Unknown namespace → 404 on get, list and delete.
    nowhere = f"sdkpy-nowhere-{SUFFIX}"
    expect_error(
        lambda: unkey.ratelimit.get_override(namespace=nowhere, identifier="x", retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )
    expect_error(
        lambda: unkey.ratelimit.list_overrides(namespace=nowhere, retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )
    expect_error(
        lambda: unkey.ratelimit.delete_override(
            namespace=nowhere, identifier="x", retries=NO_RETRY
        ),
        errors.NotFoundErrorResponse,
        404,
    )

    # 400: a window under a second, a negative limit.
    short_window = expect_error(
        lambda: unkey.ratelimit.set_override(
            namespace=namespace, identifier="x", limit=1, duration=999, retries=NO_RETRY
        ),
        errors.BadRequestErrorResponse,
        400,
    )
    error_location(short_window, "duration")
    negative = expect_error(
        lambda: unkey.ratelimit.set_override(
            namespace=namespace, identifier="x", limit=-1, duration=MINUTE, retries=NO_RETRY
        ),
        errors.BadRequestErrorResponse,
        400,
    )
    error_location(negative, "limit")


def permissions_create_and_get() -> None:
    slug = f"sdkpy{SUFFIX}.documents.read"
    created = unkey.permissions.create_permission(
        name="Read documents", slug=slug, description="Lets a key read documents"
    )
    request_id(created.meta)
    permission_id = created.data.permission_id
    check(
        permission_id.startswith("perm_") and permission_id[5:].replace("_", "").isalnum(),
        f"permissionId format: {permission_id}",
    )
    expected = {
        "id": permission_id,
        "name": "Read documents",
        "slug": slug,
        "description": "Lets a key read documents",
    }

    # By id and by slug.
    by_id = unkey.permissions.get_permission(permission=permission_id)
    request_id(by_id.meta)
    eq(permission_dict(by_id.data), expected, "getPermission by id")
    eq(get_permission(slug), expected, "getPermission by slug")

    # No description; every character a slug may have; names need not be unique.
    odd_slug = f"sdkpy:{SUFFIX}_All-chars.*"
    odd = unkey.permissions.create_permission(name="Read documents", slug=odd_slug)
    check(odd.data.permission_id != permission_id, "a second permission gets its own id")
    eq(
        get_permission(odd_slug),
        {
            "id": odd.data.permission_id,
            "name": "Read documents",
            "slug": odd_slug,
            "description": None,
        },
        "a permission without a description",
    )

    # A duplicate slug is a conflict and changes nothing.
    conflict = expect_error(
        lambda: unkey.permissions.create_permission(name="Other", slug=slug, retries=NO_RETRY),
        errors.ConflictErrorResponse,
        409,
    )
    eq(conflict.data.error.status, 409, "409 error.status")
    request_id(conflict.data.meta)
    eq(get_permission(slug), expected, "a refused duplicate changed the permission")

    # Unknown id or slug → 404.
    for reference in ("perm_doesnotexist0000", f"sdkpy{SUFFIX}.nothing"):
        missing = expect_error(
            lambda reference=reference: unkey.permissions.get_permission(
                permission=reference, retries=NO_RETRY
            ),
            errors.NotFoundErrorResponse,
            404,
        )
        eq(missing.data.error.status, 404, "404 error.status")

    # 400 with errors[] naming the field; nothing is created.
    invalid: list[tuple[str, dict]] = [
        ("slug", {"name": "x", "slug": f"sdkpy{SUFFIX}.has space"}),
        ("slug", {"name": "x", "slug": f"sdkpy{SUFFIX}/slash"}),
        ("slug", {"name": "x", "slug": ""}),
        ("slug", {"name": "x", "slug": f"sdkpy{SUFFIX}." + "s" * 120}),
        ("name", {"name": "", "slug": f"sdkpy{SUFFIX}.noname"}),
        ("name", {"name": "n" * 513, "slug": f"sdkpy{SUFFIX}.longname"}),
        (
            "description",
            {"name": "x", "slug": f"sdkpy{SUFFIX}.longdesc", "description": "d" * 513},
        ),
    ]
    for field, request in invalid:
        bad = expect_error(
            lambda request=request: unkey.permissions.create_permission(
                **request, retries=NO_RETRY
            ),
            errors.BadRequestErrorResponse,
            400,
        )
        error_location(bad, field)
        if request["slug"]:
            expect_error(
                lambda request=request: unkey.permissions.get_permission(
                    permission=request["slug"], retries=NO_RETRY
                ),
                errors.NotFoundErrorResponse,
                404,
            )


def permissions_list() -> None:
    tag = f"sdkpy{SUFFIX}.plist"
    created: dict[str, dict] = {}  # id → permission
    for i in range(7):
        name = f"Needle {SUFFIX}" if i == 4 else f"Listed permission {i}"
        description = f"number {i}" if i % 2 == 0 else None
        slug = f"{tag}.p{i}"
        res = unkey.permissions.create_permission(name=name, slug=slug, description=description)
        permission_id = res.data.permission_id
        created[permission_id] = {
            "id": permission_id,
            "name": name,
            "slug": slug,
            "description": description,
        }

    # The auto-pager over a search, in pages of 3.
    seen: list[str] = []
    sizes: list[int] = []
    has_more: list[bool] = []
    page = unkey.permissions.list_permissions(limit=3, search=tag)
    while page is not None:
        check(len(sizes) < 10, "the auto-pager does not terminate")
        request_id(page.result.meta)
        sizes.append(len(page.result.data))
        has_more.append(page.result.pagination.has_more)
        for p in page.result.data:
            seen.append(p.id)
            eq(permission_dict(p), created.get(p.id), f"listed permission {p.slug}")
        page = page.next()
    eq(sizes, [3, 3, 1], "page sizes")
    eq(has_more, [True, True, False], "hasMore per page")
    eq(len(set(seen)), 7, "every permission listed exactly once")
    eq(sorted(seen), sorted(created), "listed ids")

    # Walking by hand with the cursor gives the same sequence.
    manual: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        p = unkey.permissions.list_permissions(limit=3, search=tag, cursor=cursor)
        assert p is not None
        manual.extend(x.id for x in p.result.data)
        cursor = p.result.pagination.cursor
        if not cursor:
            break
    eq(manual, seen, "walking by hand with the cursor")

    # search is a case-insensitive substring of the slug, the name or the id.
    eq(sorted(x.id for x in permissions_search(tag.upper())), sorted(created), "search by slug")
    needle = next(p for p in created.values() if p["name"].startswith("Needle"))
    eq(
        [x.id for x in permissions_search(f"needle {SUFFIX}".upper())],
        [needle["id"]],
        "search by name",
    )
    third = list(created)[2]
    eq([x.id for x in permissions_search(third.lower())], [third], "search by id")
    none = unkey.permissions.list_permissions(search=f"sdkpy-nothing-{SUFFIX}")
    assert none is not None
    eq(none.result.data, [], "search without a match")
    eq(none.result.pagination.has_more, False, "hasMore on an empty page")
    eq(none.result.pagination.cursor, None, "no cursor on an empty page")

    # Without a search (default limit 100) every permission is listed once, ours among them.
    everything: list[str] = []
    page = unkey.permissions.list_permissions()
    while page is not None:
        check(len(everything) < 10_000, "the auto-pager does not terminate")
        check(len(page.result.data) <= 100, "a page holds at most 100 permissions")
        everything.extend(x.id for x in page.result.data)
        page = page.next()
    eq(len(set(everything)), len(everything), "a permission listed twice")
    for permission_id in created:
        check(permission_id in everything, f"{permission_id} not listed")

    # limit is 1..100.
    for limit in (0, 101):
        bad = expect_error(
            lambda limit=limit: unkey.permissions.list_permissions(limit=limit, retries=NO_RETRY),
            errors.BadRequestErrorResponse,
            400,
        )
        error_location(bad, "limit")


def permissions_delete() -> None:
    api_id = new_api("permission-delete")
    ns = f"sdkpy{SUFFIX}.pdel"
    doomed_slug, kept_slug = f"{ns}.doomed", f"{ns}.kept"
    doomed = unkey.permissions.create_permission(name="Doomed", slug=doomed_slug)
    role_name = f"sdkpy-pdel-{SUFFIX}"
    unkey.permissions.create_role(name=role_name, permissions=[doomed_slug, kept_slug])
    kept = get_permission(kept_slug)
    direct = unkey.keys.create_key(
        api_id=api_id, prefix=PREFIX, permissions=[doomed_slug, kept_slug], roles=[role_name]
    ).data
    through_role = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, roles=[role_name]).data
    for k in (direct, through_role):
        eq(code(verify_query(k.key, doomed_slug)), "VALID", "before the delete")

    # By slug: gone, and gone from the role and from every key, at once.
    res = unkey.permissions.delete_permission(permission=doomed_slug)
    request_id(res.meta)
    eq(res.data.model_dump(), {}, "deletePermission data")
    for reference in (doomed_slug, doomed.data.permission_id):
        expect_error(
            lambda reference=reference: unkey.permissions.get_permission(
                permission=reference, retries=NO_RETRY
            ),
            errors.NotFoundErrorResponse,
            404,
        )
    eq(get_role(role_name)["permissions"], [kept], "the role lost it")
    assert_holds(
        api_id, direct.key_id, direct.key, [kept_slug], [role_name], "a key that held it directly"
    )
    assert_holds(
        api_id,
        through_role.key_id,
        through_role.key,
        [kept_slug],
        [role_name],
        "a key that held it by role",
    )
    # Adding a permission the key already holds returns its direct permissions unchanged.
    direct_now = unkey.keys.add_permissions(key_id=direct.key_id, permissions=[kept_slug])
    eq(permission_dicts(direct_now.data), [kept], "direct permissions after")
    for k in (direct, through_role):
        denied = verify_query(k.key, doomed_slug)
        eq(code(denied), "INSUFFICIENT_PERMISSIONS", "a deleted permission still grants")
        eq(denied.valid, False, "valid")
    eq(permission_dicts(permissions_search(ns)), [kept], "listPermissions after")

    # By id; a second delete is a 404.
    other = unkey.permissions.create_permission(name="Other", slug=f"{ns}.other")
    unkey.permissions.delete_permission(permission=other.data.permission_id)
    expect_error(
        lambda: unkey.permissions.get_permission(permission=f"{ns}.other", retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )
    again = expect_error(
        lambda: unkey.permissions.delete_permission(permission=doomed_slug, retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )
    eq(again.data.error.status, 404, "404 error.status")

    # The slug is free again; the new permission is not given back to the key.
    recreated = unkey.permissions.create_permission(name="Again", slug=doomed_slug)
    check(
        recreated.data.permission_id != doomed.data.permission_id,
        "a recreated permission gets a new id",
    )
    assert_holds(
        api_id, direct.key_id, direct.key, [kept_slug], [role_name], "after recreating the slug"
    )


def permissions_update() -> None:
    api_id = new_api("permission-update")
    ns = f"sdkpy{SUFFIX}.pupd"
    old_slug, new_slug, taken = f"{ns}.docs.read", f"{ns}.documents.read", f"{ns}.taken"
    permission_id = unkey.permissions.create_permission(
        name="Read docs", slug=old_slug, description="Reads docs"
    ).data.permission_id
    unkey.permissions.create_permission(name="Taken", slug=taken)
    taken_dict = get_permission(taken)
    role_name = f"sdkpy-pupd-{SUFFIX}"
    unkey.permissions.create_role(name=role_name, permissions=[old_slug])
    direct = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, permissions=[old_slug]).data
    through_role = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, roles=[role_name]).data
    for k in (direct, through_role):
        eq(code(verify_query(k.key, old_slug)), "VALID", "before the new slug")

    # A new slug, by id: the response is the permission after; omitted fields stay.
    res = unkey.permissions.update_permission(permission=permission_id, slug=new_slug)
    request_id(res.meta)
    expected = {
        "id": permission_id,
        "name": "Read docs",
        "slug": new_slug,
        "description": "Reads docs",
    }
    eq(permission_dict(res.data), expected, "updatePermission with a new slug")
    eq(get_permission(new_slug), expected, "getPermission by the new slug")
    expect_error(
        lambda: unkey.permissions.get_permission(permission=old_slug, retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )
    eq(get_role(role_name)["permissions"], [expected], "the role's permission")

    # Keys show the new slug at once, also those verified just before.
    holders = [(direct, [], "held directly"), (through_role, [role_name], "held by role")]
    for k, roles, via in holders:
        eq(code(verify_query(k.key, new_slug)), "VALID", f"{via}: the new slug")
        denied = verify_query(k.key, old_slug)
        eq(code(denied), "INSUFFICIENT_PERMISSIONS", f"{via}: the old slug")
        eq(denied.permissions, [new_slug], f"{via}: verify permissions")
        assert_holds(api_id, k.key_id, k.key, [new_slug], roles, via)

    # By slug, a new name only; the description removed with "" and with null; its own slug
    # again is no conflict; no fields at all return the permission as it is.
    changes: list[tuple[dict, dict]] = [
        ({"name": "Read documents"}, {"name": "Read documents"}),
        ({"description": ""}, {"description": None}),
        ({"name": "Read", "description": "Again"}, {"name": "Read", "description": "Again"}),
        ({"description": None}, {"description": None}),
        ({"slug": new_slug}, {}),
        ({}, {}),
    ]
    for change, effect in changes:
        updated = unkey.permissions.update_permission(permission=new_slug, **change)
        expected |= effect
        eq(permission_dict(updated.data), expected, f"updatePermission {change}")
        eq(get_permission(permission_id), expected, f"getPermission after {change}")

    # A taken slug → 409, unknown → 404 (the old slug is unknown now), invalid → 400; each
    # changes nothing.
    conflict = expect_error(
        lambda: unkey.permissions.update_permission(
            permission=permission_id, name="Conflicting", slug=taken, retries=NO_RETRY
        ),
        errors.ConflictErrorResponse,
        409,
    )
    eq(conflict.data.error.status, 409, "409 error.status")
    request_id(conflict.data.meta)
    for reference in ("perm_doesnotexist0000", old_slug):
        missing = expect_error(
            lambda reference=reference: unkey.permissions.update_permission(
                permission=reference, name="Nobody", retries=NO_RETRY
            ),
            errors.NotFoundErrorResponse,
            404,
        )
        eq(missing.data.error.status, 404, "404 error.status")
    invalid: list[tuple[str, dict]] = [
        ("slug", {"slug": "not a slug"}),
        ("slug", {"slug": ""}),
        ("name", {"name": ""}),
        ("description", {"description": "d" * 513}),
    ]
    for field, change in invalid:
        bad = expect_error(
            lambda change=change: unkey.permissions.update_permission(
                permission=permission_id, **change, retries=NO_RETRY
            ),
            errors.BadRequestErrorResponse,
            400,
        )
        error_location(bad, field)
    eq(get_permission(permission_id), expected, "after refused updates")
    eq(get_permission(taken), taken_dict, "the permission holding the taken slug")

    # The old slug is free again; the permission made with it is another, which no key holds.
    again = unkey.permissions.create_permission(name="Old slug", slug=old_slug)
    check(again.data.permission_id != permission_id, "the old slug's new permission has a new id")
    for k, roles, via in holders:
        denied = verify_query(k.key, old_slug)
        eq(code(denied), "INSUFFICIENT_PERMISSIONS", f"{via}: the recreated old slug")
        assert_holds(api_id, k.key_id, k.key, [new_slug], roles, f"{via}, after")


def roles_create_and_get() -> None:
    ns = f"sdkpy{SUFFIX}.roles"
    existing = unkey.permissions.create_permission(
        name="Edit documents", slug=f"{ns}.documents.edit", description="edit"
    )
    existing_dict = get_permission(existing.data.permission_id)
    fresh_slug = f"{ns}.documents.publish"
    name = f"sdkpy-editor-{SUFFIX}"
    created = unkey.permissions.create_role(
        name=name,
        description="Edits and publishes documents",
        permissions=[existing_dict["slug"], fresh_slug],
    )
    request_id(created.meta)
    role_id = created.data.role_id
    check(
        role_id.startswith("role_") and role_id[5:].replace("_", "").isalnum(),
        f"roleId format: {role_id}",
    )

    # The missing slug was created, named after itself; the existing permission was reused.
    fresh = get_permission(fresh_slug)
    check(fresh["id"].startswith("perm_"), f"id of a created permission: {fresh['id']}")
    eq(
        fresh,
        {"id": fresh["id"], "name": fresh_slug, "slug": fresh_slug, "description": None},
        "a permission created by createRole",
    )
    expected = {
        "id": role_id,
        "name": name,
        "description": "Edits and publishes documents",
        "permissions": sorted([existing_dict, fresh], key=lambda p: p["slug"]),
    }
    by_id = unkey.permissions.get_role(role=role_id)
    request_id(by_id.meta)
    eq(role_dict(by_id.data), expected, "getRole by id")
    eq(get_role(name), expected, "getRole by name")

    # Only a name (any text, 1..128 characters): no description, no permissions.
    bare_name = f"Billing Manager {SUFFIX}"
    bare = unkey.permissions.create_role(name=bare_name)
    eq(
        get_role(bare_name),
        {"id": bare.data.role_id, "name": bare_name, "description": None, "permissions": []},
        "a role with only a name",
    )

    # A duplicate name is a conflict and changes nothing, not even the permissions it names.
    conflict = expect_error(
        lambda: unkey.permissions.create_role(
            name=name, permissions=[f"{ns}.other"], retries=NO_RETRY
        ),
        errors.ConflictErrorResponse,
        409,
    )
    eq(conflict.data.error.status, 409, "409 error.status")
    eq(get_role(role_id), expected, "a refused duplicate changed the role")

    # Unknown id or name → 404 naming the role.
    for reference in ("role_doesnotexist0000", f"sdkpy-nobody-{SUFFIX}"):
        missing = expect_error(
            lambda reference=reference: unkey.permissions.get_role(
                role=reference, retries=NO_RETRY
            ),
            errors.NotFoundErrorResponse,
            404,
        )
        eq(missing.data.error.detail, f"Role '{reference}' was not found.", "404 detail")

    # 400 with errors[] naming the field; neither the role nor its permissions are created.
    long_name = "r" * 129
    invalid: list[tuple[str, dict]] = [
        ("name", {"name": ""}),
        ("name", {"name": long_name}),
        ("description", {"name": f"sdkpy-longdesc-{SUFFIX}", "description": "d" * 513}),
        (
            "permissions",
            {"name": f"sdkpy-badslug-{SUFFIX}", "permissions": [f"{ns}.ok", "not a slug"]},
        ),
    ]
    for field, request in invalid:
        bad = expect_error(
            lambda request=request: unkey.permissions.create_role(**request, retries=NO_RETRY),
            errors.BadRequestErrorResponse,
            400,
        )
        error_location(bad, field)
    for reference in (long_name, f"sdkpy-longdesc-{SUFFIX}", f"sdkpy-badslug-{SUFFIX}"):
        expect_error(
            lambda reference=reference: unkey.permissions.get_role(
                role=reference, retries=NO_RETRY
            ),
            errors.NotFoundErrorResponse,
            404,
        )
    expect_error(
        lambda: unkey.permissions.get_permission(permission=f"{ns}.ok", retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )
    # Nor did the refused duplicate create the permission it named.
    eq(
        permissions_search(f"{ns}.other"),
        [],
        "a createRole refused as a duplicate created its permission",
    )


def roles_list() -> None:
    tag = f"sdkpy-rlist-{SUFFIX}"
    ns = f"sdkpy{SUFFIX}.rlist"
    created: dict[str, dict] = {}  # id → role
    for i in range(5):
        res = unkey.permissions.create_role(
            name=f"{tag}-{i}",
            description=f"role {i}",
            permissions=[] if i == 0 else [f"{ns}.p{i}", f"{ns}.shared"],
        )
        created[res.data.role_id] = get_role(res.data.role_id)
    shared = get_permission(f"{ns}.shared")
    roles = list(created.values())
    eq(
        [p["slug"] for p in roles[3]["permissions"]],
        [f"{ns}.p3", f"{ns}.shared"],
        "a role's permissions",
    )
    check(shared in roles[3]["permissions"], "roles share one permission")

    # The auto-pager over a search, in pages of 2; listed roles carry their permissions.
    seen: list[str] = []
    sizes: list[int] = []
    has_more: list[bool] = []
    page = unkey.permissions.list_roles(limit=2, search=tag)
    while page is not None:
        check(len(sizes) < 10, "the auto-pager does not terminate")
        request_id(page.result.meta)
        sizes.append(len(page.result.data))
        has_more.append(page.result.pagination.has_more)
        for r in page.result.data:
            seen.append(r.id)
            eq(role_dict(r), created.get(r.id), f"listed role {r.name}")
        page = page.next()
    eq(sizes, [2, 2, 1], "page sizes")
    eq(has_more, [True, True, False], "hasMore per page")
    eq(sorted(seen), sorted(created), "listed ids")
    manual: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        p = unkey.permissions.list_roles(limit=2, search=tag, cursor=cursor)
        assert p is not None
        manual.extend(x.id for x in p.result.data)
        cursor = p.result.pagination.cursor
        if not cursor:
            break
    eq(manual, seen, "walking by hand with the cursor")

    # search is a case-insensitive substring of the name or the id.
    eq(sorted(x.id for x in roles_search(tag.upper())), sorted(created), "search by name")
    eq([x.id for x in roles_search(f"{tag}-2")], [roles[2]["id"]], "search for one")
    eq([x.id for x in roles_search(roles[3]["id"].upper())], [roles[3]["id"]], "search by id")
    none = unkey.permissions.list_roles(search=f"sdkpy-nothing-{SUFFIX}")
    assert none is not None
    eq(none.result.data, [], "search without a match")
    eq(none.result.pagination.cursor, None, "no cursor on an empty page")
    everything: list[str] = []
    page = unkey.permissions.list_roles()
    while page is not None:
        check(len(everything) < 10_000, "the auto-pager does not terminate")
        check(len(page.result.data) <= 100, "a page holds at most 100 roles")
        everything.extend(x.id for x in page.result.data)
        page = page.next()
    eq(len(set(everything)), len(everything), "a role listed twice")
    for role_id in created:
        check(role_id in everything, f"{role_id} not listed")
    for limit in (0, 101):
        bad = expect_error(
            lambda limit=limit: unkey.permissions.list_roles(limit=limit, retries=NO_RETRY),
            errors.BadRequestErrorResponse,
            400,
        )
        error_location(bad, "limit")


def roles_delete() -> None:
    api_id = new_api("role-delete")
    tag = f"sdkpy-rdel-{SUFFIX}"
    ns = f"sdkpy{SUFFIX}.rdel"
    p1, p2, p3, shared = f"{ns}.p1", f"{ns}.p2", f"{ns}.p3", f"{ns}.shared"
    by_name, by_id, kept = f"{tag}-1", f"{tag}-2", f"{tag}-kept"
    by_name_id = unkey.permissions.create_role(name=by_name, permissions=[p1, shared]).data.role_id
    by_id_id = unkey.permissions.create_role(name=by_id, permissions=[p2]).data.role_id
    unkey.permissions.create_role(name=kept, permissions=[shared, p3])
    k = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, roles=[by_name, by_id, kept]).data
    eq(code(verify_query(k.key, f"{p1} AND {p2} AND {p3}")), "VALID", "before deleteRole")

    # By name and by id; the roles' permissions stay.
    res = unkey.permissions.delete_role(role=by_name)
    request_id(res.meta)
    eq(res.data.model_dump(), {}, "deleteRole data")
    unkey.permissions.delete_role(role=by_id_id)
    for reference in (by_name, by_name_id, by_id, by_id_id):
        expect_error(
            lambda reference=reference: unkey.permissions.get_role(
                role=reference, retries=NO_RETRY
            ),
            errors.NotFoundErrorResponse,
            404,
        )
    for slug in (p1, p2):
        eq(get_permission(slug)["slug"], slug, "a deleted role's permission stays")

    # A second delete is a 404. deleteRole declares no 404, so the SDK raises the generic
    # APIError.
    gone = expect_error(
        lambda: unkey.permissions.delete_role(role=by_name, retries=NO_RETRY),
        errors.APIError,
        404,
    )
    check(not isinstance(gone, errors.NotFoundErrorResponse), "404 on deleteRole is undeclared")
    body = json.loads(gone.body)
    eq(body["error"]["status"], 404, "404 error.status")
    eq(body["error"]["detail"], f"Role '{by_name}' was not found.", "404 detail")

    # The name is free again; the new role is another one.
    again = unkey.permissions.create_role(name=by_name)
    check(again.data.role_id != by_name_id, "a recreated role gets a new id")
    eq(sorted(r.name for r in roles_search(tag)), sorted([by_name, kept]), "roles left")

    # The key lost the deleted roles at once, also where it was verified before, and did not
    # get the recreated one.
    assert_holds(api_id, k.key_id, k.key, [p3, shared], [kept], "after deleteRole")
    denied = verify_query(k.key, f"{p1} OR {p2}")
    eq(code(denied), "INSUFFICIENT_PERMISSIONS", "a deleted role still grants")


def role_permissions() -> None:
    api_id = new_api("role-permissions")
    ns = f"sdkpy{SUFFIX}.rperm"
    a, b, c = f"{ns}.a", f"{ns}.b", f"{ns}.c"
    name = f"sdkpy-rperm-{SUFFIX}"
    role_id = unkey.permissions.create_role(name=name, permissions=[a, b]).data.role_id
    k = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, roles=[name]).data
    eq(code(verify_query(k.key, f"{a} AND {b}")), "VALID", "before")

    # unkey-py sends `role` (id or name). The new set replaces the old (c is created); the
    # response is the role's permissions after.
    res = unkey.permissions.set_role_permissions(request={"role": name, "permissions": [b, c]})
    request_id(res.meta)
    a_dict, b_dict, c_dict = get_permission(a), get_permission(b), get_permission(c)
    eq(c_dict, {"id": c_dict["id"], "name": c, "slug": c, "description": None}, "c created")
    eq(permission_dicts(res.data), [b_dict, c_dict], "setRolePermissions by name")
    eq(get_role(role_id)["permissions"], [b_dict, c_dict], "getRole after")

    # The key sees the change at once.
    lost = verify_query(k.key, a)
    eq(code(lost), "INSUFFICIENT_PERMISSIONS", "a permission the role no longer has")
    eq(sorted(lost.permissions or []), [b, c], "verify: permissions")
    eq(code(verify_query(k.key, f"{b} AND {c}")), "VALID", "a permission the role just got")
    assert_holds(api_id, k.key_id, k.key, [b, c], [name], "after setRolePermissions")

    # `role` by id, and the deprecated `roleId` that unkey-py still models.
    by_id = unkey.permissions.set_role_permissions(request={"role": role_id, "permissions": [a]})
    eq(permission_dicts(by_id.data), [a_dict], "setRolePermissions by id")
    eq(code(verify_query(k.key, a)), "VALID", "after setRolePermissions by id")
    legacy = unkey.permissions.set_role_permissions(
        request={"role_id": role_id, "permissions": [a, b]}
    )
    eq(permission_dicts(legacy.data), [a_dict, b_dict], "setRolePermissions by roleId")

    # [] clears.
    cleared = unkey.permissions.set_role_permissions(request={"role": name, "permissions": []})
    eq(cleared.data, [], "setRolePermissions []")
    eq(get_role(name)["permissions"], [], "getRole after clearing")
    eq(code(verify_query(k.key, a)), "INSUFFICIENT_PERMISSIONS", "after clearing")
    assert_holds(api_id, k.key_id, k.key, [], [name], "after clearing the role")
    eq(get_permission(b)["slug"], b, "the permissions themselves stay")

    # Unknown role → 404 naming it; an invalid slug → 400 and the role is unchanged.
    nobody = f"sdkpy-nobody-{SUFFIX}"
    missing = expect_error(
        lambda: unkey.permissions.set_role_permissions(
            request={"role": nobody, "permissions": [a]}, retries=NO_RETRY
        ),
        errors.NotFoundErrorResponse,
        404,
    )
    eq(missing.data.error.detail, f"Role '{nobody}' was not found.", "404 detail")
    bad = expect_error(
        lambda: unkey.permissions.set_role_permissions(
            request={"role": role_id, "permissions": [a, "not a slug"]}, retries=NO_RETRY
        ),
        errors.BadRequestErrorResponse,
        400,
    )
    error_location(bad, "permissions")
    eq(get_role(role_id)["permissions"], [], "a refused set changed the role")


def roles_update() -> None:
    api_id = new_api("role-update")
    read = f"sdkpy{SUFFIX}.rupd.read"
    old_name = f"sdkpy-rupd-{SUFFIX}"
    new_name = f"sdkpy-rupd-renamed-{SUFFIX}"
    taken = f"sdkpy-rupd-taken-{SUFFIX}"
    role_id = unkey.permissions.create_role(
        name=old_name, description="Reads", permissions=[read]
    ).data.role_id
    unkey.permissions.create_role(name=taken, description="Taken")
    taken_role = get_role(taken)
    read_dict = get_permission(read)
    k = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, roles=[old_name]).data
    eq(verify_query(k.key, read).roles, [old_name], "before the new name")

    # A new name, by name: the response is the role after; the description stays.
    res = unkey.permissions.update_role(role=old_name, name=new_name)
    request_id(res.meta)
    eq(
        (res.data.id, res.data.name, res.data.description),
        (role_id, new_name, "Reads"),
        "updateRole with a new name",
    )
    expected = {"id": role_id, "name": new_name, "description": "Reads", "permissions": [read_dict]}
    eq(get_role(new_name), expected, "getRole by the new name")
    eq(get_role(role_id), expected, "getRole by id")
    gone = expect_error(
        lambda: unkey.permissions.get_role(role=old_name, retries=NO_RETRY),
        errors.NotFoundErrorResponse,
        404,
    )
    eq(gone.data.error.detail, f"Role '{old_name}' was not found.", "404 detail")

    # The key keeps the role and shows its new name at once; calls naming it use the new name.
    v = verify_query(k.key, read)
    eq(code(v), "VALID", "verify after the new name")
    eq(v.roles, [new_name], "verify: roles")
    assert_holds(api_id, k.key_id, k.key, [read], [new_name], "after the new name")
    eq(unkey.keys.remove_roles(key_id=k.key_id, roles=[new_name]).data, [], "removeRoles")
    eq(
        role_dicts(unkey.keys.add_roles(key_id=k.key_id, roles=[new_name]).data),
        [expected],
        "addRoles by the new name",
    )

    # By id: the description removed with "" and with null, the name kept; its own name again
    # is no conflict; no fields at all return the role as it is.
    changes: list[tuple[dict, dict]] = [
        ({"description": ""}, {"description": None}),
        ({"description": "Reads again"}, {"description": "Reads again"}),
        ({"description": None}, {"description": None}),
        ({"name": new_name, "description": "Reads"}, {"description": "Reads"}),
        ({}, {}),
    ]
    for change, effect in changes:
        updated = unkey.permissions.update_role(role=role_id, **change)
        expected |= effect
        eq(
            (updated.data.id, updated.data.name, updated.data.description),
            (role_id, expected["name"], expected["description"]),
            f"updateRole {change}",
        )
        eq(get_role(role_id), expected, f"getRole after {change}")

    # A taken name → 409, unknown → 404 naming the role, invalid → 400; each changes nothing.
    conflict = expect_error(
        lambda: unkey.permissions.update_role(role=role_id, name=taken, retries=NO_RETRY),
        errors.ConflictErrorResponse,
        409,
    )
    eq(conflict.data.error.status, 409, "409 error.status")
    request_id(conflict.data.meta)
    for reference in ("role_doesnotexist0000", old_name):
        missing = expect_error(
            lambda reference=reference: unkey.permissions.update_role(
                role=reference, name=f"sdkpy-rupd-nobody-{SUFFIX}", retries=NO_RETRY
            ),
            errors.NotFoundErrorResponse,
            404,
        )
        eq(missing.data.error.detail, f"Role '{reference}' was not found.", "404 detail")
    invalid: list[tuple[str, dict]] = [
        ("name", {"name": ""}),
        ("name", {"name": "r" * 129}),
        ("description", {"description": "d" * 513}),
    ]
    for field, change in invalid:
        bad = expect_error(
            lambda change=change: unkey.permissions.update_role(
                role=role_id, **change, retries=NO_RETRY
            ),
            errors.BadRequestErrorResponse,
            400,
        )
        error_location(bad, field)
    eq(get_role(role_id), expected, "after refused updates")
    eq(get_role(taken), taken_role, "the role holding the taken name")

    # The old name is free again; the role made with it is another, which the key lacks.
    again = unkey.permissions.create_role(name=old_name)
    check(again.data.role_id != role_id, "the old name's new role has a new id")
    assert_holds(api_id, k.key_id, k.key, [read], [new_name], "after reusing the old name")


def key_permissions() -> None:
    api_id = new_api("key-permissions")
    ns = f"sdkpy{SUFFIX}.kperm"
    read, write, admin, via_role = f"{ns}.read", f"{ns}.write", f"{ns}.admin", f"{ns}.via-role"
    unkey.permissions.create_permission(name="Read", slug=read, description="reads")
    read_dict = get_permission(read)
    role_name = f"sdkpy-kperm-{SUFFIX}"
    unkey.permissions.create_role(name=role_name, permissions=[via_role])
    k = unkey.keys.create_key(api_id=api_id, prefix=PREFIX, roles=[role_name]).data
    key_id = k.key_id

    # add: the response is the key's direct permissions after; a missing slug is created.
    added = unkey.keys.add_permissions(key_id=key_id, permissions=[read, write])
    request_id(added.meta)
    write_dict = get_permission(write)
    eq(
        write_dict,
        {"id": write_dict["id"], "name": write, "slug": write, "description": None},
        "a permission created by addPermissions",
    )
    eq(permission_dicts(added.data), [read_dict, write_dict], "addPermissions")
    again = unkey.keys.add_permissions(key_id=key_id, permissions=[read])
    eq(permission_dicts(again.data), [read_dict, write_dict], "adding a held one")
    assert_holds(api_id, key_id, k.key, [read, write, via_role], [role_name], "after add")
    eq(code(verify_query(k.key, f"{read} AND {write} AND {via_role}")), "VALID", "verify")

    # remove: the permission stays in the workspace.
    removed = unkey.keys.remove_permissions(key_id=key_id, permissions=[write])
    request_id(removed.meta)
    eq(permission_dicts(removed.data), [read_dict], "removePermissions")
    eq(code(verify_query(k.key, write)), "INSUFFICIENT_PERMISSIONS", "after remove")
    eq(get_permission(write), write_dict, "a removed permission still exists")

    # set replaces the direct permissions (creating missing ones); roles are untouched.
    set_ = unkey.keys.set_permissions(key_id=key_id, permissions=[write, admin])
    request_id(set_.meta)
    admin_dict = get_permission(admin)
    eq(permission_dicts(set_.data), [admin_dict, write_dict], "setPermissions")
    assert_holds(api_id, key_id, k.key, [admin, write, via_role], [role_name], "after set")
    eq(code(verify_query(k.key, read)), "INSUFFICIENT_PERMISSIONS", "after set")

    # set [] clears them; what the role grants remains.
    cleared = unkey.keys.set_permissions(key_id=key_id, permissions=[])
    eq(cleared.data, [], "setPermissions []")
    assert_holds(api_id, key_id, k.key, [via_role], [role_name], "after set []")
    eq(code(verify_query(k.key, via_role)), "VALID", "the role's permission after set []")

    # add and remove need at least one slug; slugs are checked; unknown key → 404.
    refused: list[Callable[[], Any]] = [
        lambda: unkey.keys.add_permissions(key_id=key_id, permissions=[], retries=NO_RETRY),
        lambda: unkey.keys.remove_permissions(key_id=key_id, permissions=[], retries=NO_RETRY),
        lambda: unkey.keys.add_permissions(
            key_id=key_id, permissions=[read, "not a slug"], retries=NO_RETRY
        ),
        lambda: unkey.keys.set_permissions(
            key_id=key_id, permissions=["not/a/slug"], retries=NO_RETRY
        ),
    ]
    for call in refused:
        error_location(expect_error(call, errors.BadRequestErrorResponse, 400), "permissions")
    assert_holds(api_id, key_id, k.key, [via_role], [role_name], "after refused changes")
    unknown = "key_doesnotexist0000"
    not_found: list[Callable[[], Any]] = [
        lambda: unkey.keys.add_permissions(key_id=unknown, permissions=[read], retries=NO_RETRY),
        lambda: unkey.keys.remove_permissions(key_id=unknown, permissions=[read], retries=NO_RETRY),
        lambda: unkey.keys.set_permissions(key_id=unknown, permissions=[], retries=NO_RETRY),
    ]
    for call in not_found:
        expect_error(call, errors.NotFoundErrorResponse, 404)


def key_roles() -> None:
    api_id = new_api("key-roles")
    ns = f"sdkpy{SUFFIX}.kroles"
    read, write = f"{ns}.read", f"{ns}.write"
    reader_name = f"sdkpy-kroles-reader-{SUFFIX}"
    writer_name = f"sdkpy-kroles-writer-{SUFFIX}"
    empty_name = f"sdkpy-kroles-empty-{SUFFIX}"
    unkey.permissions.create_role(name=reader_name, permissions=[read])
    unkey.permissions.create_role(
        name=writer_name, description="Reads and writes", permissions=[read, write]
    )
    unkey.permissions.create_role(name=empty_name)
    reader, writer, empty = get_role(reader_name), get_role(writer_name), get_role(empty_name)
    k = unkey.keys.create_key(api_id=api_id, prefix=PREFIX).data
    key_id = k.key_id

    # add: the response is the key's roles after, with their permissions.
    added = unkey.keys.add_roles(key_id=key_id, roles=[reader_name])
    request_id(added.meta)
    eq(role_dicts(added.data), [reader], "addRoles")
    both = unkey.keys.add_roles(key_id=key_id, roles=[writer_name, reader_name])
    eq(role_dicts(both.data), [reader, writer], "addRoles with a held role")
    # A permission two roles grant is listed once.
    assert_holds(api_id, key_id, k.key, [read, write], [reader_name, writer_name], "after add")
    eq(code(verify_query(k.key, f"{read} AND {write}")), "VALID", "verify after add")

    removed = unkey.keys.remove_roles(key_id=key_id, roles=[reader_name])
    request_id(removed.meta)
    eq(role_dicts(removed.data), [writer], "removeRoles")
    set_ = unkey.keys.set_roles(key_id=key_id, roles=[empty_name, reader_name])
    request_id(set_.meta)
    eq(role_dicts(set_.data), [empty, reader], "setRoles")
    assert_holds(api_id, key_id, k.key, [read], [empty_name, reader_name], "after setRoles")
    eq(code(verify_query(k.key, write)), "INSUFFICIENT_PERMISSIONS", "after setRoles")

    # An unknown role fails the whole call with a 404 naming it, and nothing changes.
    nobody = f"sdkpy-kroles-nobody-{SUFFIX}"
    refused: list[Callable[[], Any]] = [
        lambda: unkey.keys.add_roles(key_id=key_id, roles=[writer_name, nobody], retries=NO_RETRY),
        lambda: unkey.keys.set_roles(key_id=key_id, roles=[nobody], retries=NO_RETRY),
    ]
    for call in refused:
        missing = expect_error(call, errors.NotFoundErrorResponse, 404)
        eq(missing.data.error.detail, f"Role '{nobody}' was not found.", "404 detail")
    assert_holds(api_id, key_id, k.key, [read], [empty_name, reader_name], "after refused changes")

    # [] clears; add and remove need at least one role; unknown key → 404.
    cleared = unkey.keys.set_roles(key_id=key_id, roles=[])
    eq(cleared.data, [], "setRoles []")
    assert_holds(api_id, key_id, k.key, [], [], "after setRoles []")
    empty_calls: list[Callable[[], Any]] = [
        lambda: unkey.keys.add_roles(key_id=key_id, roles=[], retries=NO_RETRY),
        lambda: unkey.keys.remove_roles(key_id=key_id, roles=[], retries=NO_RETRY),
    ]
    for call in empty_calls:
        error_location(expect_error(call, errors.BadRequestErrorResponse, 400), "roles")
    expect_error(
        lambda: unkey.keys.add_roles(
            key_id="key_doesnotexist0000", roles=[reader_name], retries=NO_RETRY
        ),
        errors.NotFoundErrorResponse,
        404,
    )


def key_access_on_create_and_update() -> None:
    api_id = new_api("key-access")
    ns = f"sdkpy{SUFFIX}.kaccess"
    docs_read, users_manage, billing = f"{ns}.docs.read", f"{ns}.users.manage", f"{ns}.billing"
    tickets_read, tickets_write = f"{ns}.tickets.read", f"{ns}.tickets.write"
    admin = f"sdkpy-kaccess-admin-{SUFFIX}"
    support = f"sdkpy-kaccess-support-{SUFFIX}"
    unkey.permissions.create_role(name=admin, permissions=[users_manage, docs_read])
    unkey.permissions.create_role(name=support, permissions=[tickets_read])

    # createKey: direct permissions (billing is created) and roles.
    k = unkey.keys.create_key(
        api_id=api_id,
        prefix=PREFIX,
        name="staff",
        permissions=[docs_read, billing],
        roles=[admin],
    ).data
    eq(get_permission(billing)["name"], billing, "a permission created by createKey")
    assert_holds(api_id, k.key_id, k.key, [billing, docs_read, users_manage], [admin], "create")
    direct = unkey.keys.add_permissions(key_id=k.key_id, permissions=[docs_read])
    eq(
        sorted(p.slug for p in direct.data),
        sorted([billing, docs_read]),
        "createKey's permissions are the direct ones",
    )

    # updateKey replaces both; omitting them leaves them; [] clears each.
    unkey.keys.update_key(key_id=k.key_id, permissions=[tickets_write], roles=[support])
    assert_holds(api_id, k.key_id, k.key, [tickets_read, tickets_write], [support], "updateKey")
    unkey.keys.update_key(key_id=k.key_id, name="renamed")
    assert_holds(
        api_id, k.key_id, k.key, [tickets_read, tickets_write], [support], "updateKey without"
    )
    unkey.keys.update_key(key_id=k.key_id, roles=[])
    assert_holds(api_id, k.key_id, k.key, [tickets_write], [], "updateKey roles []")
    unkey.keys.update_key(key_id=k.key_id, permissions=[])
    assert_holds(api_id, k.key_id, k.key, [], [], "updateKey permissions []")

    # rerollKey copies permissions and roles.
    rolled = unkey.keys.create_key(
        api_id=api_id, prefix=PREFIX, permissions=[billing], roles=[admin]
    ).data
    rerolled = unkey.keys.reroll_key(key_id=rolled.key_id, expiration=0).data
    assert_holds(
        api_id,
        rerolled.key_id,
        rerolled.key,
        [billing, docs_read, users_manage],
        [admin],
        "rerolled key",
    )
    for key_id in (rolled.key_id, rerolled.key_id):
        unkey.keys.delete_key(key_id=key_id)

    bad_slug = expect_error(
        lambda: unkey.keys.create_key(api_id=api_id, permissions=["not a slug"], retries=NO_RETRY),
        errors.BadRequestErrorResponse,
        400,
    )
    error_location(bad_slug, "permissions")

    # An unknown role → 404 naming it: no key is created or changed, and the new slugs sent
    # along are not created either.
    nobody = f"sdkpy-kaccess-nobody-{SUFFIX}"
    refused = expect_error(
        lambda: unkey.keys.create_key(
            api_id=api_id,
            prefix=PREFIX,
            permissions=[f"{ns}.stray.create"],
            roles=[nobody],
            retries=NO_RETRY,
        ),
        errors.NotFoundErrorResponse,
        404,
    )
    eq(refused.data.error.detail, f"Role '{nobody}' was not found.", "404 detail")
    eq(len(list_ids(api_id)), 1, "keys after a refused createKey")
    expect_error(
        lambda: unkey.keys.update_key(
            key_id=k.key_id,
            permissions=[f"{ns}.stray.update"],
            roles=[nobody],
            retries=NO_RETRY,
        ),
        errors.NotFoundErrorResponse,
        404,
    )
    assert_holds(api_id, k.key_id, k.key, [], [], "after a refused updateKey")
    for call in ("create", "update"):
        stray = f"{ns}.stray.{call}"
        eq(
            [p.slug for p in permissions_search(stray)],
            [],
            f"a {call}Key refused for an unknown role created permission {stray}",
        )


def verify_permission_queries() -> None:
    api_id = new_api("verify-permissions")
    # Every permission in a query gets this section's prefix, so the queries read plainly.
    ns = f"sdkpy{SUFFIX}.vq."

    def q(query: str) -> str:
        return re.sub(
            r"[A-Za-z0-9_.:*-]+",
            lambda m: m.group(0) if m.group(0).lower() in ("and", "or") else ns + m.group(0),
            query,
        )

    viewer = f"sdkpy-vq-viewer-{SUFFIX}"
    unkey.permissions.create_role(name=viewer, permissions=[q("users.view")])
    meta = {"team": "docs"}
    created = unkey.keys.create_key(
        api_id=api_id,
        prefix=PREFIX,
        name="gatekeeper",
        meta=meta,
        permissions=[q("documents.read"), q("api.*")],
        roles=[viewer],
        credits={"remaining": 100},
        ratelimits=[{"name": "requests", "limit": 100, "duration": HOUR, "auto_apply": True}],
    )
    key_id, key = created.data.key_id, created.data.key
    held = sorted([q("documents.read"), q("api.*"), q("users.view")])
    in_one_window(HOUR)

    # Held: documents.read and api.* directly, users.view through the role.
    cases: list[tuple[str, bool]] = [
        ("documents.read", True),
        ("documents.write", False),
        ("users.view", True),
        ("documents.read AND users.view", True),
        ("documents.read AND documents.write", False),
        ("documents.write OR users.view", True),
        ("documents.write OR billing.read", False),
        # Operators in any case; whitespace of any kind.
        ("documents.read and users.view", True),
        ("documents.write oR users.view", True),
        (" \tdocuments.read\n  AND\r\nusers.view ", True),
        # AND binds tighter than OR.
        ("documents.write AND users.view OR documents.read", True),
        ("documents.read OR documents.write AND billing.read", True),
        ("(documents.read OR documents.write) AND billing.read", False),
        ("(documents.write OR users.view) AND (api.* OR billing.read)", True),
        ("((documents.read))", True),
        # Exact matches only; `*` is an ordinary character.
        ("Documents.read", False),
        ("documents", False),
        ("documents.read.all", False),
        ("api.*", True),
        ("api.read", False),
        ("documents.*", False),
    ]
    credits = 100
    remaining = 100
    for query, satisfied in cases:
        v = verify_query(key, q(query))
        what = repr(query)
        if satisfied:
            credits -= 1
            remaining -= 1
            eq(code(v), "VALID", what)
            eq(v.valid, True, f"{what}: valid")
            eq(evaluated(v, "requests").remaining, remaining, f"{what}: rate limit")
        else:
            # Refused with the key's details; neither credits nor rate limits are spent.
            eq(code(v), "INSUFFICIENT_PERMISSIONS", what)
            eq(v.valid, False, f"{what}: valid")
            eq(v.key_id, key_id, f"{what}: keyId")
            eq(v.name, "gatekeeper", f"{what}: name")
            eq(v.meta, meta, f"{what}: meta")
            eq(v.enabled, True, f"{what}: enabled")
            eq(v.ratelimits or [], [], f"{what}: no rate limit is checked")
        eq(v.credits, credits, f"{what}: credits")
        eq(sorted(v.permissions or []), held, f"{what}: permissions")
        eq(v.roles, [viewer], f"{what}: roles")
    eq(credits_dict(get_key(key_id).credits), {"remaining": credits}, "credits after")
    plain = verify(key)
    eq(code(plain), "VALID", "no query: no permission check")
    eq(plain.credits, credits - 1, "credits")
    eq(evaluated(plain, "requests").remaining, remaining - 1, "refusals used the limit")

    # The permission check comes after DISABLED and EXPIRED and before the rate limits and
    # credits.
    broke = unkey.keys.create_key(
        api_id=api_id, prefix=PREFIX, permissions=[q("documents.read")], credits={"remaining": 0}
    )
    insufficient = verify_query(broke.data.key, q("documents.write"))
    eq(code(insufficient), "INSUFFICIENT_PERMISSIONS", "before USAGE_EXCEEDED")
    eq(insufficient.credits, 0, "credits")
    eq(code(verify_query(broke.data.key, q("documents.read"))), "USAGE_EXCEEDED", "no credits")
    busy = unkey.keys.create_key(
        api_id=api_id,
        prefix=PREFIX,
        permissions=[q("documents.read")],
        ratelimits=[{"name": "requests", "limit": 1, "duration": HOUR, "auto_apply": True}],
    )
    eq(code(verify_query(busy.data.key, q("documents.read"))), "VALID", "the one call")
    eq(code(verify_query(busy.data.key, q("documents.read"))), "RATE_LIMITED", "the next")
    limited = verify_query(busy.data.key, q("documents.write"))
    eq(code(limited), "INSUFFICIENT_PERMISSIONS", "before RATE_LIMITED")
    unkey.keys.update_key(key_id=broke.data.key_id, enabled=False)
    eq(code(verify_query(broke.data.key, q("documents.write"))), "DISABLED", "before DISABLED")
    old = unkey.keys.create_key(api_id=api_id, expires=now_ms() - MINUTE)
    eq(code(verify_query(old.data.key, q("documents.read"))), "EXPIRED", "before EXPIRED")
    missing = verify_query(f"{PREFIX}_{'1' * 28}", q("documents.read"))
    eq(code(missing), "NOT_FOUND", "an unknown key")
    eq(missing.key_id, None, "NOT_FOUND carries no keyId")


def verify_permission_query_syntax() -> None:
    api_id = new_api("query-syntax")
    key = unkey.keys.create_key(
        api_id=api_id,
        prefix=PREFIX,
        permissions=["a", "b"],
        credits={"remaining": 5},
        ratelimits=[{"name": "requests", "limit": 5, "duration": HOUR, "auto_apply": True}],
    ).data.key
    in_one_window(HOUR)

    # A query that does not parse is a 400 whose detail says where (0-based characters).
    broken: list[tuple[str, int]] = [
        ("a AND", 5),
        ("()", 0),
        ("a b", 2),
        ("a & b", 2),
        ("(a OR b", 7),
        ("AND a", 0),
        ("a)", 1),
        ("a OR OR b", 5),
        ("a AND (b OR c", 13),
    ]
    for query, position in broken:
        e = expect_error(
            lambda query=query: unkey.keys.verify_key(key=key, permissions=query, retries=NO_RETRY),
            errors.BadRequestErrorResponse,
            400,
        )
        what = repr(query)
        err = e.data.error
        eq(err.status, 400, f"{what}: error.status")
        check(
            err.type.endswith("/permissions_query_syntax_error"),
            f"{what}: error.type {err.type}",
        )
        check(
            f"position {position}" in err.detail,
            f"{what}: detail {err.detail!r} does not name position {position}",
        )
        error_location(e, "permissions")
        request_id(e.data.meta)
    # An empty or overlong query is a 400 too.
    for query in ("", "a OR " * 200 + "a"):
        e = expect_error(
            lambda query=query: unkey.keys.verify_key(key=key, permissions=query, retries=NO_RETRY),
            errors.BadRequestErrorResponse,
            400,
        )
        error_location(e, "permissions")

    # Nothing was spent.
    after = verify_query(key, "a AND b")
    eq(code(after), "VALID", "a good query after bad ones")
    eq(after.credits, 4, "a refused query spent credits")
    eq(evaluated(after, "requests").remaining, 4, "a refused query used the rate limit")


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
        # …nor touch identities or rate limits.
        namespace = f"sdkpy-forbidden-{SUFFIX}"
        unkey.ratelimit.limit(namespace=namespace, identifier="x", limit=1, duration=MINUTE)
        forbidden_calls: list[tuple[str, Callable[[], Any]]] = [
            (
                "createIdentity",
                lambda: limited.identities.create_identity(external_id=namespace, retries=NO_RETRY),
            ),
            ("listIdentities", lambda: limited.identities.list_identities(retries=NO_RETRY)),
            (
                "ratelimit.limit",
                lambda: limited.ratelimit.limit(
                    namespace=namespace, identifier="x", limit=1, duration=MINUTE, retries=NO_RETRY
                ),
            ),
            (
                "setOverride",
                lambda: limited.ratelimit.set_override(
                    namespace=namespace, identifier="x", limit=1, duration=MINUTE, retries=NO_RETRY
                ),
            ),
        ]
        # …nor permissions and roles, nor what a key holds.
        rbac_slug = f"sdkpy{SUFFIX}.forbidden"
        rbac_role = f"sdkpy-forbidden-{SUFFIX}"
        unkey.permissions.create_role(name=rbac_role, permissions=[rbac_slug])
        rbac_key = unkey.keys.create_key(api_id=api_id, prefix=PREFIX).data
        key_id = rbac_key.key_id
        forbidden_calls += [
            (
                "createPermission",
                lambda: limited.permissions.create_permission(
                    name="x", slug=f"{rbac_slug}.2", retries=NO_RETRY
                ),
            ),
            (
                "getPermission",
                lambda: limited.permissions.get_permission(permission=rbac_slug, retries=NO_RETRY),
            ),
            ("listPermissions", lambda: limited.permissions.list_permissions(retries=NO_RETRY)),
            (
                "deletePermission",
                lambda: limited.permissions.delete_permission(
                    permission=rbac_slug, retries=NO_RETRY
                ),
            ),
            (
                "updatePermission",
                lambda: limited.permissions.update_permission(
                    permission=rbac_slug, slug=f"{rbac_slug}.renamed", retries=NO_RETRY
                ),
            ),
            (
                "createRole",
                lambda: limited.permissions.create_role(name=f"{rbac_role}-2", retries=NO_RETRY),
            ),
            ("getRole", lambda: limited.permissions.get_role(role=rbac_role, retries=NO_RETRY)),
            ("listRoles", lambda: limited.permissions.list_roles(retries=NO_RETRY)),
            (
                "deleteRole",
                lambda: limited.permissions.delete_role(role=rbac_role, retries=NO_RETRY),
            ),
            (
                "updateRole",
                lambda: limited.permissions.update_role(
                    role=rbac_role, name=f"{rbac_role}-renamed", retries=NO_RETRY
                ),
            ),
            (
                "setRolePermissions",
                lambda: limited.permissions.set_role_permissions(
                    request={"role": rbac_role, "permissions": []}, retries=NO_RETRY
                ),
            ),
            (
                "addPermissions",
                lambda: limited.keys.add_permissions(
                    key_id=key_id, permissions=[rbac_slug], retries=NO_RETRY
                ),
            ),
            (
                "removePermissions",
                lambda: limited.keys.remove_permissions(
                    key_id=key_id, permissions=[rbac_slug], retries=NO_RETRY
                ),
            ),
            (
                "setPermissions",
                lambda: limited.keys.set_permissions(
                    key_id=key_id, permissions=[], retries=NO_RETRY
                ),
            ),
            (
                "addRoles",
                lambda: limited.keys.add_roles(key_id=key_id, roles=[rbac_role], retries=NO_RETRY),
            ),
            (
                "setRoles",
                lambda: limited.keys.set_roles(key_id=key_id, roles=[], retries=NO_RETRY),
            ),
        ]
        for what, call in forbidden_calls:
            try:
                e = expect_error(call, errors.ForbiddenErrorResponse, 403)
            except AssertionError as failure:
                raise AssertionError(f"{what}: {failure}") from failure
            eq(e.data.error.status, 403, f"{what}: 403 error.status")
        # Nothing changed.
        eq(
            [p["slug"] for p in get_role(rbac_role)["permissions"]],
            [rbac_slug],
            "the role after forbidden changes",
        )
        assert_holds(api_id, key_id, rbac_key.key, [], [], "after forbidden changes")

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


def root_keys_create() -> None:
    api_id = new_api("root-create")
    name = f"sdkpy-root-create-{SUFFIX}"
    granted = ["api.*.create_api", "api.*.read_api"]
    before = now_ms()
    created = unkey.root_keys.create_key(permissions=granted, name=name)
    after = now_ms()
    request_id(created.meta)
    key_id, key = created.data.key_id, created.data.key
    check(key_id.startswith("rootkey_") and key_id[8:].isalnum(), f"root keyId format: {key_id}")
    key_format(key, ROOT_PREFIX)
    entry = root_key_entry(key_id)
    eq(
        root_key_dict(entry),
        {"keyId": key_id, "name": name, "enabled": True, "expires": None, "permissions": granted},
        "the new key in listKeys",
    )
    check(
        before - 1000 <= entry.created_at <= after + 1000,
        f"createdAt {entry.created_at} not within [{before}, {after}]",
    )

    # The key works at once, for what it was given and for nothing else.
    with root_client(key) as child:
        api_name = f"sdkpy-by-root-child-{SUFFIX}"
        made = child.apis.create_api(name=api_name)
        eq(unkey.apis.get_api(api_id=made.data.api_id).data.name, api_name, "its new API")
        reads_api(child, api_id, "the new key")
        refused: list[tuple[str, Callable[[], Any]]] = [
            ("api.*.create_key", lambda: child.keys.create_key(api_id=api_id, retries=NO_RETRY)),
            ("api.*.delete_api", lambda: child.apis.delete_api(api_id=api_id, retries=NO_RETRY)),
            (
                "identity.*.read_identity",
                lambda: child.identities.list_identities(retries=NO_RETRY),
            ),
            (
                "rbac.*.create_role",
                lambda: child.permissions.create_role(
                    name=f"sdkpy-root-child-{SUFFIX}", retries=NO_RETRY
                ),
            ),
            # …nor hand out more than it holds.
            (
                "api.*.create_key",
                lambda: child.root_keys.create_key(
                    permissions=["api.*.read_api", "api.*.create_key"], retries=NO_RETRY
                ),
            ),
        ]
        for permission, call in refused:
            missing_permission(call, permission)
    eq(unkey.apis.get_api(api_id=api_id).data.id, api_id, "the API the key could not delete")

    # Without a name, with an expiry (null counts as none for a caller that does not expire).
    expires = now_ms() + HOUR
    dated = unkey.root_keys.create_key(permissions=["api.*.read_api"], expires=expires).data
    undated = unkey.root_keys.create_key(permissions=["api.*.read_api"], expires=None).data
    check(dated.key != key and dated.key_id != key_id, "a second root key is another")
    for k, want in ((dated, expires), (undated, None)):
        eq(
            root_key_dict(root_key_entry(k.key_id)),
            {
                "keyId": k.key_id,
                "name": None,
                "enabled": True,
                "expires": want,
                "permissions": ["api.*.read_api"],
            },
            f"a key without a name, expires {want}",
        )

    # 400 with errors[] naming the field; nothing is created.
    refused_name = f"sdkpy-root-refused-{SUFFIX}"
    invalid: list[tuple[str, dict]] = [
        ("permissions", {"permissions": []}),
        ("permissions", {"permissions": ["api.*.read_api", "api.*.fly"]}),
        ("permissions", {"permissions": ["apis.*.read_api"]}),
        ("permissions", {"permissions": ["api.read_api"]}),
        ("expires", {"permissions": ["api.*.read_api"], "expires": now_ms() - MINUTE}),
        ("name", {"permissions": ["api.*.read_api"], "name": ""}),
    ]
    for field, request in invalid:
        bad = expect_error(
            lambda request=request: unkey.root_keys.create_key(
                **({"name": refused_name} | request), retries=NO_RETRY
            ),
            errors.BadRequestErrorResponse,
            400,
        )
        error_location(bad, field)
    eq(
        [k.key_id for k in root_keys_listed() if k.name == refused_name],
        [],
        "root keys created by refused calls",
    )


def root_keys_grant_only_held() -> None:
    api_id = new_api("root-grant")
    other_api_id = new_api("root-grant-other")
    refused_name = f"sdkpy-root-ungranted-{SUFFIX}"
    with root_client(LIMITED_ROOT_KEY) as limited:
        # The limited key holds only api.*.read_api.
        for permissions, missing in [
            (["api.*.create_api"], "api.*.create_api"),
            (["api.*.read_api", "api.*.create_api"], "api.*.create_api"),
            (["identity.*.read_identity"], "identity.*.read_identity"),
        ]:
            missing_permission(
                lambda permissions=permissions: limited.root_keys.create_key(
                    permissions=permissions, name=refused_name, retries=NO_RETRY
                ),
                missing,
            )
        same = limited.root_keys.create_key(
            permissions=["api.*.read_api"], name=f"sdkpy-root-granted-{SUFFIX}"
        )
        request_id(same.meta)
        key_format(same.data.key, ROOT_PREFIX)
        # A permission for one API is within `api.*.read_api` too.
        narrow = limited.root_keys.create_key(permissions=[f"api.{api_id}.read_api"]).data
    eq(
        [k.key_id for k in root_keys_listed() if k.name == refused_name],
        [],
        "root keys created by refused calls",
    )
    eq(root_key_entry(same.data.key_id).permissions, ["api.*.read_api"], "the granted key")

    with root_client(same.data.key) as child:
        reads_api(child, api_id, "a key granted by the limited key")
        reads_api(child, other_api_id, "a key granted by the limited key")
        missing_permission(
            lambda: child.apis.create_api(name=f"sdkpy-ungranted-{SUFFIX}", retries=NO_RETRY),
            "api.*.create_api",
        )
    with root_client(narrow.key) as child:
        reads_api(child, api_id, "a key for one API")
        # Another API looks to it as if it did not exist.
        expect_error(
            lambda: child.apis.get_api(api_id=other_api_id, retries=NO_RETRY),
            errors.NotFoundErrorResponse,
            404,
        )
        missing_permission(
            lambda: child.root_keys.create_key(permissions=["api.*.read_api"], retries=NO_RETRY),
            "api.*.read_api",
        )
        granted = child.root_keys.create_key(permissions=[f"api.{api_id}.read_api"]).data
    with root_client(granted.key) as grandchild:
        reads_api(grandchild, api_id, "a key granted by a key for one API")


def root_keys_list() -> None:
    tag = f"sdkpy-root-list-{SUFFIX}"
    scoped = f"api.api_{SUFFIX}.read_api"
    specs: list[tuple[list[str], int | None, bool]] = [
        (["api.*.read_api"], None, True),
        (["api.*.create_api", "api.*.read_api"], None, True),
        (["identity.*.read_identity"], now_ms() + HOUR, True),
        (["api.*.read_api"], now_ms() + DAY, False),
        ([scoped], None, True),
    ]
    ours: dict[str, tuple[str, dict]] = {}  # keyId → (secret, expected entry)
    before = now_ms()
    for i, (permissions, expires, enabled) in enumerate(specs):
        res = unkey.root_keys.create_key(
            permissions=permissions, name=f"{tag}-{i}", expires=expires
        )
        key_id = res.data.key_id
        if not enabled:
            unkey.root_keys.update_key(key_id=key_id, enabled=False)
        ours[key_id] = (
            res.data.key,
            {
                "keyId": key_id,
                "name": f"{tag}-{i}",
                "enabled": enabled,
                "expires": expires,
                "permissions": sorted(permissions),
            },
        )
    after = now_ms()

    # The auto-pager in pages of 2, in key id order.
    seen: list[Any] = []
    sizes: list[int] = []
    has_more: list[bool] = []
    page = unkey.root_keys.list_keys(limit=2)
    while page is not None:
        check(len(sizes) < 1_000, "the auto-pager does not terminate")
        request_id(page.result.meta)
        sizes.append(len(page.result.data))
        has_more.append(page.result.pagination.has_more)
        seen.extend(page.result.data)
        page = page.next()
    check(all(s == 2 for s in sizes[:-1]) and 1 <= sizes[-1] <= 2, f"page sizes {sizes}")
    eq(has_more, [True] * (len(sizes) - 1) + [False], "hasMore per page")
    ids = [k.key_id for k in seen]
    eq(ids, sorted(set(ids)), "listed once each, by key id")
    manual: list[str] = []
    cursor: str | None = None
    for _ in range(1_000):
        p = unkey.root_keys.list_keys(limit=2, cursor=cursor)
        assert p is not None
        manual.extend(k.key_id for k in p.result.data)
        cursor = p.result.pagination.cursor
        if not cursor:
            break
    eq(manual, ids, "walking by hand with the cursor")

    # Each key as created; `start` and `end` are fragments of the secret, never all of it.
    for key_id, (secret, want) in ours.items():
        entry = next((k for k in seen if k.key_id == key_id), None)
        check(entry is not None, f"{want['name']} is not listed")
        eq(root_key_dict(entry), want, f"listed {want['name']}")
        check(entry.start.startswith(ROOT_PREFIX + "_"), f"start {entry.start!r}")
        check(entry.end != "", f"{want['name']}: end is empty")
        check(shows(entry, secret), f"{want['name']}: start/end are not the secret's")
        check(
            len(entry.start) + len(entry.end) < len(secret),
            f"{want['name']}: start and end reveal the whole secret",
        )
        check(
            before - 1000 <= entry.created_at <= after + 1000,
            f"createdAt {entry.created_at} not within [{before}, {after}]",
        )
        eq(entry.last_used_at, 0, f"{want['name']}: lastUsedAt of a key never used")
    # The tour's key (which holds everything) and the limited key are listed too.
    tour = listed_as(ROOT_KEY, seen)
    eq(len(tour), 1, "times the tour's root key is listed")
    check(
        {"api.*.create_api", "identity.*.read_identity", "rbac.*.update_role"}
        <= set(tour[0].permissions),
        f"the tour's root key's permissions: {tour[0].permissions}",
    )
    limited_entries = listed_as(LIMITED_ROOT_KEY, seen)
    eq(len(limited_entries), 1, "times the limited root key is listed")
    eq(limited_entries[0].permissions, ["api.*.read_api"], "the limited key's permissions")

    # On the wire: exactly these fields, and no secret anywhere.
    raw: list[dict] = []
    cursor = None
    for _ in range(1_000):
        body = post_raw(
            "/v2/rootKeys.listKeys", {"limit": 100} | ({"cursor": cursor} if cursor else {})
        )
        raw.extend(body["data"])
        cursor = body["pagination"].get("cursor")
        if not cursor:
            break
    eq([k["keyId"] for k in raw], ids, "the listing without the SDK")
    fields = {
        "keyId",
        "name",
        "start",
        "end",
        "enabled",
        "createdAt",
        "lastUsedAt",
        "expires",
        "permissions",
    }
    for k in raw:
        eq(set(k), fields, f"fields of {k['keyId']}")
    text = json.dumps(raw)
    for secret in [ROOT_KEY, LIMITED_ROOT_KEY] + [s for s, _ in ours.values()]:
        check(secret not in text, f"the listing holds the secret {secret[:12]}…")

    # The limited key sees only keys within its own permissions: itself, and ours that hold
    # only api.*.read_api or a part of it, disabled or not; never the tour's root key.
    with root_client(LIMITED_ROOT_KEY) as limited:
        visible = root_keys_listed(limited, limit=2)
    for k in visible:
        check(
            all(re.fullmatch(r"api\.(\*|[A-Za-z0-9_]+)\.read_api", p) for p in k.permissions),
            f"the limited key sees {k.key_id} holding {k.permissions}",
        )
    eq(listed_as(ROOT_KEY, visible), [], "the limited key sees the tour's root key")
    eq(len(listed_as(LIMITED_ROOT_KEY, visible)), 1, "the limited key sees itself")
    eq(
        sorted(k.name for k in visible if k.key_id in ours),
        [f"{tag}-0", f"{tag}-3", f"{tag}-4"],
        "of this section's keys the limited key sees",
    )
    eq(
        [k.key_id for k in visible],
        [k for k in ids if k in {v.key_id for v in visible}],
        "the limited key's listing, by key id",
    )

    for limit in (0, 101):
        bad = expect_error(
            lambda limit=limit: unkey.root_keys.list_keys(limit=limit, retries=NO_RETRY),
            errors.BadRequestErrorResponse,
            400,
        )
        error_location(bad, "limit")


def root_keys_update() -> None:
    api_id = new_api("root-update")
    name = f"sdkpy-root-update-{SUFFIX}"
    created = unkey.root_keys.create_key(permissions=["api.*.read_api"], name=name).data
    key_id = created.key_id
    expected = {
        "keyId": key_id,
        "name": name,
        "enabled": True,
        "expires": None,
        "permissions": ["api.*.read_api"],
    }
    with root_client(created.key) as child:
        reads_api(child, api_id, "before updateKey")

        # A new name; null removes it; omitted fields stay.
        res = unkey.root_keys.update_key(key_id=key_id, name="renamed")
        request_id(res.meta)
        eq(res.data.model_dump(), {}, "updateKey data")
        expected["name"] = "renamed"
        eq(root_key_dict(root_key_entry(key_id)), expected, "a new name")
        unkey.root_keys.update_key(key_id=key_id, name=None)
        expected["name"] = None
        eq(root_key_dict(root_key_entry(key_id)), expected, "name: null")
        reads_api(child, api_id, "after a new name")

        # Disabled: 401 at once, still listed; enabled again: works at once.
        unkey.root_keys.update_key(key_id=key_id, enabled=False)
        assert_unauthorized(child, api_id)
        expected["enabled"] = False
        eq(root_key_dict(root_key_entry(key_id)), expected, "disabled")
        unkey.root_keys.update_key(key_id=key_id, enabled=True)
        expected["enabled"] = True
        reads_api(child, api_id, "enabled again")
        eq(root_key_dict(root_key_entry(key_id)), expected, "enabled again")

        # New permissions replace the old ones at once.
        unkey.root_keys.update_key(key_id=key_id, permissions=["api.*.create_api"])
        expected["permissions"] = ["api.*.create_api"]
        eq(root_key_dict(root_key_entry(key_id)), expected, "new permissions")
        api_name = f"sdkpy-root-updated-{SUFFIX}"
        made = child.apis.create_api(name=api_name).data.api_id
        eq(unkey.apis.get_api(api_id=made).data.name, api_name, "an API made with the new one")
        missing_permission(
            lambda: child.apis.get_api(api_id=api_id, retries=NO_RETRY), "api.*.read_api"
        )

    # The limited key manages only keys within its permissions: a stronger one (the tour's own
    # key, or the one above) looks as if it did not exist, and it cannot grant more.
    weak = unkey.root_keys.create_key(
        permissions=["api.*.read_api"], name=f"sdkpy-root-weak-{SUFFIX}"
    ).data
    with root_client(LIMITED_ROOT_KEY) as limited:
        for target in (tour_root_key_id(), key_id):
            expect_error(
                lambda target=target: limited.root_keys.update_key(
                    key_id=target, name="taken over", retries=NO_RETRY
                ),
                errors.NotFoundErrorResponse,
                404,
            )
        limited.root_keys.update_key(key_id=weak.key_id, name="renamed by the limited key")
        missing_permission(
            lambda: limited.root_keys.update_key(
                key_id=weak.key_id,
                permissions=["api.*.read_api", "api.*.create_api"],
                retries=NO_RETRY,
            ),
            "api.*.create_api",
        )
    eq(root_key_dict(root_key_entry(key_id)), expected, "a key the limited key could not update")
    eq(
        root_key_dict(root_key_entry(weak.key_id)),
        {
            "keyId": weak.key_id,
            "name": "renamed by the limited key",
            "enabled": True,
            "expires": None,
            "permissions": ["api.*.read_api"],
        },
        "a key the limited key updated",
    )

    # Unknown → 404; invalid → 400; nothing changes.
    nf = expect_error(
        lambda: unkey.root_keys.update_key(
            key_id="rootkey_doesnotexist0000", name="x", retries=NO_RETRY
        ),
        errors.NotFoundErrorResponse,
        404,
    )
    eq(nf.data.error.status, 404, "404 error.status")
    invalid: list[tuple[str, dict]] = [
        ("permissions", {"permissions": []}),
        ("permissions", {"permissions": ["api.*.fly"]}),
        ("name", {"name": ""}),
    ]
    for field, change in invalid:
        bad = expect_error(
            lambda change=change: unkey.root_keys.update_key(
                key_id=key_id, **change, retries=NO_RETRY
            ),
            errors.BadRequestErrorResponse,
            400,
        )
        error_location(bad, field)
    eq(root_key_dict(root_key_entry(key_id)), expected, "after refused updates")


def root_keys_reroll() -> None:
    api_id = new_api("root-reroll")
    name = f"sdkpy-root-reroll-{SUFFIX}"
    granted = ["api.*.create_api", "api.*.read_api"]
    first = unkey.root_keys.create_key(permissions=granted, name=name).data

    # A grace period: a new key with the same name, permissions and state; the old one works
    # until the grace period ends.
    grace = MINUTE
    before = now_ms()
    res = unkey.root_keys.reroll_key(key_id=first.key_id, expiration=grace)
    after = now_ms()
    request_id(res.meta)
    second = res.data
    check(second.key_id != first.key_id, "rerollKey returns a new keyId")
    check(second.key != first.key, "rerollKey returns a new key")
    check(second.key_id.startswith("rootkey_"), f"root keyId format: {second.key_id}")
    key_format(second.key, ROOT_PREFIX)
    eq(
        root_key_dict(root_key_entry(second.key_id)),
        {
            "keyId": second.key_id,
            "name": name,
            "enabled": True,
            "expires": None,
            "permissions": granted,
        },
        "the new key",
    )
    old_expires = root_key_entry(first.key_id).expires
    check(
        isinstance(old_expires, int) and before + grace - 1000 <= old_expires <= after + grace,
        f"old key expires {old_expires} not within [{before + grace}, {after + grace}]",
    )
    for key, via in ((first.key, "the old key in its grace period"), (second.key, "the new key")):
        with root_client(key) as client:
            reads_api(client, api_id, via)

    # null keeps the old key's expiry (here none): both keep working.
    third = unkey.root_keys.reroll_key(key_id=second.key_id, expiration=None).data
    eq(root_key_entry(second.key_id).expires, None, "expiration null: the old key's expiry")
    for key, via in ((second.key, "the old key, kept"), (third.key, "the third key")):
        with root_client(key) as client:
            reads_api(client, api_id, via)

    # 0 ends the old key now.
    fourth = unkey.root_keys.reroll_key(key_id=third.key_id, expiration=0).data
    with root_client(third.key) as client:
        unauthorized_within_a_second(client, api_id, "the old key after expiration 0")
    with root_client(fourth.key) as client:
        reads_api(client, api_id, "the fourth key")
        api_name = f"sdkpy-root-rerolled-{SUFFIX}"
        made = client.apis.create_api(name=api_name).data.api_id
        eq(unkey.apis.get_api(api_id=made).data.name, api_name, "the new key keeps create_api")

    # A grace period never extends an expiry; the new key has the old one's.
    soon = now_ms() + 10 * MINUTE
    dated = unkey.root_keys.create_key(permissions=["api.*.read_api"], expires=soon).data
    dated_new = unkey.root_keys.reroll_key(key_id=dated.key_id, expiration=HOUR).data
    eq(root_key_entry(dated.key_id).expires, soon, "the old key's expiry after a long grace")
    eq(root_key_entry(dated_new.key_id).expires, soon, "the new key's expiry")

    # The limited key cannot reroll a stronger key (the tour's own, or the newest above).
    with root_client(LIMITED_ROOT_KEY) as limited:
        for target in (tour_root_key_id(), fourth.key_id):
            expect_error(
                lambda target=target: limited.root_keys.reroll_key(
                    key_id=target, expiration=None, retries=NO_RETRY
                ),
                errors.NotFoundErrorResponse,
                404,
            )
    eq(
        [k.key_id for k in root_keys_listed() if k.name == name],
        [first.key_id, second.key_id, third.key_id, fourth.key_id],
        "the keys this section rerolled",
    )
    expect_error(
        lambda: unkey.root_keys.reroll_key(
            key_id="rootkey_doesnotexist0000", expiration=0, retries=NO_RETRY
        ),
        errors.NotFoundErrorResponse,
        404,
    )


def root_keys_delete() -> None:
    api_id = new_api("root-delete")
    doomed = unkey.root_keys.create_key(
        permissions=["api.*.read_api"], name=f"sdkpy-root-doomed-{SUFFIX}"
    ).data
    with root_client(doomed.key) as client:
        reads_api(client, api_id, "before deleteKey")
        res = unkey.root_keys.delete_key(key_id=doomed.key_id)
        request_id(res.meta)
        eq(res.data.model_dump(), {}, "deleteKey data")
        assert_unauthorized(client, api_id)
    check(doomed.key_id not in [k.key_id for k in root_keys_listed()], "a deleted key is listed")

    # A deleted key is unknown to every call.
    gone: list[Callable[[], Any]] = [
        lambda: unkey.root_keys.delete_key(key_id=doomed.key_id, retries=NO_RETRY),
        lambda: unkey.root_keys.update_key(key_id=doomed.key_id, enabled=True, retries=NO_RETRY),
        lambda: unkey.root_keys.reroll_key(key_id=doomed.key_id, expiration=0, retries=NO_RETRY),
        lambda: unkey.root_keys.delete_key(key_id="rootkey_doesnotexist0000", retries=NO_RETRY),
    ]
    for call in gone:
        e = expect_error(call, errors.NotFoundErrorResponse, 404)
        eq(e.data.error.status, 404, "404 error.status")

    # The limited key deletes only keys within its permissions.
    strong = unkey.root_keys.create_key(permissions=["api.*.read_api", "api.*.create_api"]).data
    weak = unkey.root_keys.create_key(permissions=["api.*.read_api"]).data
    with root_client(LIMITED_ROOT_KEY) as limited:
        for target in (tour_root_key_id(), strong.key_id):
            expect_error(
                lambda target=target: limited.root_keys.delete_key(key_id=target, retries=NO_RETRY),
                errors.NotFoundErrorResponse,
                404,
            )
        limited.root_keys.delete_key(key_id=weak.key_id)
    listed = [k.key_id for k in root_keys_listed()]
    check(strong.key_id in listed, "a key the limited key could not delete is gone")
    check(weak.key_id not in listed, "a key the limited key deleted is listed")
    with root_client(strong.key) as client:
        reads_api(client, api_id, "a key the limited key could not delete")
    with root_client(weak.key) as client:
        assert_unauthorized(client, api_id)


def root_keys_expiring_caller() -> None:
    api_id = new_api("root-expiring")
    own = now_ms() + HOUR
    granted = ["api.*.create_api", "api.*.read_api"]
    parent = unkey.root_keys.create_key(
        permissions=granted, name=f"sdkpy-root-expiring-{SUFFIX}", expires=own
    ).data
    eq(root_key_entry(parent.key_id).expires, own, "the expiring key's expiry")
    refused_name = f"sdkpy-root-outliving-{SUFFIX}"
    with root_client(parent.key) as expiring:
        reads_api(expiring, api_id, "an expiring key")
        # Its keys must expire, and no later than it does.
        refused: list[Callable[[], Any]] = [
            lambda: expiring.root_keys.create_key(
                permissions=["api.*.read_api"], name=refused_name, retries=NO_RETRY
            ),
            lambda: expiring.root_keys.create_key(
                permissions=["api.*.read_api"], name=refused_name, expires=None, retries=NO_RETRY
            ),
            lambda: expiring.root_keys.create_key(
                permissions=["api.*.read_api"],
                name=refused_name,
                expires=own + 1,
                retries=NO_RETRY,
            ),
            lambda: expiring.root_keys.create_key(
                permissions=["api.*.read_api"],
                name=refused_name,
                expires=now_ms() - MINUTE,
                retries=NO_RETRY,
            ),
        ]
        for call in refused:
            error_location(expect_error(call, errors.BadRequestErrorResponse, 400), "expires")
        same = expiring.root_keys.create_key(permissions=granted, expires=own).data
        earlier = expiring.root_keys.create_key(
            permissions=["api.*.read_api"], expires=own - MINUTE
        ).data
    eq(
        [k.key_id for k in root_keys_listed() if k.name == refused_name],
        [],
        "root keys created by refused calls",
    )
    eq(root_key_entry(same.key_id).expires, own, "a key expiring with its creator")
    eq(root_key_entry(earlier.key_id).expires, own - MINUTE, "a key expiring before it")
    with root_client(same.key) as child:
        api_name = f"sdkpy-root-expiring-child-{SUFFIX}"
        made = child.apis.create_api(name=api_name).data.api_id
        eq(unkey.apis.get_api(api_id=made).data.name, api_name, "an API made by its key")
    with root_client(earlier.key) as child:
        reads_api(child, api_id, "a key expiring before its creator")


# ------------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------
# analytics


def analytics_get_verifications() -> None:
    api_id = new_api("analytics")
    created = unkey.keys.create_key(api_id=api_id)
    for _ in range(3):
        eq(code(verify(created.data.key)), "VALID", "verify before analytics")
    query = (
        "SELECT outcome, count() AS n FROM key_verifications_v1 "
        f"WHERE key_id = '{created.data.key_id}' GROUP BY outcome"
    )
    # Verifications are written in batches; wait for this one.
    deadline = time.monotonic() + 15
    while True:
        res = unkey.analytics.get_verifications(query=query)
        request_id(res.meta)
        check(isinstance(res.data, list), "data is a list of rows")
        if res.data and res.data[0].get("n") == 3:
            eq(res.data, [{"outcome": "VALID", "n": 3}], "rows of getVerifications")
            break
        check(time.monotonic() < deadline, f"analytics counted {res.data}, not 3")
        time.sleep(0.1)
    refused = expect_error(
        lambda: unkey.analytics.get_verifications(query="SELECT * FROM keys"),
        errors.BadRequestErrorResponse,
        400,
    )
    check("unknown table `keys`" in refused.data.error.detail, "the refusal names the table")


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
    ("identities.createIdentity + getIdentity", identities_create_and_get),
    ("identities.listIdentities", identities_list),
    ("identities.updateIdentity", identities_update),
    ("identities.deleteIdentity", identities_delete),
    ("keys: externalId + ratelimits", key_identities_and_limits),
    ("keys.verifyKey with key rate limits", verify_key_limits),
    ("keys.verifyKey with identity rate limits", verify_identity_limits),
    ("ratelimit.limit", ratelimit_limit),
    ("ratelimit.multiLimit", ratelimit_multi_limit),
    ("ratelimit overrides", ratelimit_overrides),
    ("permissions.createPermission + getPermission", permissions_create_and_get),
    ("permissions.listPermissions", permissions_list),
    ("permissions.deletePermission", permissions_delete),
    ("permissions.updatePermission", permissions_update),
    ("permissions.createRole + getRole", roles_create_and_get),
    ("permissions.listRoles", roles_list),
    ("permissions.deleteRole", roles_delete),
    ("permissions.setRolePermissions", role_permissions),
    ("permissions.updateRole", roles_update),
    ("keys.add/remove/setPermissions", key_permissions),
    ("keys.add/remove/setRoles", key_roles),
    ("keys: permissions + roles on create/update/reroll", key_access_on_create_and_update),
    ("keys.verifyKey permission queries", verify_permission_queries),
    ("keys.verifyKey permission query syntax", verify_permission_query_syntax),
    ("error classes", error_classes),
    ("rootKeys.createKey", root_keys_create),
    ("rootKeys: a root key grants only what it holds", root_keys_grant_only_held),
    ("rootKeys.listKeys", root_keys_list),
    ("rootKeys.updateKey", root_keys_update),
    ("rootKeys.rerollKey", root_keys_reroll),
    ("rootKeys: an expiring root key's keys", root_keys_expiring_caller),
    ("rootKeys.deleteKey", root_keys_delete),
    ("analytics.getVerifications", analytics_get_verifications),
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
