//! Identities: one per external id even under concurrent first uses, linked to keys until
//! deleted.

use std::sync::Arc;

use keywarden_core::id::WorkspaceId;
use keywarden_core::identity::IdentityUpdate;
use keywarden_core::meta::Meta;
use keywarden_core::store::StoreError;

use crate::backend::Backend;
use crate::fixture::{NOW, audit, fixture, identity_in, page, page_from, random_digest};

store_tests!(
    concurrent_upserts_of_one_external_id_make_one_identity,
    keys_read_back_with_their_identity_until_it_is_deleted,
    identities_are_searched_ignoring_case_and_paged_by_id,
);

async fn concurrent_upserts_of_one_external_id_make_one_identity(backend: Backend) {
    let f = fixture(backend).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&f.store);
            let candidate = identity_in(&f.workspace, "acme");
            tokio::spawn(async move {
                store
                    .upsert_identity(&candidate, &audit(&candidate.workspace_id))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every upsert returned the same identity");
    let listed = f
        .store
        .identities(&f.workspace, None, page(100))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    // A second insert of the external id conflicts; another workspace may use it.
    assert!(matches!(
        f.store
            .insert_identity(&identity_in(&f.workspace, "acme"), &audit(&f.workspace))
            .await,
        Err(StoreError::Conflict("an identity with this externalId"))
    ));
}

async fn keys_read_back_with_their_identity_until_it_is_deleted(backend: Backend) {
    let f = fixture(backend).await;
    let identity = f
        .store
        .upsert_identity(&identity_in(&f.workspace, "acme"), &audit(&f.workspace))
        .await
        .unwrap();
    let mut record = f.key(random_digest(), None);
    record.identity = Some(identity.clone());
    f.store
        .insert_key(&record, &audit(&record.workspace_id))
        .await
        .unwrap();

    let read = f
        .store
        .key_by_digest(&record.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.identity.as_ref(), Some(&identity));
    assert_eq!(read, record);

    // Reads find the identity by id or external id, only in its own workspace.
    for reference in [identity.id.as_str(), "acme"] {
        assert_eq!(
            f.store.identity(&f.workspace, reference).await.unwrap(),
            Some(identity.clone())
        );
    }
    let other = WorkspaceId::generate(NOW);
    assert_eq!(f.store.identity(&other, "acme").await.unwrap(), None);

    let meta = Meta::new(
        serde_json::json!({ "tier": "gold" })
            .as_object()
            .unwrap()
            .clone(),
    )
    .unwrap();
    let later = NOW.plus_millis(1);
    let (updated, digests) = f
        .store
        .update_identity(
            &f.workspace,
            "acme",
            IdentityUpdate {
                meta: Some(Some(meta.clone())),
                ratelimits: Some(Vec::new()),
            },
            later,
            &audit(&f.workspace),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(updated.ratelimits.is_empty());
    assert_eq!(updated.meta, Some(meta));
    assert_eq!(updated.updated_at, Some(later));
    assert_eq!(digests, [record.digest]);
    let read = f
        .store
        .key_by_digest(&record.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.identity, Some(updated));
    assert!(
        f.store
            .update_identity(
                &other,
                "acme",
                IdentityUpdate::default(),
                later,
                &audit(&other)
            )
            .await
            .unwrap()
            .is_none()
    );

    let unlinked = f
        .store
        .delete_identity(&f.workspace, identity.id.as_str(), &audit(&f.workspace))
        .await
        .unwrap();
    assert_eq!(unlinked, Some(vec![record.digest]));
    let read = f
        .store
        .key_by_digest(&record.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.identity, None);
    assert_eq!(f.store.identity(&f.workspace, "acme").await.unwrap(), None);
    assert_eq!(
        f.store
            .delete_identity(&f.workspace, "acme", &audit(&f.workspace))
            .await
            .unwrap(),
        None
    );
    // The external id is free again.
    let again = f
        .store
        .upsert_identity(&identity_in(&f.workspace, "acme"), &audit(&f.workspace))
        .await
        .unwrap();
    assert_ne!(again.id, identity.id);
}

async fn identities_are_searched_ignoring_case_and_paged_by_id(backend: Backend) {
    let f = fixture(backend).await;
    let mut ids = Vec::new();
    for external in ["Alpha-User", "beta-user", "GAMMA", "delta_user", "epsilon"] {
        let identity = identity_in(&f.workspace, external);
        f.store
            .insert_identity(&identity, &audit(&identity.workspace_id))
            .await
            .unwrap();
        ids.push(identity.id);
    }
    ids.sort();

    let found = |search: &'static str| {
        let (store, workspace) = (Arc::clone(&f.store), f.workspace.clone());
        async move {
            let page = store
                .identities(&workspace, Some(search), page(100))
                .await
                .unwrap();
            let mut names: Vec<String> = page
                .items
                .into_iter()
                .map(|i| i.external_id.as_str().to_owned())
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(
        found("USER").await,
        ["Alpha-User", "beta-user", "delta_user"]
    );
    assert_eq!(found("gamma").await, ["GAMMA"]);
    // Search text is literal: `_` is no wildcard (as a LIKE pattern, `a_u` would also match
    // `a-u`).
    assert_eq!(found("a_u").await, ["delta_user"]);
    assert!(found("nobody").await.is_empty());

    let first = f
        .store
        .identities(&f.workspace, None, page(2))
        .await
        .unwrap();
    let first_ids: Vec<_> = first.items.iter().map(|i| i.id.clone()).collect();
    assert_eq!(first_ids, ids[..2]);
    let next = first.next.expect("more than one page");
    let rest = f
        .store
        .identities(&f.workspace, None, page_from(Some(next), 10))
        .await
        .unwrap();
    let rest_ids: Vec<_> = rest.items.iter().map(|i| i.id.clone()).collect();
    assert_eq!(rest_ids, ids[2..]);
    assert_eq!(rest.next, None);
}
