//! Namespaces of the standalone limiter and their overrides.

use std::sync::Arc;

use keywarden_core::id::{NamespaceId, OverrideId, WorkspaceId};
use keywarden_core::namespace::{Identifier, Namespace, NamespaceName, RateOverride};
use keywarden_core::ratelimit::WindowDuration;

use crate::backend::Backend;
use crate::fixture::{NOW, audit, fixture, page, page_from};

store_tests!(
    concurrent_first_uses_of_a_name_make_one_namespace,
    overrides_are_set_by_identifier_listed_and_deleted,
);

fn namespace_in(workspace: &WorkspaceId, name: &str) -> Namespace {
    Namespace {
        id: NamespaceId::generate(NOW),
        workspace_id: workspace.clone(),
        name: NamespaceName::parse(name).unwrap(),
        created_at: NOW,
    }
}

fn override_of(namespace: &Namespace, identifier: &str, limit: u64) -> RateOverride {
    RateOverride {
        id: OverrideId::generate(NOW),
        workspace_id: namespace.workspace_id.clone(),
        namespace_id: namespace.id.clone(),
        identifier: Identifier::parse(identifier).unwrap(),
        limit,
        duration: WindowDuration::from_millis(60_000).unwrap(),
        created_at: NOW,
        updated_at: None,
    }
}

async fn concurrent_first_uses_of_a_name_make_one_namespace(backend: Backend) {
    let f = fixture(backend).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&f.store);
            let candidate = namespace_in(&f.workspace, "email.outbound");
            tokio::spawn(async move {
                store
                    .upsert_namespace(&candidate, &audit(&candidate.workspace_id))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut found = Vec::new();
    for task in tasks {
        found.push(task.await.unwrap());
    }
    found.dedup();
    assert_eq!(found.len(), 1, "every upsert returned the same namespace");
    let namespace = found.remove(0);
    for reference in [namespace.id.as_str(), "email.outbound"] {
        assert_eq!(
            f.store.namespace(&f.workspace, reference).await.unwrap(),
            Some(namespace.clone())
        );
    }
    let other = WorkspaceId::generate(NOW);
    assert_eq!(
        f.store.namespace(&other, "email.outbound").await.unwrap(),
        None
    );
}

async fn overrides_are_set_by_identifier_listed_and_deleted(backend: Backend) {
    let f = fixture(backend).await;
    let namespace = f
        .store
        .upsert_namespace(&namespace_in(&f.workspace, "api"), &audit(&f.workspace))
        .await
        .unwrap();
    let first = f
        .store
        .set_override(
            &override_of(&namespace, "user_*", 5),
            &audit(&namespace.workspace_id),
        )
        .await
        .unwrap();
    assert_eq!(first.limit, 5);
    assert_eq!(first.updated_at, None);

    // Setting the same identifier again updates that override, keeping its id.
    let mut again = override_of(&namespace, "user_*", 9);
    again.created_at = NOW.plus_millis(7);
    let updated = f
        .store
        .set_override(&again, &audit(&again.workspace_id))
        .await
        .unwrap();
    assert_eq!(updated.id, first.id);
    assert_eq!(updated.limit, 9);
    assert_eq!(updated.created_at, NOW);
    assert_eq!(updated.updated_at, Some(NOW.plus_millis(7)));

    let exact = f
        .store
        .set_override(
            &override_of(&namespace, "user_42", 0),
            &audit(&namespace.workspace_id),
        )
        .await
        .unwrap();
    let third = f
        .store
        .set_override(
            &override_of(&namespace, "*", 100),
            &audit(&namespace.workspace_id),
        )
        .await
        .unwrap();
    let all = f
        .store
        .overrides(&f.workspace, &namespace.id)
        .await
        .unwrap();
    assert_eq!(all, vec![updated.clone(), exact.clone(), third.clone()]);
    let other = WorkspaceId::generate(NOW);
    assert!(
        f.store
            .overrides(&other, &namespace.id)
            .await
            .unwrap()
            .is_empty()
    );

    let first_page = f
        .store
        .overrides_page(&f.workspace, &namespace.id, page(2))
        .await
        .unwrap();
    assert_eq!(first_page.items, vec![updated.clone(), exact.clone()]);
    let rest = f
        .store
        .overrides_page(&f.workspace, &namespace.id, page_from(first_page.next, 2))
        .await
        .unwrap();
    assert_eq!(rest.items, vec![third]);
    assert_eq!(rest.next, None);

    let user_42 = Identifier::parse("user_42").unwrap();
    assert!(
        f.store
            .delete_override(&f.workspace, &namespace.id, &user_42, &audit(&f.workspace))
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .delete_override(&f.workspace, &namespace.id, &user_42, &audit(&f.workspace))
            .await
            .unwrap()
    );
    assert_eq!(
        f.store
            .overrides(&f.workspace, &namespace.id)
            .await
            .unwrap()
            .len(),
        2
    );
}
