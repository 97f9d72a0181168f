//! Workspaces are isolated: another workspace's ids behave exactly like ids that do not exist.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn another_workspace_sees_nothing_of_this_one() {
    let app = spawn_app().await;
    let api_id = app.create_api("tenant-a").await;
    let (key_id, key) = app
        .create_key(&api_id, json!({ "credits": { "remaining": 3 } }))
        .await;
    let (_, other) = app.other_workspace().await;
    let call = |op: &'static str, body: serde_json::Value| app.call_as(&other, op, body);

    call("apis.getApi", json!({ "apiId": api_id }))
        .await
        .err(404);
    call("apis.listKeys", json!({ "apiId": api_id }))
        .await
        .err(404);
    call("apis.deleteApi", json!({ "apiId": api_id }))
        .await
        .err(404);
    call("keys.createKey", json!({ "apiId": api_id }))
        .await
        .err(404);
    call("keys.getKey", json!({ "keyId": key_id }))
        .await
        .err(404);
    call("keys.whoami", json!({ "key": key })).await.err(404);
    call(
        "keys.updateKey",
        json!({ "keyId": key_id, "enabled": false }),
    )
    .await
    .err(404);
    call(
        "keys.updateCredits",
        json!({ "keyId": key_id, "operation": "set", "value": 99 }),
    )
    .await
    .err(404);
    call(
        "keys.rerollKey",
        json!({ "keyId": key_id, "expiration": 0 }),
    )
    .await
    .err(404);
    call("keys.deleteKey", json!({ "keyId": key_id }))
        .await
        .err(404);
    call(
        "keys.migrateKeys",
        json!({ "migrationId": "m_1", "apiId": api_id, "keys": [{ "hash": crate::helpers::hash_of("z") }] }),
    )
    .await
    .err(404);
    let verified = call("keys.verifyKey", json!({ "key": key })).await;
    assert_eq!(
        verified.ok(),
        &json!({ "valid": false, "code": "NOT_FOUND" })
    );

    // The key is untouched: same balance (the foreign verify spent nothing), still enabled.
    let data = app.verify(&key).await;
    assert_eq!(data["code"], "VALID");
    assert_eq!(data["credits"], 2);

    // The other workspace's own objects work and stay invisible here.
    let reply = call("apis.createApi", json!({ "name": "tenant-b" })).await;
    let their_api = reply.ok()["apiId"].as_str().unwrap().to_owned();
    app.call("apis.getApi", json!({ "apiId": their_api }))
        .await
        .err(404);
}

/// The answer with what varies per request taken out: the request id.
fn comparable(reply: &crate::helpers::Reply) -> (u16, serde_json::Value) {
    let mut body = reply.body.clone();
    if let Some(meta) = body.get_mut("meta") {
        meta["requestId"] = json!("req");
    }
    (reply.status, body)
}

/// Every endpoint that takes an id, called by workspace B's root key with workspace A's id,
/// answers exactly as it does for an id that does not exist; A's objects are unchanged.
#[tokio::test]
async fn other_workspaces_ids_answer_exactly_like_missing_ids() {
    let app = spawn_app().await;
    // Workspace A: one of everything, named as B will name its own.
    let api = app.create_api("shared-name").await;
    app.call(
        "permissions.createRole",
        json!({ "name": "admin", "permissions": ["docs.read"] }),
    )
    .await
    .ok();
    let (key_id, key) = app
        .create_key(
            &api,
            json!({ "externalId": "customer", "roles": ["admin"], "credits": { "remaining": 5 } }),
        )
        .await;
    let identity = app
        .call("identities.getIdentity", json!({ "identity": "customer" }))
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let permission = app
        .call(
            "permissions.getPermission",
            json!({ "permission": "docs.read" }),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let role = app
        .call("permissions.getRole", json!({ "role": "admin" }))
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = app.call("keys.getKey", json!({ "keyId": key_id })).await;

    let (_, other) = app.other_workspace().await;
    // B has same-named objects of its own.
    app.call_as(&other, "apis.createApi", json!({ "name": "shared-name" }))
        .await
        .ok();
    app.call_as(
        &other,
        "permissions.createRole",
        json!({ "name": "other-admin", "permissions": ["docs.read"] }),
    )
    .await
    .ok();

    let missing_api = "api_0000000000000000";
    let missing_key = "key_0000000000000000";
    // (operation, body with A's id, body with an id that exists nowhere)
    let cases = [
        (
            "apis.getApi",
            json!({ "apiId": api }),
            json!({ "apiId": missing_api }),
        ),
        (
            "apis.listKeys",
            json!({ "apiId": api }),
            json!({ "apiId": missing_api }),
        ),
        (
            "apis.deleteApi",
            json!({ "apiId": api }),
            json!({ "apiId": missing_api }),
        ),
        (
            "keys.createKey",
            json!({ "apiId": api }),
            json!({ "apiId": missing_api }),
        ),
        (
            "keys.getKey",
            json!({ "keyId": key_id }),
            json!({ "keyId": missing_key }),
        ),
        (
            "keys.whoami",
            json!({ "key": key }),
            json!({ "key": "sk_missing" }),
        ),
        (
            "keys.verifyKey",
            json!({ "key": key }),
            json!({ "key": "sk_missing" }),
        ),
        (
            "keys.updateKey",
            json!({ "keyId": key_id, "enabled": false }),
            json!({ "keyId": missing_key, "enabled": false }),
        ),
        (
            "keys.deleteKey",
            json!({ "keyId": key_id }),
            json!({ "keyId": missing_key }),
        ),
        (
            "keys.rerollKey",
            json!({ "keyId": key_id, "expiration": 0 }),
            json!({ "keyId": missing_key, "expiration": 0 }),
        ),
        (
            "keys.updateCredits",
            json!({ "keyId": key_id, "operation": "set", "value": 1 }),
            json!({ "keyId": missing_key, "operation": "set", "value": 1 }),
        ),
        (
            "keys.addPermissions",
            json!({ "keyId": key_id, "permissions": ["x.y"] }),
            json!({ "keyId": missing_key, "permissions": ["x.y"] }),
        ),
        (
            "keys.removeRoles",
            json!({ "keyId": key_id, "roles": ["admin"] }),
            json!({ "keyId": missing_key, "roles": ["admin"] }),
        ),
        (
            "keys.setRoles",
            json!({ "keyId": key_id, "roles": [] }),
            json!({ "keyId": missing_key, "roles": [] }),
        ),
        (
            "identities.getIdentity",
            json!({ "identity": identity }),
            json!({ "identity": "id_0000000000000000" }),
        ),
        (
            "identities.getIdentity",
            json!({ "identity": "customer" }),
            json!({ "identity": "nobody" }),
        ),
        (
            "identities.updateIdentity",
            json!({ "identity": identity, "meta": {} }),
            json!({ "identity": "id_0000000000000000", "meta": {} }),
        ),
        (
            "identities.deleteIdentity",
            json!({ "identity": identity }),
            json!({ "identity": "id_0000000000000000" }),
        ),
        (
            "permissions.getPermission",
            json!({ "permission": permission }),
            json!({ "permission": "perm_0000000000000000" }),
        ),
        (
            "permissions.updatePermission",
            json!({ "permission": permission, "name": "x" }),
            json!({ "permission": "perm_0000000000000000", "name": "x" }),
        ),
        (
            "permissions.deletePermission",
            json!({ "permission": permission }),
            json!({ "permission": "perm_0000000000000000" }),
        ),
        (
            "permissions.getRole",
            json!({ "role": role }),
            json!({ "role": "role_0000000000000000" }),
        ),
        (
            "permissions.deleteRole",
            json!({ "role": role }),
            json!({ "role": "role_0000000000000000" }),
        ),
        (
            "permissions.setRolePermissions",
            json!({ "roleId": role, "permissions": [] }),
            json!({ "roleId": "role_0000000000000000", "permissions": [] }),
        ),
    ];
    for (operation, foreign, missing) in cases {
        let foreign_reply = app.call_as(&other, operation, foreign.clone()).await;
        let missing_reply = app.call_as(&other, operation, missing.clone()).await;
        let (foreign_status, mut foreign_body) = comparable(&foreign_reply);
        let (missing_status, mut missing_body) = comparable(&missing_reply);
        assert_eq!(
            foreign_status, missing_status,
            "{operation} {foreign}: {foreign_body}"
        );
        assert!(
            foreign_status == 404 || operation == "keys.verifyKey",
            "{operation}: {foreign_body}"
        );
        // Details may name the id that was asked for; the rest must match.
        for body in [&mut foreign_body, &mut missing_body] {
            if let Some(error) = body.get_mut("error") {
                error["detail"] = json!("…");
            }
        }
        assert_eq!(foreign_body, missing_body, "{operation}");
    }

    // Nothing of A changed.
    let after = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    assert_eq!(comparable(&before).1["data"], comparable(&after).1["data"]);
    assert_eq!(app.verify(&key).await["code"], "VALID");
    app.call("apis.getApi", json!({ "apiId": api })).await.ok();
    app.call("identities.getIdentity", json!({ "identity": identity }))
        .await
        .ok();
    let role_after = app
        .call("permissions.getRole", json!({ "role": role }))
        .await;
    assert_eq!(role_after.ok()["permissions"][0]["slug"], "docs.read");
}
