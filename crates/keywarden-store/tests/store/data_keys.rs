//! Recoverable keys in storage: a workspace's data key is created once and re-wrapped in
//! place, and a key's sealed plaintext reads back as it was written.

use keywarden_core::id::KeyId;
use keywarden_core::secret::PlaintextKey;
use keywarden_core::vault::{DataKey, MasterKey, MasterKeyId, MasterKeyring};

use crate::backend::Backend;
use crate::fixture::{NOW, audit, fixture, random_digest};

store_tests!(
    the_first_data_key_of_a_workspace_wins_and_rewraps_in_place,
    sealed_keys_read_back_and_open,
);

fn ring(ids: &[&str]) -> (MasterKeyring, Vec<String>) {
    let entries: Vec<String> = ids
        .iter()
        .map(|id| MasterKey::generate(MasterKeyId::parse(id).unwrap()).expose_config_entry())
        .collect();
    (MasterKeyring::parse(&entries.join("\n")).unwrap(), entries)
}

async fn the_first_data_key_of_a_workspace_wins_and_rewraps_in_place(backend: Backend) {
    let f = fixture(backend).await;
    assert!(f.store.data_key(&f.workspace).await.unwrap().is_none());
    let (old_ring, old_entries) = ring(&["old"]);
    let first = old_ring.wrap(&f.workspace, &DataKey::generate(NOW), NOW);
    let stored = f.store.insert_data_key(&first).await.unwrap();
    assert_eq!(stored, first);

    // A second first use (another node, a race) gets the data key already stored.
    let second = old_ring.wrap(&f.workspace, &DataKey::generate(NOW), NOW);
    assert_eq!(f.store.insert_data_key(&second).await.unwrap(), first);
    assert_eq!(f.store.data_keys().await.unwrap(), vec![first.clone()]);

    let new = MasterKey::generate(MasterKeyId::parse("new").unwrap()).expose_config_entry();
    let both = MasterKeyring::parse(&format!("{new}\n{}", old_entries[0])).unwrap();
    let rewrapped = both.rewrap(&first).unwrap().expect("under an old key");
    f.store.rewrap_data_key(&rewrapped).await.unwrap();
    let read = f.store.data_key(&f.workspace).await.unwrap().unwrap();
    assert_eq!(read, rewrapped);
    assert_eq!(read.master_key_id.as_str(), "new");
    assert_eq!(
        MasterKeyring::parse(&new)
            .unwrap()
            .unwrap(&read)
            .unwrap()
            .id(),
        old_ring.unwrap(&first).unwrap().id()
    );
}

async fn sealed_keys_read_back_and_open(backend: Backend) {
    let f = fixture(backend).await;
    let data_key = DataKey::generate(NOW);
    let plaintext = PlaintextKey::new("sk_sealed_in_the_store".to_owned());
    let mut key = f.key(random_digest(), None);
    key.id = KeyId::generate(NOW);
    key.sealed = Some(data_key.seal(&f.workspace, &key.id, &plaintext));
    f.store
        .insert_key(&key, &audit(&f.workspace))
        .await
        .unwrap();

    let read = f.store.key(&f.workspace, &key.id).await.unwrap().unwrap();
    assert_eq!(read.sealed, key.sealed);
    let opened = data_key
        .open(&f.workspace, &key.id, read.sealed.as_ref().unwrap())
        .unwrap();
    assert_eq!(opened, plaintext);
    let by_digest = f.store.key_by_digest(&key.digest).await.unwrap().unwrap();
    assert_eq!(by_digest.sealed, key.sealed);

    let plain = f.key(random_digest(), None);
    f.store
        .insert_key(&plain, &audit(&f.workspace))
        .await
        .unwrap();
    let read = f.store.key(&f.workspace, &plain.id).await.unwrap().unwrap();
    assert_eq!(read.sealed, None);
}
