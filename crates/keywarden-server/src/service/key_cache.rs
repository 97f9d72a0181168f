//! The in-memory view of keys that verification reads.
//!
//! Two layers. A set of every known key digest (eight bytes each) answers "no such key" for
//! random or revoked keys without touching the store, so guessing cannot load it. Behind it,
//! a bounded cache of key records (quick_cache: a sharded, read-locked map with
//! CLOCK-style eviction, much cheaper per hit than an LRU with per-read bookkeeping), filled on demand and invalidated on every change.
//!
//! Invalidation races with loading: a load that read the store just before a change commits
//! could put a stale record back after the change invalidated it. Every change bumps
//! `changes` *before* invalidating, and every load re-checks `changes` *after* inserting; if
//! it moved, the load removes what it inserted. Whichever of the two comes last removes the
//! stale record.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use keywarden_core::digest::KeyDigest;
use keywarden_core::key::KeyRecord;
use keywarden_core::store::{KeyStore, StoreResult};
use parking_lot::RwLock;

use super::verify_limits::LimitPlan;
use quick_cache::sync::Cache;

/// Hashes a `u64` as itself: digests are uniformly random already.
#[derive(Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by [`KeyDigest::index`], hashed as itself.
pub(super) type DigestMap<V> = HashMap<u64, V, BuildHasherDefault<DigestHasher>>;

/// A cached key record, with a slot where the HTTP layer keeps the part of the verification
/// response that depends only on the record, rendered on first use. A change to the key
/// replaces the whole entry, so the rendering can never be stale.
#[derive(Debug)]
pub struct CachedKey {
    record: KeyRecord,
    presentation: OnceLock<Box<[u8]>>,
    /// The limits every verification of this key checks, planned on first use; `None` for a
    /// key without any, so verifying it touches no plan (nor its reference count).
    automatic_limits: OnceLock<Option<Arc<LimitPlan>>>,
    /// Every slug the key holds (direct and through roles), sorted, gathered on first use:
    /// permission queries look slugs up here instead of collecting and sorting per request.
    effective_permissions: OnceLock<Box<[Box<str>]>>,
}

impl CachedKey {
    fn new(record: KeyRecord) -> Self {
        Self {
            record,
            presentation: OnceLock::new(),
            automatic_limits: OnceLock::new(),
            effective_permissions: OnceLock::new(),
        }
    }

    /// Whether the key holds the permission `slug`, directly or through a role.
    pub fn holds(&self, slug: &str) -> bool {
        self.effective_permissions
            .get_or_init(|| {
                self.record
                    .effective_permissions()
                    .into_iter()
                    .map(Box::from)
                    .collect()
            })
            .binary_search_by(|held| (**held).cmp(slug))
            .is_ok()
    }

    pub fn automatic_limits(&self) -> Option<&Arc<LimitPlan>> {
        self.automatic_limits
            .get_or_init(|| LimitPlan::automatic(&self.record).map(Arc::new))
            .as_ref()
    }

    /// The rendering of this record, made by `render` the first time it is asked for.
    pub fn presentation(&self, render: impl FnOnce(&KeyRecord) -> Vec<u8>) -> &[u8] {
        self.presentation
            .get_or_init(|| render(&self.record).into_boxed_slice())
    }
}

impl std::ops::Deref for CachedKey {
    type Target = KeyRecord;

    fn deref(&self) -> &KeyRecord {
        &self.record
    }
}

/// A cached lookup result; `None` remembers that the store has no such key.
type Entry = Option<Arc<CachedKey>>;

pub struct KeyCache {
    /// How many stored keys share each digest head; a count so removing one of two keys
    /// with the same eight bytes keeps the other.
    known: RwLock<DigestMap<u32>>,
    records: Cache<KeyDigest, Entry, quick_cache::UnitWeighter, BuildHasherDefault<DigestHasher>>,
    changes: AtomicU64,
    /// Moves with every change of `known`, so a reload can tell it raced with one.
    known_changes: AtomicU64,
    lookups: LookupCounts,
}

/// Counters of [`KeyCache::lookup`], for `/metrics`.
#[derive(Debug, Default)]
struct LookupCounts {
    hits: AtomicU64,
    loads: AtomicU64,
    unknown: AtomicU64,
}

/// How verification lookups were answered: from a cached record, by loading the record from
/// the store, or as unknown from the digest set; and how many records are cached now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLookups {
    pub hits: u64,
    pub loads: u64,
    pub unknown: u64,
    pub cached_records: u64,
}

impl KeyCache {
    pub fn new(capacity: u64) -> Self {
        Self {
            known: RwLock::new(DigestMap::default()),
            records: Cache::with(
                usize::try_from(capacity).unwrap_or(usize::MAX),
                capacity,
                quick_cache::UnitWeighter,
                BuildHasherDefault::default(),
                quick_cache::sync::DefaultLifecycle::default(),
            ),
            changes: AtomicU64::new(0),
            known_changes: AtomicU64::new(0),
            lookups: LookupCounts::default(),
        }
    }

    /// How verification lookups were answered since start.
    pub fn lookup_counts(&self) -> CacheLookups {
        CacheLookups {
            hits: self.lookups.hits.load(Ordering::Relaxed),
            loads: self.lookups.loads.load(Ordering::Relaxed),
            unknown: self.lookups.unknown.load(Ordering::Relaxed),
            cached_records: self.records.len() as u64,
        }
    }

    /// Fills the set of known digests from the store: at startup, and again after the change
    /// feed was down. A key added or removed while the store was read may be missing from
    /// what was read, so then it reads again.
    pub async fn load_known(&self, store: &dyn KeyStore) -> StoreResult<usize> {
        loop {
            let before = self.known_changes.load(Ordering::SeqCst);
            let digests = store.all_key_digests().await?;
            let mut known = DigestMap::default();
            for digest in &digests {
                *known.entry(digest.index()).or_insert(0) += 1;
            }
            let mut current = self.known.write();
            if self.known_changes.load(Ordering::SeqCst) == before {
                *current = known;
                return Ok(digests.len());
            }
        }
    }

    /// The key with this digest, from memory when possible.
    pub async fn lookup(&self, digest: &KeyDigest, store: &dyn KeyStore) -> StoreResult<Entry> {
        if !self.known.read().contains_key(&digest.index()) {
            self.lookups.unknown.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        if let Some(entry) = self.records.get(digest) {
            self.lookups.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(entry);
        }
        self.lookups.loads.fetch_add(1, Ordering::Relaxed);
        let before = self.changes.load(Ordering::SeqCst);
        let entry = store
            .key_by_digest(digest)
            .await?
            .map(|record| Arc::new(CachedKey::new(record)));
        self.records.insert(*digest, entry.clone());
        if self.changes.load(Ordering::SeqCst) != before {
            self.records.remove(digest);
        }
        Ok(entry)
    }

    /// The key with this digest as the store has it now, bypassing cached records (for reads
    /// that show balances, which spends change without invalidating). Unknown digests are
    /// still answered from memory.
    pub async fn lookup_fresh(
        &self,
        digest: &KeyDigest,
        store: &dyn KeyStore,
    ) -> StoreResult<Option<KeyRecord>> {
        if !self.known.read().contains_key(&digest.index()) {
            return Ok(None);
        }
        store.key_by_digest(digest).await
    }

    /// The key with this digest as the store has it now, skipping memory entirely: for when
    /// memory may be stale.
    pub async fn lookup_uncached(
        &self,
        digest: &KeyDigest,
        store: &dyn KeyStore,
    ) -> StoreResult<Entry> {
        Ok(store
            .key_by_digest(digest)
            .await?
            .map(|record| Arc::new(CachedKey::new(record))))
    }

    /// A key with this digest was stored.
    pub fn added(&self, digest: &KeyDigest) {
        self.known_changes.fetch_add(1, Ordering::SeqCst);
        *self.known.write().entry(digest.index()).or_insert(0) += 1;
        self.changed(digest);
    }

    /// The key with this digest was erased from the store.
    pub fn removed(&self, digest: &KeyDigest) {
        self.known_changes.fetch_add(1, Ordering::SeqCst);
        {
            let mut known = self.known.write();
            if let Some(count) = known.get_mut(&digest.index()) {
                *count -= 1;
                if *count == 0 {
                    known.remove(&digest.index());
                }
            }
        }
        self.changed(digest);
    }

    /// Something many keys share changed (a role's permissions, a deleted permission or
    /// role): every cached record may be stale. Such changes are rare admin operations, so
    /// dropping all records beats tracking which keys hold what.
    pub fn changed_all(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.records.clear();
    }

    /// The key with this digest changed in the store.
    pub fn changed(&self, digest: &KeyDigest) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.records.remove(digest);
    }
}
