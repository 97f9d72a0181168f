//! Copying a whole installation from one store to another (SQLite to PostgreSQL or back), so
//! a user can grow from one machine to a cluster without re-issuing keys.
//!
//! The copy works on rows, not on domain records: every table is copied as it is, soft-deleted
//! keys, revoked root keys and hashes included, so the target verifies exactly the keys the
//! source did. Both backends share one schema shape (the same tables and columns); only how
//! flags are stored differs (SQLite integers, PostgreSQL booleans), which [`Kind`] records.
//! The target must be empty; everything is written in one transaction, and the row counts of
//! every table are compared afterwards.

mod postgres;
mod sqlite;

use async_trait::async_trait;
use keywarden_core::store::StoreResult;

/// How a column's values are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    /// An integer 0/1 in SQLite, a boolean in PostgreSQL.
    Flag,
}

/// One column's value in transit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Text(String),
    Int(i64),
    Flag(bool),
}

pub type Row = Vec<Value>;

/// A table and its columns, in the order values travel.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
}

impl Table {
    /// The column list, quoted, for SELECT and INSERT.
    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(name, _)| format!("\"{name}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

use Kind::{Flag, Int, Text};

/// Every table holding an installation's data, parents before children. The `revisions`
/// counters are not data: a new store starts them afresh.
pub static TABLES: &[Table] = &[
    Table {
        name: "workspaces",
        columns: &[("id", Text), ("name", Text), ("created_at", Int)],
    },
    Table {
        name: "root_keys",
        columns: &[
            ("id", Text),
            ("workspace_id", Text),
            ("hash", Text),
            ("start", Text),
            ("name", Text),
            ("permissions", Text),
            ("created_at", Int),
            ("revoked_at", Int),
            ("end", Text),
            ("expires", Int),
            ("enabled", Flag),
        ],
    },
    Table {
        name: "apis",
        columns: &[
            ("id", Text),
            ("workspace_id", Text),
            ("name", Text),
            ("default_prefix", Text),
            ("default_byte_length", Int),
            ("delete_protection", Flag),
            ("created_at", Int),
            ("deleted_at", Int),
            ("restrictions", Text),
            ("default_key_lifetime_ms", Int),
            ("max_key_lifetime_ms", Int),
        ],
    },
    Table {
        name: "identities",
        columns: &[
            ("id", Text),
            ("workspace_id", Text),
            ("external_id", Text),
            ("meta", Text),
            ("ratelimits", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "keys",
        columns: &[
            ("id", Text),
            ("workspace_id", Text),
            ("api_id", Text),
            ("hash", Text),
            ("start", Text),
            ("prefix", Text),
            ("byte_length", Int),
            ("name", Text),
            ("meta", Text),
            ("enabled", Flag),
            ("expires", Int),
            ("credits_remaining", Int),
            ("refill_interval", Text),
            ("refill_amount", Int),
            ("refill_day", Int),
            ("last_refill_at", Int),
            ("created_at", Int),
            ("updated_at", Int),
            ("deleted_at", Int),
            ("identity_id", Text),
            ("ratelimits", Text),
            ("last_used_at", Int),
            ("replaced_at", Int),
            ("rotated_to", Text),
            ("encryption_key_id", Text),
            ("encrypted", Text),
            ("restrictions", Text),
        ],
    },
    Table {
        name: "ratelimit_namespaces",
        columns: &[
            ("id", Text),
            ("workspace_id", Text),
            ("name", Text),
            ("created_at", Int),
        ],
    },
    Table {
        name: "ratelimit_overrides",
        columns: &[
            ("id", Text),
            ("workspace_id", Text),
            ("namespace_id", Text),
            ("identifier", Text),
            ("limit", Int),
            ("duration", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "permissions",
        columns: &[
            ("id", Text),
            ("workspace_id", Text),
            ("name", Text),
            ("slug", Text),
            ("description", Text),
            ("created_at", Int),
        ],
    },
    Table {
        name: "roles",
        columns: &[
            ("id", Text),
            ("workspace_id", Text),
            ("name", Text),
            ("description", Text),
            ("created_at", Int),
        ],
    },
    Table {
        name: "role_permissions",
        columns: &[("role_id", Text), ("permission_id", Text)],
    },
    Table {
        name: "key_permissions",
        columns: &[("key_id", Text), ("permission_id", Text)],
    },
    Table {
        name: "key_roles",
        columns: &[("key_id", Text), ("role_id", Text)],
    },
    Table {
        name: "audit_log",
        columns: &[
            ("id", Text),
            ("workspace_id", Text),
            ("time", Int),
            ("actor_type", Text),
            ("actor_id", Text),
            ("action", Text),
            ("targets", Text),
            ("changes", Text),
            ("request_id", Text),
            ("client_ip", Text),
        ],
    },
    // Webhooks: endpoints, the outbox with its delivery log, and the announced expiries, so
    // deliveries still due are sent from the new store.
    Table {
        name: "webhook_endpoints",
        columns: &[
            ("id", Text),
            ("workspace_id", Text),
            ("url", Text),
            ("description", Text),
            ("event_types", Text),
            ("enabled", Flag),
            ("secret", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "webhook_deliveries",
        columns: &[
            ("id", Text),
            ("workspace_id", Text),
            ("endpoint_id", Text),
            ("event_type", Text),
            ("payload", Text),
            ("created_at", Int),
            ("attempts", Int),
            ("state", Text),
            ("next_attempt_at", Int),
            ("last_status", Int),
            ("last_error", Text),
            ("delivered_at", Int),
            ("lease_until", Int),
        ],
    },
    Table {
        name: "webhook_attempts",
        columns: &[
            ("delivery_id", Text),
            ("attempt", Int),
            ("at", Int),
            ("status", Int),
            ("error", Text),
            ("duration_ms", Int),
        ],
    },
    Table {
        name: "webhook_expiry_notices",
        columns: &[("key_id", Text), ("expires", Int), ("announced_at", Int)],
    },
    // Usage history: raw verifications in their batches (within their retention), the rollup
    // rows not yet folded, and the rollups.
    Table {
        name: "analytics_event_batches",
        columns: &[
            ("id", Text),
            ("workspace_id", Text),
            ("first_time", Int),
            ("last_time", Int),
            ("event_count", Int),
            ("events", Text),
        ],
    },
    Table {
        name: "analytics_rollups_pending",
        columns: &[("id", Text), ("rows", Text)],
    },
    Table {
        name: "analytics_verifications_per_minute",
        columns: ROLLUP_COLUMNS,
    },
    Table {
        name: "analytics_verifications_per_hour",
        columns: ROLLUP_COLUMNS,
    },
    Table {
        name: "analytics_verifications_per_day",
        columns: ROLLUP_COLUMNS,
    },
    Table {
        name: "analytics_verifications_per_month",
        columns: ROLLUP_COLUMNS,
    },
    Table {
        name: "anomalies",
        columns: &[
            ("id", Text),
            ("workspace_id", Text),
            ("kind", Text),
            ("severity", Text),
            ("key_id", Text),
            ("client_ip", Text),
            ("time", Int),
            ("evidence", Text),
        ],
    },
    Table {
        name: "leak_policies",
        columns: &[
            ("workspace_id", Text),
            ("policy", Text),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "data_keys",
        columns: &[
            ("id", Text),
            ("workspace_id", Text),
            ("master_key_id", Text),
            ("wrapped", Text),
            ("created_at", Int),
        ],
    },
    Table {
        name: "signing_keys",
        columns: &[("id", Text), ("created_at", Int), ("seed", Text)],
    },
];

/// The columns of every `analytics_verifications_per_*` rollup table.
const ROLLUP_COLUMNS: &[(&str, Kind)] = &[
    ("time", Int),
    ("workspace_id", Text),
    ("key_space_id", Text),
    ("identity_id", Text),
    ("external_id", Text),
    ("key_id", Text),
    ("outcome", Text),
    ("tags", Text),
    ("count", Int),
    ("spent_credits", Int),
];

/// Raw access to a store's tables, for copying.
#[async_trait]
pub trait Tables: Send + Sync {
    /// Every row of `table`, in primary-key order.
    async fn read_rows(&self, table: &'static Table) -> StoreResult<Vec<Row>>;
    /// Inserts the rows of every table, in the order given, in one transaction.
    async fn write_rows(&self, tables: Vec<(&'static Table, Vec<Row>)>) -> StoreResult<()>;
    async fn count_rows(&self, table: &'static Table) -> StoreResult<u64>;
}

/// What a copy moved: rows per table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub tables: Vec<(&'static str, u64)>,
}

/// Why a copy did not happen or did not check out.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the target store is not empty: its table {0} has rows")]
    TargetNotEmpty(&'static str),
    #[error(
        "after the copy, table {table} has {found} rows in the target but {expected} in the source"
    )]
    CountMismatch {
        table: &'static str,
        expected: u64,
        found: u64,
    },
    #[error(transparent)]
    Store(#[from] keywarden_core::store::StoreError),
}

/// Opens the store at `location` (creating its schema if needed) for copying.
pub async fn open_tables(
    location: &crate::StoreLocation,
) -> Result<Box<dyn Tables>, crate::OpenError> {
    Ok(match location {
        crate::StoreLocation::Sqlite(path) => Box::new(crate::SqliteStore::open(path)?),
        crate::StoreLocation::Postgres(url) => Box::new(crate::PostgresStore::connect(url).await?),
    })
}

/// Copies every table of `from` into the empty store `to` and checks the counts.
pub async fn copy(from: &dyn Tables, to: &dyn Tables) -> Result<CopyReport, CopyError> {
    for table in TABLES {
        if to.count_rows(table).await? > 0 {
            return Err(CopyError::TargetNotEmpty(table.name));
        }
    }
    let mut batch = Vec::with_capacity(TABLES.len());
    let mut expected = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let rows = from.read_rows(table).await?;
        expected.push((table.name, rows.len() as u64));
        batch.push((table, rows));
    }
    to.write_rows(batch).await?;
    for (table, (name, rows)) in TABLES.iter().zip(&expected) {
        let found = to.count_rows(table).await?;
        if found != *rows {
            return Err(CopyError::CountMismatch {
                table: name,
                expected: *rows,
                found,
            });
        }
    }
    Ok(CopyReport { tables: expected })
}
