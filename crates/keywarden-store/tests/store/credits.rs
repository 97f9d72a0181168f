//! Credits: spends are exact under concurrency, refills apply once when due.

use std::sync::Arc;

use keywarden_core::credits::{CreditRefill, Credits, RefillSchedule, SpendOutcome};
use keywarden_core::id::KeyId;
use keywarden_core::store::CreditSpend;
use keywarden_core::time::UnixMillis;

use crate::backend::Backend;
use crate::fixture::{NOW, audit, fixture, random_digest};

store_tests!(
    spending_is_exact_under_concurrency,
    spends_tell_missing_unlimited_and_insufficient_apart,
    due_refills_apply_once_on_spend_or_in_the_refill_pass,
);

async fn spending_is_exact_under_concurrency(backend: Backend) {
    let f = fixture(backend).await;
    let record = f.key(random_digest(), Some(25));
    f.store
        .insert_key(&record, &audit(&record.workspace_id))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (store, id) = (Arc::clone(&f.store), record.id.clone());
            tokio::spawn(async move { store.spend_credits(&id, 1, NOW).await.unwrap() })
        })
        .collect();
    let mut spent = 0;
    for task in tasks {
        match task.await.unwrap() {
            CreditSpend::Outcome(SpendOutcome::Spent { .. }) => spent += 1,
            CreditSpend::Outcome(SpendOutcome::Insufficient { remaining }) => {
                assert_eq!(remaining, 0)
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(spent, 25);
    let after = f
        .store
        .key(&f.workspace, &record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.credits.unwrap().remaining(), 0);
}

async fn spends_tell_missing_unlimited_and_insufficient_apart(backend: Backend) {
    let f = fixture(backend).await;
    let unlimited = f.key(random_digest(), None);
    let limited = f.key(random_digest(), Some(5));
    f.store
        .insert_key(&unlimited, &audit(&unlimited.workspace_id))
        .await
        .unwrap();
    f.store
        .insert_key(&limited, &audit(&limited.workspace_id))
        .await
        .unwrap();

    let spend = |id: KeyId, cost| {
        let store = Arc::clone(&f.store);
        async move { store.spend_credits(&id, cost, NOW).await.unwrap() }
    };
    assert_eq!(
        spend(KeyId::generate(NOW), 1).await,
        CreditSpend::KeyMissing
    );
    assert_eq!(spend(unlimited.id.clone(), 1).await, CreditSpend::Unlimited);
    assert_eq!(
        spend(limited.id.clone(), 6).await,
        CreditSpend::Outcome(SpendOutcome::Insufficient { remaining: 5 })
    );
    assert_eq!(
        spend(limited.id.clone(), 0).await,
        CreditSpend::Outcome(SpendOutcome::Spent { remaining: 5 })
    );
    assert_eq!(
        spend(limited.id.clone(), 5).await,
        CreditSpend::Outcome(SpendOutcome::Spent { remaining: 0 })
    );
    f.store
        .delete_key(&f.workspace, &limited.id, false, NOW, &audit(&f.workspace))
        .await
        .unwrap();
    assert_eq!(spend(limited.id.clone(), 1).await, CreditSpend::KeyMissing);
}

async fn due_refills_apply_once_on_spend_or_in_the_refill_pass(backend: Backend) {
    let f = fixture(backend).await;
    let two_days_ago = UnixMillis::from_millis(NOW.as_millis() - 2 * 86_400_000);
    let daily = CreditRefill::new(RefillSchedule::Daily, 10).unwrap();
    let refillable = |remaining| {
        let mut record = f.key(random_digest(), None);
        record.credits = Some(Credits::new(remaining, Some(daily), two_days_ago).unwrap());
        record.created_at = two_days_ago;
        record
    };
    let spent_on = refillable(2);
    let passed = refillable(3);
    let full = refillable(50);
    for record in [&spent_on, &passed, &full] {
        f.store
            .insert_key(record, &audit(&record.workspace_id))
            .await
            .unwrap();
    }

    // A spend applies the due refill first.
    assert_eq!(
        f.store.spend_credits(&spent_on.id, 4, NOW).await.unwrap(),
        CreditSpend::Outcome(SpendOutcome::Spent { remaining: 6 })
    );

    // The pass refills what is due; a balance above the amount is left alone (and not
    // reported), and the key refilled by the spend is not due again.
    let refilled = f.store.refill_due_credits(NOW).await.unwrap();
    assert_eq!(refilled, vec![passed.digest]);
    let read = |id: KeyId| {
        let store = Arc::clone(&f.store);
        let workspace = f.workspace.clone();
        async move {
            let key = store.key(&workspace, &id).await.unwrap().unwrap();
            key.credits.unwrap()
        }
    };
    let after = read(passed.id.clone()).await;
    assert_eq!(after.remaining(), 10);
    assert_eq!(after.last_refill_at(), NOW);
    assert_eq!(read(full.id.clone()).await.remaining(), 50);
    assert_eq!(read(spent_on.id.clone()).await.remaining(), 6);

    // Nothing is due twice the same day.
    assert!(f.store.refill_due_credits(NOW).await.unwrap().is_empty());
    assert_eq!(
        f.store.spend_credits(&passed.id, 1, NOW).await.unwrap(),
        CreditSpend::Outcome(SpendOutcome::Spent { remaining: 9 })
    );
}
