//! The in-memory view of rate-limit namespaces and their overrides, so `ratelimit.limit`
//! decides without reading the store.
//!
//! A namespace is loaded with its overrides on first use and kept until its overrides change
//! (here or on another node), which drops it so the next use loads it again. Entries are found by the id or the name a client used.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keywarden_core::id::{NamespaceId, WorkspaceId};
use keywarden_core::namespace::{Namespace, RateOverride};
use keywarden_core::ratelimit::OverrideSet;
use keywarden_core::store::{NamespaceStore, StoreResult};
use parking_lot::RwLock;

/// A namespace with the overrides its limit calls match against.
#[derive(Debug)]
pub struct LoadedNamespace {
    pub namespace: Namespace,
    /// Never changed in place: a change to the overrides drops the whole entry.
    overrides: Arc<OverrideSet<RateOverride>>,
}

impl LoadedNamespace {
    pub fn overrides(&self) -> Arc<OverrideSet<RateOverride>> {
        Arc::clone(&self.overrides)
    }
}

fn override_set(overrides: Vec<RateOverride>) -> OverrideSet<RateOverride> {
    OverrideSet::new(
        overrides
            .into_iter()
            .map(|o| (o.identifier.as_str().to_owned(), o)),
    )
}

/// Per workspace, the namespaces by every reference they were used with. Two levels, so a
/// lookup borrows its keys instead of building one.
type References = HashMap<WorkspaceId, HashMap<String, Arc<LoadedNamespace>>>;

#[derive(Default)]
pub struct NamespaceDirectory {
    by_reference: RwLock<References>,
    /// Moves whenever entries are dropped, so a load that read the store before a change
    /// does not put what it read back after the change dropped it.
    generation: AtomicU64,
}

impl NamespaceDirectory {
    /// The namespace a client calls `reference` (id or name), from memory when known.
    pub fn cached(&self, workspace: &WorkspaceId, reference: &str) -> Option<Arc<LoadedNamespace>> {
        self.by_reference
            .read()
            .get(workspace)
            .and_then(|references| references.get(reference))
            .cloned()
    }

    /// Loads `namespace` and its overrides and remembers it under its id, its name and the
    /// reference the client used.
    pub async fn load(
        &self,
        namespace: Namespace,
        reference: &str,
        store: &dyn NamespaceStore,
    ) -> StoreResult<Arc<LoadedNamespace>> {
        let workspace = namespace.workspace_id.clone();
        if let Some(known) = self.cached(&workspace, namespace.id.as_str()) {
            self.remember(&workspace, reference, &known);
            return Ok(known);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let overrides = store.overrides(&workspace, &namespace.id).await?;
        let loaded = Arc::new(LoadedNamespace {
            overrides: Arc::new(override_set(overrides)),
            namespace,
        });
        let mut map = self.by_reference.write();
        if self.generation.load(Ordering::SeqCst) != generation {
            // Possibly stale: answer this call with it, but keep nothing.
            return Ok(loaded);
        }
        let references = map.entry(workspace).or_default();
        // Another request may have loaded it meanwhile; keep the first so there is one set.
        let entry = references
            .entry(loaded.namespace.id.to_string())
            .or_insert_with(|| Arc::clone(&loaded))
            .clone();
        references.insert(entry.namespace.name.as_str().to_owned(), Arc::clone(&entry));
        references.insert(reference.to_owned(), Arc::clone(&entry));
        Ok(entry)
    }

    fn remember(&self, workspace: &WorkspaceId, reference: &str, entry: &Arc<LoadedNamespace>) {
        self.by_reference
            .write()
            .entry(workspace.clone())
            .or_default()
            .insert(reference.to_owned(), Arc::clone(entry));
    }

    /// Drops a namespace whose overrides changed; its next use loads it again.
    pub fn forget(&self, workspace: &WorkspaceId, namespace: &NamespaceId) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(references) = self.by_reference.write().get_mut(workspace) {
            references.retain(|_, entry| entry.namespace.id != *namespace);
        }
    }

    /// Drops every namespace.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.by_reference.write().clear();
    }
}
