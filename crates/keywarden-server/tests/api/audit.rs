//! The audit log over HTTP: every committed admin change leaves exactly one entry (plus one
//! for each object it created on the way), with the request's id and address and without
//! secrets; failed calls leave none; `audit.listLogs` filters, pages, stays in its workspace
//! and needs `audit.*.read_logs`.

use keywarden_core::store::RootKeyStore;
use keywarden_core::time::Clock;
use serde_json::{Value, json};

use crate::helpers::{ROOT_KEY, Reply, TestApp, spawn_app};

/// Every entry of the workspace the caller's root key belongs to, newest first.
async fn all_entries(app: &TestApp, root_key: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut body = json!({ "limit": 100 });
        if let Some(cursor) = &cursor {
            body["cursor"] = json!(cursor);
        }
        let reply = app.call_as(root_key, "audit.listLogs", body).await;
        entries.extend(reply.ok().as_array().unwrap().iter().cloned());
        match reply.body["pagination"].get("cursor") {
            Some(next) => cursor = Some(next.as_str().unwrap().to_owned()),
            None => return entries,
        }
    }
}

fn request_id(reply: &Reply) -> String {
    reply.body["meta"]["requestId"].as_str().unwrap().to_owned()
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_tour_of_admin_calls_is_recorded_exactly_and_without_secrets() {
    let app = spawn_app().await;
    // The first start recorded its own root key, as the system.
    let first = all_entries(&app, ROOT_KEY).await;
    let before = first.len();
    let bootstrap = first.last().unwrap();
    assert_eq!(bootstrap["action"], "root_key.create");
    assert_eq!(bootstrap["actor"], json!({ "type": "system" }));
    // (action(s) the call records, its reply)
    let mut calls: Vec<(Vec<&str>, Reply)> = Vec::new();

    let api = app
        .call("apis.createApi", json!({ "name": "payments" }))
        .await;
    let api_id = api.ok()["apiId"].as_str().unwrap().to_owned();
    calls.push((vec!["api.create"], api));

    // The first use of a slug and of an external id creates them: one entry each, under
    // the same request.
    let created = app
        .call(
            "keys.createKey",
            json!({ "apiId": api_id, "name": "first", "externalId": "cust_1",
                    "permissions": ["docs.read"], "credits": { "remaining": 10 } }),
        )
        .await;
    let key_id = created.ok()["keyId"].as_str().unwrap().to_owned();
    let plaintext = created.ok()["key"].as_str().unwrap().to_owned();
    calls.push((
        vec!["permission.create", "identity.create", "key.create"],
        created,
    ));

    let steps: Vec<(&str, &str, Value)> = vec![
        (
            "key.update",
            "keys.updateKey",
            json!({ "keyId": key_id, "name": "renamed" }),
        ),
        (
            "key.credits.update",
            "keys.updateCredits",
            json!({ "keyId": key_id, "operation": "increment", "value": 5 }),
        ),
        (
            "key.permissions.add",
            "keys.addPermissions",
            json!({ "keyId": key_id, "permissions": ["docs.read"] }),
        ),
        (
            "role.create",
            "permissions.createRole",
            json!({ "name": "reader", "permissions": ["docs.read"] }),
        ),
        (
            "key.roles.set",
            "keys.setRoles",
            json!({ "keyId": key_id, "roles": ["reader"] }),
        ),
        (
            "identity.create",
            "identities.createIdentity",
            json!({ "externalId": "cust_2" }),
        ),
        (
            "identity.update",
            "identities.updateIdentity",
            json!({ "identity": "cust_2", "meta": { "tier": "gold" } }),
        ),
    ];
    for (action, operation, body) in steps {
        let reply = app.call(operation, body).await;
        reply.ok();
        calls.push((vec![action], reply));
    }

    let override_set = app
        .call(
            "ratelimit.setOverride",
            json!({ "namespace": "search", "identifier": "user_*", "limit": 5, "duration": 60000 }),
        )
        .await;
    override_set.ok();
    calls.push((
        vec!["ratelimit.namespace.create", "ratelimit.override.set"],
        override_set,
    ));

    let rerolled = app
        .call(
            "keys.rerollKey",
            json!({ "keyId": key_id, "expiration": 0 }),
        )
        .await;
    let new_plaintext = rerolled.ok()["key"].as_str().unwrap().to_owned();
    let new_key_id = rerolled.ok()["keyId"].as_str().unwrap().to_owned();
    calls.push((vec!["key.reroll"], rerolled));

    let root = app
        .call(
            "rootKeys.createKey",
            json!({ "name": "ci", "permissions": ["api.*.read_api"] }),
        )
        .await;
    let root_secret = root.ok()["key"].as_str().unwrap().to_owned();
    calls.push((vec!["root_key.create"], root));

    let deleted = app
        .call("keys.deleteKey", json!({ "keyId": new_key_id }))
        .await;
    deleted.ok();
    calls.push((vec!["key.delete"], deleted));
    let api_deleted = app.call("apis.deleteApi", json!({ "apiId": api_id })).await;
    api_deleted.ok();
    calls.push((vec!["api.delete"], api_deleted));

    let mut entries = all_entries(&app, ROOT_KEY).await;
    entries.truncate(entries.len() - before);
    entries.reverse();
    let expected: Vec<&str> = calls.iter().flat_map(|(a, _)| a.clone()).collect();
    assert_eq!(actions(&entries), expected);

    let bootstrap_key = app
        .store
        .root_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.digest == keywarden_core::digest::KeyDigest::of(ROOT_KEY))
        .unwrap()
        .id;
    let mut at = 0;
    for (call_actions, reply) in &calls {
        for _ in call_actions {
            let entry = &entries[at];
            at += 1;
            assert_eq!(entry["requestId"], request_id(reply), "{entry}");
            assert_eq!(entry["actor"]["type"], "root_key");
            assert_eq!(entry["actor"]["id"], bootstrap_key.as_str());
            assert_eq!(entry["clientIp"], "127.0.0.1");
            assert!(entry["time"].as_i64().unwrap() > 0);
        }
    }
    let key_create = &entries[3];
    assert_eq!(key_create["targets"][0]["id"], key_id.as_str());
    assert_eq!(key_create["changes"]["credits"], 10);
    assert_eq!(key_create["changes"]["externalId"], "cust_1");
    assert_eq!(entries[4]["changes"], json!({ "name": "renamed" }));
    assert_eq!(
        entries[5]["changes"],
        json!({ "operation": "increment", "value": 5 })
    );
    let reroll = entries
        .iter()
        .find(|e| e["action"] == "key.reroll")
        .unwrap();
    let reroll_targets: Vec<&str> = reroll["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        reroll_targets,
        vec![key_id.as_str(), new_key_id.as_str(), api_id.as_str()]
    );

    // No secret, and no hash of one, appears anywhere.
    let text = serde_json::to_string(&entries).unwrap();
    for secret in [
        &plaintext,
        &new_plaintext,
        &root_secret,
        &ROOT_KEY.to_owned(),
    ] {
        assert!(!text.contains(secret.as_str()), "a secret leaked");
        let hash = keywarden_core::digest::KeyDigest::of(secret).to_base64();
        assert!(!text.contains(&hash), "a hash leaked");
    }
}

#[tokio::test]
async fn failed_calls_leave_no_entry() {
    let app = spawn_app().await;
    let api_id = app.create_api("failures").await;
    app.call(
        "identities.createIdentity",
        json!({ "externalId": "taken" }),
    )
    .await
    .ok();
    let before = all_entries(&app, ROOT_KEY).await;

    app.call(
        "keys.createKey",
        json!({ "apiId": api_id, "byteLength": 1 }),
    )
    .await
    .err(400);
    app.call(
        "keys.updateKey",
        json!({ "keyId": "key_missing", "name": "x" }),
    )
    .await
    .err(404);
    app.call("apis.deleteApi", json!({ "apiId": "api_missing" }))
        .await
        .err(404);
    app.call(
        "identities.createIdentity",
        json!({ "externalId": "taken" }),
    )
    .await
    .err(409);
    app.call(
        "permissions.createRole",
        json!({ "name": "r", "permissions": [] }),
    )
    .await
    .ok();
    let before_role = all_entries(&app, ROOT_KEY).await.len();
    app.call(
        "permissions.createRole",
        json!({ "name": "r", "permissions": [] }),
    )
    .await
    .err(409);
    app.call(
        "ratelimit.deleteOverride",
        json!({ "namespace": "none", "identifier": "x" }),
    )
    .await
    .err(404);
    app.call("rootKeys.deleteKey", json!({ "keyId": "rootkey_missing" }))
        .await
        .err(404);

    let after = all_entries(&app, ROOT_KEY).await;
    assert_eq!(after.len(), before_role);
    assert_eq!(
        after.len(),
        before.len() + 1,
        "only the role created in between"
    );
    assert_eq!(after[1..], before[..]);
}

#[tokio::test]
async fn listing_filters_pages_to_the_end_and_validates() {
    let app = spawn_app().await;
    let api_id = app.create_api("filters").await;
    let t0 = app.clock.now().as_millis();
    let mut key_ids = Vec::new();
    for _ in 0..5 {
        app.clock.advance(1000);
        key_ids.push(app.create_key(&api_id, json!({})).await.0);
    }
    app.call("keys.deleteKey", json!({ "keyId": key_ids[0] }))
        .await
        .ok();

    let list = |body: Value| app.call("audit.listLogs", body);
    let creates = list(json!({ "action": "key.create" })).await;
    assert_eq!(creates.ok().as_array().unwrap().len(), 5);
    let about_first = list(json!({ "targetId": key_ids[0] })).await;
    assert_eq!(
        actions(about_first.ok().as_array().unwrap()),
        vec!["key.delete", "key.create"]
    );
    let windowed =
        list(json!({ "since": t0 + 2000, "until": t0 + 3000, "action": "key.create" })).await;
    let windowed = windowed.ok().as_array().unwrap().clone();
    assert_eq!(windowed.len(), 2);
    assert_eq!(windowed[0]["targets"][0]["id"], key_ids[2].as_str());
    let by_cli = list(json!({ "actorId": "cli" })).await;
    assert!(by_cli.ok().as_array().unwrap().is_empty());

    // Pages of 2 over the 5 creates, to a last page without a cursor.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut body = json!({ "action": "key.create", "limit": 2 });
        if let Some(cursor) = &cursor {
            body["cursor"] = json!(cursor);
        }
        let reply = list(body).await;
        pages += 1;
        seen.extend(
            reply
                .ok()
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["targets"][0]["id"].as_str().unwrap().to_owned()),
        );
        let pagination = &reply.body["pagination"];
        match pagination.get("cursor") {
            Some(next) => {
                assert_eq!(pagination["hasMore"], true);
                cursor = Some(next.as_str().unwrap().to_owned());
            }
            None => {
                assert_eq!(pagination["hasMore"], false);
                break;
            }
        }
        assert!(pages < 10);
    }
    assert_eq!(pages, 3);
    key_ids.reverse();
    assert_eq!(seen, key_ids, "newest first, each once");

    list(json!({ "limit": 0 })).await.invalid_at("body.limit");
    list(json!({ "limit": 101 })).await.invalid_at("body.limit");
    list(json!({ "action": "key.explode" }))
        .await
        .invalid_at("body.action");
    list(json!({ "since": 10, "until": 5 }))
        .await
        .invalid_at("body.until");
}

#[tokio::test]
async fn workspaces_see_only_their_own_log_and_reading_needs_the_permission() {
    let app = spawn_app().await;
    app.create_api("ours").await;
    let (_, other) = app.other_workspace().await;
    app.call_as(&other, "apis.createApi", json!({ "name": "theirs" }))
        .await
        .ok();

    let ours = all_entries(&app, ROOT_KEY).await;
    let theirs = all_entries(&app, &other).await;
    // Their first root key was installed as the CLI does it.
    assert_eq!(actions(&theirs), vec!["api.create", "root_key.create"]);
    assert!(
        ours.iter()
            .all(|e| e["workspaceId"] != theirs[0]["workspaceId"])
    );
    assert!(!ours.iter().any(|e| e["id"] == theirs[0]["id"]));

    let reader = app.root_key_with(&["api.*.read_api"]).await;
    app.call_as(&reader, "audit.listLogs", json!({}))
        .await
        .err(403);
    let auditor = app.root_key_with(&["audit.*.read_logs"]).await;
    let listed = app.call_as(&auditor, "audit.listLogs", json!({})).await;
    assert_eq!(listed.ok(), &json!(all_entries(&app, ROOT_KEY).await));
}
