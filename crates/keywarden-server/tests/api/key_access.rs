//! What keys hold (permissions, roles) and the permission queries verification checks.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

fn strings(list: &Value, field: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|v| match field {
            Some(f) => v[f].as_str().unwrap().to_owned(),
            None => v.as_str().unwrap().to_owned(),
        })
        .collect();
    out.sort();
    out
}

async fn verify(app: &TestApp, key: &str, extra: Value) -> Value {
    let mut body = json!({ "key": key });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    app.call("keys.verifyKey", body).await.ok().clone()
}

#[tokio::test]
async fn keys_hold_permissions_directly_and_through_roles() {
    let app = spawn_app().await;
    let api = app.create_api("access").await;
    app.call(
        "permissions.createRole",
        json!({ "name": "reader", "permissions": ["documents.read", "users.view"] }),
    )
    .await
    .ok();
    let (key_id, key) = app
        .create_key(
            &api,
            json!({ "permissions": ["documents.write"], "roles": ["reader"] }),
        )
        .await;
    // The direct permission was created on the way.
    app.call(
        "permissions.getPermission",
        json!({ "permission": "documents.write" }),
    )
    .await
    .ok();

    let got = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    assert_eq!(
        strings(&got.ok()["permissions"], None),
        ["documents.read", "documents.write", "users.view"]
    );
    assert_eq!(strings(&got.ok()["roles"], None), ["reader"]);
    let verified = verify(&app, &key, json!({})).await;
    assert_eq!(
        strings(&verified["permissions"], None),
        ["documents.read", "documents.write", "users.view"]
    );
    assert_eq!(strings(&verified["roles"], None), ["reader"]);

    // A role's change reaches keys already cached.
    app.call(
        "permissions.setRolePermissions",
        json!({ "role": "reader", "permissions": ["documents.read"] }),
    )
    .await
    .ok();
    let verified = verify(&app, &key, json!({})).await;
    assert_eq!(
        strings(&verified["permissions"], None),
        ["documents.read", "documents.write"]
    );
    // So does deleting a permission the key holds directly.
    app.call(
        "permissions.deletePermission",
        json!({ "permission": "documents.write" }),
    )
    .await
    .ok();
    let verified = verify(&app, &key, json!({})).await;
    assert_eq!(strings(&verified["permissions"], None), ["documents.read"]);
    // And updateKey replaces both sets.
    app.call(
        "keys.updateKey",
        json!({ "keyId": key_id, "permissions": ["billing.view"], "roles": [] }),
    )
    .await
    .ok();
    let got = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    assert_eq!(strings(&got.ok()["permissions"], None), ["billing.view"]);
    assert_eq!(got.ok()["roles"], json!([]));
}

#[tokio::test]
async fn permission_queries_decide_verification() {
    let app = spawn_app().await;
    let api = app.create_api("queries").await;
    app.call(
        "permissions.createRole",
        json!({ "name": "viewer", "permissions": ["users.view"] }),
    )
    .await
    .ok();
    let (key_id, key) = app
        .create_key(
            &api,
            json!({
                "permissions": ["documents.read"],
                "roles": ["viewer"],
                "credits": { "remaining": 10 },
                "ratelimits": [{ "name": "requests", "limit": 100, "duration": 60000, "autoApply": true }]
            }),
        )
        .await;
    for (query, valid) in [
        ("documents.read", true),
        ("users.view", true),
        ("documents.read AND users.view", true),
        ("(documents.write OR documents.read) and users.view", true),
        ("documents.write", false),
        ("documents.read AND documents.write", false),
        ("documents.*", false),
    ] {
        let v = verify(&app, &key, json!({ "permissions": query })).await;
        let code = if valid {
            "VALID"
        } else {
            "INSUFFICIENT_PERMISSIONS"
        };
        assert_eq!(v["code"], code, "{query}: {v}");
        assert_eq!(v["valid"], valid);
    }
    // Four calls were admitted: four credits and four rate-limit slots; the three refused
    // calls used neither.
    let v = verify(&app, &key, json!({ "permissions": "documents.write" })).await;
    assert_eq!(v["credits"], 6);
    assert!(v.get("ratelimits").is_none(), "{v}");
    let v = verify(&app, &key, json!({})).await;
    assert_eq!(v["credits"], 5);
    assert_eq!(v["ratelimits"][0]["remaining"], 95);
    let stored = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    assert_eq!(stored.ok()["credits"]["remaining"], 5);

    // A query that does not parse is a 400 that says where it broke.
    let bad = app
        .call(
            "keys.verifyKey",
            json!({ "key": key, "permissions": "documents.read AND" }),
        )
        .await;
    let error = bad.err(400);
    assert!(
        error["type"]
            .as_str()
            .unwrap()
            .ends_with("/permissions_query_syntax_error"),
        "{}",
        bad.body
    );
    let detail = error["detail"].as_str().unwrap();
    assert!(detail.contains("position 18"), "{detail}");
    assert_eq!(error["errors"][0]["location"], "body.permissions");
    // Also for unknown keys: the query is checked first.
    app.call(
        "keys.verifyKey",
        json!({ "key": "sk_unknown", "permissions": "a OR" }),
    )
    .await
    .err(400);
}

#[tokio::test]
async fn permissions_and_roles_are_added_removed_and_set() {
    let app = spawn_app().await;
    let api = app.create_api("access-ops").await;
    let (key_id, _) = app.create_key(&api, json!({})).await;
    let added = app
        .call(
            "keys.addPermissions",
            json!({ "keyId": key_id, "permissions": ["a.read", "b.read"] }),
        )
        .await;
    assert_eq!(strings(added.ok(), Some("slug")), ["a.read", "b.read"]);
    let added = app
        .call(
            "keys.addPermissions",
            json!({ "keyId": key_id, "permissions": ["a.read", "c.read"] }),
        )
        .await;
    assert_eq!(
        strings(added.ok(), Some("slug")),
        ["a.read", "b.read", "c.read"]
    );
    let removed = app
        .call(
            "keys.removePermissions",
            json!({ "keyId": key_id, "permissions": ["b.read", "not.held"] }),
        )
        .await;
    assert_eq!(strings(removed.ok(), Some("slug")), ["a.read", "c.read"]);
    let set = app
        .call(
            "keys.setPermissions",
            json!({ "keyId": key_id, "permissions": [] }),
        )
        .await;
    assert_eq!(set.ok(), &json!([]));

    for name in ["admin", "auditor"] {
        app.call(
            "permissions.createRole",
            json!({ "name": name, "permissions": [format!("{name}.all")] }),
        )
        .await
        .ok();
    }
    let roles = app
        .call(
            "keys.addRoles",
            json!({ "keyId": key_id, "roles": ["admin"] }),
        )
        .await;
    assert_eq!(strings(roles.ok(), Some("name")), ["admin"]);
    assert_eq!(roles.ok()[0]["permissions"][0]["slug"], "admin.all");
    // An unknown role fails the whole call.
    let missing = app
        .call(
            "keys.addRoles",
            json!({ "keyId": key_id, "roles": ["auditor", "ghost"] }),
        )
        .await;
    assert_eq!(missing.err(404)["detail"], "Role 'ghost' was not found.");
    let got = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    assert_eq!(strings(&got.ok()["roles"], None), ["admin"]);
    let roles = app
        .call(
            "keys.setRoles",
            json!({ "keyId": key_id, "roles": ["auditor"] }),
        )
        .await;
    assert_eq!(strings(roles.ok(), Some("name")), ["auditor"]);
    let roles = app
        .call(
            "keys.removeRoles",
            json!({ "keyId": key_id, "roles": ["auditor"] }),
        )
        .await;
    assert_eq!(roles.ok(), &json!([]));

    // Adding and removing need at least one item; unknown keys are 404s.
    app.call(
        "keys.addPermissions",
        json!({ "keyId": key_id, "permissions": [] }),
    )
    .await
    .invalid_at("body.permissions");
    app.call("keys.removeRoles", json!({ "keyId": key_id, "roles": [] }))
        .await
        .invalid_at("body.roles");
    app.call(
        "keys.addPermissions",
        json!({ "keyId": "key_missing", "permissions": ["a"] }),
    )
    .await
    .err(404);
}

#[tokio::test]
async fn changing_what_a_key_holds_needs_the_rbac_permission() {
    let app = spawn_app().await;
    let api = app.create_api("access-perms").await;
    let (key_id, _) = app.create_key(&api, json!({})).await;
    let updater = app
        .root_key_with(&["api.*.update_key", "api.*.create_key"])
        .await;
    let denied = app
        .call_as(
            &updater,
            "keys.addPermissions",
            json!({ "keyId": key_id, "permissions": ["a.read"] }),
        )
        .await;
    assert!(
        denied.err(403)["detail"]
            .as_str()
            .unwrap()
            .contains("rbac.*.add_permission_to_key"),
        "{}",
        denied.body
    );
    let denied = app
        .call_as(
            &updater,
            "keys.createKey",
            json!({ "apiId": api, "roles": ["admin"] }),
        )
        .await;
    assert!(
        denied.err(403)["detail"]
            .as_str()
            .unwrap()
            .contains("rbac.*.add_role_to_key"),
        "{}",
        denied.body
    );
    // With the RBAC permission but not create_permission, only existing slugs can be added.
    let granter = app
        .root_key_with(&["api.*.update_key", "rbac.*.add_permission_to_key"])
        .await;
    app.call(
        "permissions.createPermission",
        json!({ "name": "a", "slug": "a.read" }),
    )
    .await
    .ok();
    app.call_as(
        &granter,
        "keys.addPermissions",
        json!({ "keyId": key_id, "permissions": ["a.read"] }),
    )
    .await
    .ok();
    app.call_as(
        &granter,
        "keys.addPermissions",
        json!({ "keyId": key_id, "permissions": ["new.slug"] }),
    )
    .await
    .err(403);
}

#[tokio::test]
async fn refused_calls_leave_nothing_behind_and_deleted_roles_leave_keys() {
    let app = spawn_app().await;
    let api = app.create_api("all-or-nothing").await;
    // An unknown role refuses createKey before the new slug or the identity is created.
    let refused = app
        .call(
            "keys.createKey",
            json!({ "apiId": api, "permissions": ["stray.create"], "roles": ["nobody"], "externalId": "stray" }),
        )
        .await;
    refused.err(404);
    app.call(
        "permissions.getPermission",
        json!({ "permission": "stray.create" }),
    )
    .await
    .err(404);
    app.call("identities.getIdentity", json!({ "identity": "stray" }))
        .await
        .err(404);
    // A duplicate role name refuses createRole before its new slugs are created.
    app.call("permissions.createRole", json!({ "name": "dup" }))
        .await
        .ok();
    app.call(
        "permissions.createRole",
        json!({ "name": "dup", "permissions": ["stray.role"] }),
    )
    .await
    .err(409);
    app.call(
        "permissions.getPermission",
        json!({ "permission": "stray.role" }),
    )
    .await
    .err(404);

    // Deleting a role takes it from keys already cached.
    app.call(
        "permissions.createRole",
        json!({ "name": "temp", "permissions": ["temp.p"] }),
    )
    .await
    .ok();
    let (_, key) = app.create_key(&api, json!({ "roles": ["temp"] })).await;
    let v = verify(&app, &key, json!({ "permissions": "temp.p" })).await;
    assert_eq!(v["code"], "VALID");
    app.call("permissions.deleteRole", json!({ "role": "temp" }))
        .await
        .ok();
    let v = verify(&app, &key, json!({ "permissions": "temp.p" })).await;
    assert_eq!(v["code"], "INSUFFICIENT_PERMISSIONS");
    assert_eq!(v["roles"], json!([]));
}
