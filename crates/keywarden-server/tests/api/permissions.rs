//! `permissions.*`: permissions and roles for end-user keys.

use serde_json::{Value, json};

use crate::helpers::spawn_app;

fn slugs(list: &Value) -> Vec<String> {
    let mut out: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn permissions_are_created_read_listed_and_deleted() {
    let app = spawn_app().await;
    let created = app
        .call(
            "permissions.createPermission",
            json!({ "name": "Read documents", "slug": "documents.read", "description": "lets a key read" }),
        )
        .await;
    let id = created.ok()["permissionId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("perm_"), "{id}");
    for reference in [id.as_str(), "documents.read"] {
        let got = app
            .call(
                "permissions.getPermission",
                json!({ "permission": reference }),
            )
            .await;
        assert_eq!(
            got.ok(),
            &json!({ "id": id, "name": "Read documents", "slug": "documents.read", "description": "lets a key read" })
        );
    }
    let duplicate = app
        .call(
            "permissions.createPermission",
            json!({ "name": "again", "slug": "documents.read" }),
        )
        .await;
    duplicate.err(409);

    for slug in ["documents.write", "users.view"] {
        app.call(
            "permissions.createPermission",
            json!({ "name": slug, "slug": slug }),
        )
        .await
        .ok();
    }
    let listed = app
        .call("permissions.listPermissions", json!({ "limit": 2 }))
        .await;
    assert_eq!(listed.ok().as_array().unwrap().len(), 2);
    let cursor = listed.body["pagination"]["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let rest = app
        .call(
            "permissions.listPermissions",
            json!({ "limit": 2, "cursor": cursor }),
        )
        .await;
    assert_eq!(rest.ok().as_array().unwrap().len(), 1);
    assert!(rest.body["pagination"].get("cursor").is_none());
    let found = app
        .call(
            "permissions.listPermissions",
            json!({ "search": "DOCUMENTS" }),
        )
        .await;
    assert_eq!(slugs(found.ok()), ["documents.read", "documents.write"]);

    app.call(
        "permissions.deletePermission",
        json!({ "permission": "documents.read" }),
    )
    .await
    .ok();
    app.call("permissions.getPermission", json!({ "permission": id }))
        .await
        .err(404);
    app.call("permissions.deletePermission", json!({ "permission": id }))
        .await
        .err(404);
}

#[tokio::test]
async fn roles_hold_permissions_that_are_created_as_needed() {
    let app = spawn_app().await;
    app.call(
        "permissions.createPermission",
        json!({ "name": "read", "slug": "documents.read" }),
    )
    .await
    .ok();
    let created = app
        .call(
            "permissions.createRole",
            json!({ "name": "editor", "description": "edits", "permissions": ["documents.read", "documents.write"] }),
        )
        .await;
    let role_id = created.ok()["roleId"].as_str().unwrap().to_owned();
    assert!(role_id.starts_with("role_"));
    // The missing slug was created.
    app.call(
        "permissions.getPermission",
        json!({ "permission": "documents.write" }),
    )
    .await
    .ok();
    let role = app
        .call("permissions.getRole", json!({ "role": "editor" }))
        .await;
    assert_eq!(role.ok()["id"], role_id.as_str());
    assert_eq!(role.ok()["description"], "edits");
    assert_eq!(
        slugs(&role.ok()["permissions"]),
        ["documents.read", "documents.write"]
    );

    // setRolePermissions replaces the set, by `roleId` (TypeScript SDK) or `role` (Python).
    let set = app
        .call(
            "permissions.setRolePermissions",
            json!({ "roleId": role_id, "permissions": ["users.view"] }),
        )
        .await;
    assert_eq!(slugs(set.ok()), ["users.view"]);
    let set = app
        .call(
            "permissions.setRolePermissions",
            json!({ "role": "editor", "permissions": ["documents.read", "users.view"] }),
        )
        .await;
    assert_eq!(slugs(set.ok()), ["documents.read", "users.view"]);

    // Deleting a permission removes it from every role that had it.
    app.call(
        "permissions.deletePermission",
        json!({ "permission": "users.view" }),
    )
    .await
    .ok();
    let role = app
        .call("permissions.getRole", json!({ "role": role_id }))
        .await;
    assert_eq!(slugs(&role.ok()["permissions"]), ["documents.read"]);

    // An empty list clears the role.
    let cleared = app
        .call(
            "permissions.setRolePermissions",
            json!({ "role": "editor", "permissions": [] }),
        )
        .await;
    assert_eq!(cleared.ok(), &json!([]));

    app.call("permissions.createRole", json!({ "name": "editor" }))
        .await
        .err(409);
    let listed = app
        .call("permissions.listRoles", json!({ "search": "EDIT" }))
        .await;
    assert_eq!(listed.ok().as_array().unwrap().len(), 1);
    app.call("permissions.deleteRole", json!({ "role": "editor" }))
        .await
        .ok();
    let missing = app
        .call("permissions.getRole", json!({ "role": "editor" }))
        .await;
    assert_eq!(missing.err(404)["detail"], "Role 'editor' was not found.");
    app.call(
        "permissions.setRolePermissions",
        json!({ "role": "editor", "permissions": [] }),
    )
    .await
    .err(404);
}

#[tokio::test]
async fn permissions_and_roles_are_renamed_and_keys_follow() {
    let app = spawn_app().await;
    let api = app.create_api("renames").await;
    app.call(
        "permissions.createRole",
        json!({ "name": "reader", "description": "reads", "permissions": ["docs.read"] }),
    )
    .await
    .ok();
    let (_, key) = app.create_key(&api, json!({ "roles": ["reader"] })).await;
    let before = app
        .call(
            "keys.verifyKey",
            json!({ "key": key, "permissions": "docs.read" }),
        )
        .await;
    assert_eq!(before.ok()["code"], "VALID");

    let renamed = app
        .call(
            "permissions.updatePermission",
            json!({ "permission": "docs.read", "slug": "documents.read", "description": "Read them" }),
        )
        .await;
    assert_eq!(renamed.ok()["slug"], "documents.read");
    assert_eq!(renamed.ok()["name"], "docs.read", "an omitted name stays");
    assert_eq!(renamed.ok()["description"], "Read them");
    // The cached key sees the new slug at once.
    let after = app
        .call(
            "keys.verifyKey",
            json!({ "key": key, "permissions": "documents.read" }),
        )
        .await;
    assert_eq!(after.ok()["code"], "VALID");
    let old = app
        .call(
            "keys.verifyKey",
            json!({ "key": key, "permissions": "docs.read" }),
        )
        .await;
    assert_eq!(old.ok()["code"], "INSUFFICIENT_PERMISSIONS");
    // `null` removes the description.
    let cleared = app
        .call(
            "permissions.updatePermission",
            json!({ "permission": "documents.read", "description": null }),
        )
        .await;
    assert!(
        cleared.ok().get("description").is_none(),
        "{}",
        cleared.body
    );

    let role = app
        .call(
            "permissions.updateRole",
            json!({ "role": "reader", "name": "viewer", "description": "" }),
        )
        .await;
    assert_eq!(role.ok()["name"], "viewer");
    assert!(role.ok().get("description").is_none(), "{}", role.body);
    let verified = app.call("keys.verifyKey", json!({ "key": key })).await;
    assert_eq!(verified.ok()["roles"], json!(["viewer"]));

    // Taken names and slugs conflict; unknown ones are 404s.
    app.call("permissions.createRole", json!({ "name": "other" }))
        .await
        .ok();
    app.call(
        "permissions.updateRole",
        json!({ "role": "other", "name": "viewer" }),
    )
    .await
    .err(409);
    app.call(
        "permissions.updateRole",
        json!({ "role": "ghost", "name": "x" }),
    )
    .await
    .err(404);
    app.call(
        "permissions.createPermission",
        json!({ "name": "w", "slug": "docs.write" }),
    )
    .await
    .ok();
    app.call(
        "permissions.updatePermission",
        json!({ "permission": "docs.write", "slug": "documents.read" }),
    )
    .await
    .err(409);
}

#[tokio::test]
async fn rbac_endpoints_check_permissions_and_workspaces() {
    let app = spawn_app().await;
    app.call(
        "permissions.createPermission",
        json!({ "name": "read", "slug": "documents.read" }),
    )
    .await
    .ok();
    let roles_only = app
        .root_key_with(&["rbac.*.create_role", "rbac.*.read_permission"])
        .await;
    // A role over existing permissions needs no create_permission; a new slug does.
    app.call_as(
        &roles_only,
        "permissions.createRole",
        json!({ "name": "reader", "permissions": ["documents.read"] }),
    )
    .await
    .ok();
    let denied = app
        .call_as(
            &roles_only,
            "permissions.createRole",
            json!({ "name": "writer", "permissions": ["documents.write"] }),
        )
        .await;
    let error = denied.err(403);
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .contains("rbac.*.create_permission"),
        "{}",
        denied.body
    );
    app.call_as(
        &roles_only,
        "permissions.deletePermission",
        json!({ "permission": "documents.read" }),
    )
    .await
    .err(403);

    let (_, other) = app.other_workspace().await;
    app.call_as(
        &other,
        "permissions.getPermission",
        json!({ "permission": "documents.read" }),
    )
    .await
    .err(404);
    app.call_as(&other, "permissions.getRole", json!({ "role": "reader" }))
        .await
        .err(404);
    let listed = app
        .call_as(&other, "permissions.listPermissions", json!({}))
        .await;
    assert_eq!(listed.ok(), &json!([]));
    // Same slug in another workspace is its own permission.
    app.call_as(
        &other,
        "permissions.createPermission",
        json!({ "name": "read", "slug": "documents.read" }),
    )
    .await
    .ok();
}

#[tokio::test]
async fn rbac_input_is_checked() {
    let app = spawn_app().await;
    for (operation, body, location) in [
        (
            "permissions.createPermission",
            json!({ "name": "x" }),
            "body.slug",
        ),
        (
            "permissions.createPermission",
            json!({ "name": "x", "slug": "has space" }),
            "body.slug",
        ),
        (
            "permissions.createPermission",
            json!({ "name": "", "slug": "a" }),
            "body.name",
        ),
        (
            "permissions.createPermission",
            json!({ "name": "x", "slug": "a", "description": "d".repeat(513) }),
            "body.description",
        ),
        ("permissions.getPermission", json!({}), "body.permission"),
        (
            "permissions.listPermissions",
            json!({ "limit": 0 }),
            "body.limit",
        ),
        ("permissions.createRole", json!({ "name": "" }), "body.name"),
        (
            "permissions.createRole",
            json!({ "name": "r", "permissions": ["ok", "not ok"] }),
            "body.permissions[1]",
        ),
        (
            "permissions.setRolePermissions",
            json!({ "roleId": "role_x" }),
            "body.permissions",
        ),
        (
            "permissions.setRolePermissions",
            json!({ "permissions": [] }),
            "body.role",
        ),
    ] {
        app.call(operation, body).await.invalid_at(location);
    }
}
