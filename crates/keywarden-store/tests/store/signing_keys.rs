//! Signing keys of short-lived tokens: a rotation adds a key only when none is fresh, two
//! rotations at once add one key, and replaced keys are deleted once past their overlap.

use keywarden_core::time::UnixMillis;
use keywarden_core::token::SigningKeyRecord;

use crate::backend::Backend;
use crate::fixture::{NOW, fixture};

store_tests!(
    rotation_adds_a_key_only_when_due_and_retires_old_ones,
    concurrent_rotations_add_one_key,
);

fn at(offset: i64) -> UnixMillis {
    NOW.plus_millis(offset)
}

async fn rotation_adds_a_key_only_when_due_and_retires_old_ones(backend: Backend) {
    let f = fixture(backend).await;
    assert!(f.store.signing_keys().await.unwrap().is_empty());
    let first = SigningKeyRecord::generate(at(0), None);
    assert!(
        f.store
            .rotate_signing_key(&first, at(-1), at(-10_000))
            .await
            .unwrap()
    );
    assert_eq!(f.store.signing_keys().await.unwrap(), vec![first.clone()]);

    // `first` was created after the due time: another rotation is not due yet.
    let early = SigningKeyRecord::generate(at(50), None);
    assert!(
        !f.store
            .rotate_signing_key(&early, at(-1), at(-10_000))
            .await
            .unwrap()
    );
    let second = SigningKeyRecord::generate(at(100), None);
    assert!(
        f.store
            .rotate_signing_key(&second, at(0), at(-10_000))
            .await
            .unwrap()
    );
    let third = SigningKeyRecord::generate(at(200), None);
    // Keys older than the newest key created at or before at(100) (that is `second`) go.
    assert!(
        f.store
            .rotate_signing_key(&third, at(100), at(100))
            .await
            .unwrap()
    );
    let ids: Vec<_> = f
        .store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, vec![third.id, second.id]);
}

async fn concurrent_rotations_add_one_key(backend: Backend) {
    let f = fixture(backend).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move {
            let key = SigningKeyRecord::generate(at(0), None);
            store
                .rotate_signing_key(&key, at(-1), at(-1))
                .await
                .unwrap()
        }));
    }
    let mut added = 0;
    for task in tasks {
        added += usize::from(task.await.unwrap());
    }
    assert_eq!(added, 1);
    assert_eq!(f.store.signing_keys().await.unwrap().len(), 1);
}
