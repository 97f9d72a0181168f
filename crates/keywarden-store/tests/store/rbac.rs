//! Permissions and roles, and what keys hold of them.

use std::sync::Arc;

use keywarden_core::key_change::KeyChange;
use keywarden_core::rbac::{Permission, PermissionSlug, PermissionUpdate, RoleName, RoleUpdate};
use keywarden_core::store::StoreError;

use crate::backend::Backend;
use crate::fixture::{NOW, audit, fixture, page, permission_in, random_digest, role_in};

store_tests!(
    permissions_are_found_searched_updated_and_deleted,
    upserts_return_existing_and_new_permissions_in_order,
    concurrent_upserts_of_overlapping_slugs_agree,
    roles_carry_their_permissions_and_keys_hold_both,
);

async fn permissions_are_found_searched_updated_and_deleted(backend: Backend) {
    let f = fixture(backend).await;
    let read = permission_in(&f.workspace, "keys.read");
    let mut write = permission_in(&f.workspace, "keys.write");
    write.name = "100% Write_Access".into();
    write.description = Some("writes".into());
    f.store
        .insert_permission(&read, &audit(&read.workspace_id))
        .await
        .unwrap();
    f.store
        .insert_permission(&write, &audit(&write.workspace_id))
        .await
        .unwrap();
    assert!(matches!(
        f.store
            .insert_permission(
                &permission_in(&f.workspace, "keys.read"),
                &audit(&f.workspace)
            )
            .await,
        Err(StoreError::Conflict("a permission with this slug"))
    ));

    for reference in [read.id.as_str(), "keys.read"] {
        assert_eq!(
            f.store.permission(&f.workspace, reference).await.unwrap(),
            Some(read.clone())
        );
    }
    let search = |text: &'static str| {
        let (store, workspace) = (Arc::clone(&f.store), f.workspace.clone());
        async move {
            let found = store
                .permissions(&workspace, Some(text), page(10))
                .await
                .unwrap();
            found.items.into_iter().map(|p| p.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(search("WRITE").await, [write.id.clone()]);
    // Search text is literal: `%` is no wildcard.
    assert_eq!(search("%").await, [write.id.clone()]);
    assert_eq!(search("e_a").await, [write.id.clone()]);
    let mut both = vec![read.id.clone(), write.id.clone()];
    both.sort();
    assert_eq!(search("keys.").await, both);

    let renamed = f
        .store
        .update_permission(
            &f.workspace,
            "keys.write",
            PermissionUpdate {
                name: Some("Write".into()),
                slug: Some(PermissionSlug::parse("keys.update").unwrap()),
                description: Some(None),
            },
            &audit(&f.workspace),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.slug.as_str(), "keys.update");
    assert_eq!(renamed.description, None);
    assert_eq!(
        f.store
            .permission(&f.workspace, "keys.update")
            .await
            .unwrap(),
        Some(renamed)
    );
    let taken = PermissionUpdate {
        slug: Some(PermissionSlug::parse("keys.read").unwrap()),
        ..PermissionUpdate::default()
    };
    assert!(matches!(
        f.store
            .update_permission(&f.workspace, "keys.update", taken, &audit(&f.workspace))
            .await,
        Err(StoreError::Conflict("a permission with this slug"))
    ));

    assert!(
        f.store
            .delete_permission(&f.workspace, "keys.update", &audit(&f.workspace))
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .delete_permission(&f.workspace, "keys.update", &audit(&f.workspace))
            .await
            .unwrap()
    );
    assert_eq!(
        f.store
            .permission(&f.workspace, "keys.update")
            .await
            .unwrap(),
        None
    );
}

async fn upserts_return_existing_and_new_permissions_in_order(backend: Backend) {
    let f = fixture(backend).await;
    let existing = permission_in(&f.workspace, "b.existing");
    f.store
        .insert_permission(&existing, &audit(&existing.workspace_id))
        .await
        .unwrap();
    let fresh = permission_in(&f.workspace, "a.fresh");
    let candidates = vec![
        permission_in(&f.workspace, "b.existing"),
        fresh.clone(),
        permission_in(&f.workspace, "a.fresh"),
    ];
    let upserted = f
        .store
        .upsert_permissions(&candidates, &audit(&f.workspace))
        .await
        .unwrap();
    assert_eq!(
        upserted,
        vec![existing.clone(), fresh.clone(), fresh.clone()]
    );
    assert!(
        f.store
            .upsert_permissions(&[], &audit(&f.workspace))
            .await
            .unwrap()
            .is_empty()
    );
    let listed = f
        .store
        .permissions(&f.workspace, None, page(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
}

async fn concurrent_upserts_of_overlapping_slugs_agree(backend: Backend) {
    let f = fixture(backend).await;
    let slugs = ["p.one", "p.two", "p.three", "p.four"];
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&f.store);
            // Each call names the slugs in another order.
            let mut order: Vec<&str> = slugs.to_vec();
            order.rotate_left(i % slugs.len());
            if i % 2 == 1 {
                order.reverse();
            }
            let candidates: Vec<Permission> = order
                .iter()
                .map(|s| permission_in(&f.workspace, s))
                .collect();
            let entry = audit(&f.workspace);
            tokio::spawn(async move {
                let upserted = store.upsert_permissions(&candidates, &entry).await.unwrap();
                let mut pairs: Vec<(String, String)> = upserted
                    .into_iter()
                    .map(|p| (p.slug.as_str().to_owned(), p.id.to_string()))
                    .collect();
                pairs.sort();
                pairs
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results.dedup();
    assert_eq!(results.len(), 1, "every call got the same permissions");
    let listed = f
        .store
        .permissions(&f.workspace, None, page(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), slugs.len());
}

async fn roles_carry_their_permissions_and_keys_hold_both(backend: Backend) {
    let f = fixture(backend).await;
    let read = permission_in(&f.workspace, "z.read");
    let write = permission_in(&f.workspace, "a.write");
    let admin = permission_in(&f.workspace, "m.admin");
    for p in [&read, &write, &admin] {
        f.store
            .insert_permission(p, &audit(&p.workspace_id))
            .await
            .unwrap();
    }
    let editor = role_in(&f.workspace, "editor", vec![write.clone(), read.clone()]);
    let viewer = role_in(&f.workspace, "viewer", vec![read.clone()]);
    f.store
        .insert_role(&editor, &audit(&editor.workspace_id))
        .await
        .unwrap();
    f.store
        .insert_role(&viewer, &audit(&viewer.workspace_id))
        .await
        .unwrap();
    assert!(matches!(
        f.store
            .insert_role(
                &role_in(&f.workspace, "editor", Vec::new()),
                &audit(&f.workspace)
            )
            .await,
        Err(StoreError::Conflict("a role with this name"))
    ));

    // A role reads back with its permissions ordered by slug.
    let found = f.store.role(&f.workspace, "editor").await.unwrap().unwrap();
    assert_eq!(found.permissions, vec![write.clone(), read.clone()]);
    assert_eq!(
        f.store
            .role(&f.workspace, editor.id.as_str())
            .await
            .unwrap(),
        Some(found.clone())
    );

    // A key holds permissions (ordered by slug) and roles (ordered by name) with theirs.
    let mut record = f.key(random_digest(), None);
    record.set_permissions(vec![read.clone(), admin.clone()]);
    record.set_roles(vec![viewer.clone(), found.clone()]);
    f.store
        .insert_key(&record, &audit(&record.workspace_id))
        .await
        .unwrap();
    let stored = f
        .store
        .key(&f.workspace, &record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.permissions, vec![admin.clone(), read.clone()]);
    let role_names: Vec<&str> = stored.roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(role_names, ["editor", "viewer"]);
    assert_eq!(stored, record);

    // Changing what the key holds rewrites its links.
    let changed = f
        .store
        .change_key(
            &f.workspace,
            &record.id,
            KeyChange::SetPermissions(vec![write.clone()]),
            NOW,
            &audit(&f.workspace),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.permissions, vec![write.clone()]);
    let removed = KeyChange::RemoveRoles(vec![RoleName::parse("viewer").unwrap()]);
    f.store
        .change_key(&f.workspace, &record.id, removed, NOW, &audit(&f.workspace))
        .await
        .unwrap()
        .unwrap();
    let stored = f
        .store
        .key(&f.workspace, &record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.permissions, vec![write.clone()]);
    assert_eq!(stored.roles, vec![found.clone()]);

    // A role's permissions are replaced as a whole, and renaming keeps them.
    let replaced = f
        .store
        .set_role_permissions(
            &f.workspace,
            &editor.id,
            std::slice::from_ref(&admin),
            &audit(&f.workspace),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replaced.permissions, vec![admin.clone()]);
    let renamed = f
        .store
        .update_role(
            &f.workspace,
            "editor",
            RoleUpdate {
                name: Some(RoleName::parse("writer").unwrap()),
                description: Some(None),
            },
            &audit(&f.workspace),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.name.as_str(), "writer");
    assert_eq!(renamed.description, None);
    assert_eq!(renamed.permissions, vec![admin.clone()]);
    let taken = RoleUpdate {
        name: Some(RoleName::parse("viewer").unwrap()),
        description: None,
    };
    assert!(matches!(
        f.store
            .update_role(&f.workspace, "writer", taken, &audit(&f.workspace))
            .await,
        Err(StoreError::Conflict("a role with this name"))
    ));

    // Searching roles ignores case; pages carry permissions.
    let listed = f
        .store
        .roles(&f.workspace, Some("WRIT"), page(10))
        .await
        .unwrap();
    assert_eq!(listed.items, vec![renamed.clone()]);

    // Deleting a permission or role removes it from every role and key.
    assert!(
        f.store
            .delete_permission(&f.workspace, "m.admin", &audit(&f.workspace))
            .await
            .unwrap()
    );
    let writer = f.store.role(&f.workspace, "writer").await.unwrap().unwrap();
    assert!(writer.permissions.is_empty());
    assert!(
        f.store
            .delete_role(&f.workspace, "writer", &audit(&f.workspace))
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .delete_role(&f.workspace, "writer", &audit(&f.workspace))
            .await
            .unwrap()
    );
    let stored = f
        .store
        .key(&f.workspace, &record.id)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.roles.is_empty());
    assert_eq!(stored.permissions, vec![write]);
    assert!(
        f.store
            .set_role_permissions(&f.workspace, &editor.id, &[], &audit(&f.workspace))
            .await
            .unwrap()
            .is_none()
    );
}
