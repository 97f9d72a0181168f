//! The PostgreSQL schema and its migrations, applied in order and recorded in
//! `keywarden_schema_version`.
//!
//! The tables mirror the SQLite schema (the same names and columns), with PostgreSQL types:
//! millisecond timestamps and counts as BIGINT, flags as BOOLEAN. Ids, slugs and names are
//! `COLLATE "C"`: pages are "ids from the cursor on, ordered by id", and ids sort by creation
//! only in byte order, which is also SQLite's; a database whose default collation is
//! linguistic (`en_US.UTF-8`) would otherwise order them differently.
//!
//! Nothing names a schema, so the connection's `search_path` decides where the tables live.

use sqlx::postgres::PgConnection;
use sqlx::{Acquire, Row};

use super::PostgresOpenError;

/// Each entry migrates from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE workspaces (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE root_keys (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id),
    hash          TEXT NOT NULL UNIQUE,
    start         TEXT NOT NULL,
    name          TEXT,
    permissions   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    "end"         TEXT NOT NULL DEFAULT '',
    expires       BIGINT,
    enabled       BOOLEAN NOT NULL DEFAULT TRUE
);

-- Counters that change with every change of a kind of object, polled by servers to notice
-- changes made by other processes. Root-key writes lock the `root_keys` row first, which
-- also serializes them (and the first-start bootstrap) across nodes.
CREATE TABLE revisions (
    name   TEXT PRIMARY KEY,
    value  BIGINT NOT NULL
);
INSERT INTO revisions (name, value) VALUES ('root_keys', 0);

CREATE TABLE apis (
    id                   TEXT COLLATE "C" PRIMARY KEY,
    workspace_id         TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id),
    name                 TEXT NOT NULL,
    default_prefix       TEXT,
    default_byte_length  BIGINT NOT NULL,
    delete_protection    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           BIGINT NOT NULL,
    deleted_at           BIGINT
);
CREATE INDEX apis_by_workspace ON apis (workspace_id, id);

CREATE TABLE identities (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id),
    external_id   TEXT COLLATE "C" NOT NULL,
    meta          TEXT,
    -- Named limits as one JSON array: at most 50, always read with the identity.
    ratelimits    TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT,
    UNIQUE (workspace_id, external_id)
);
CREATE INDEX identities_by_workspace ON identities (workspace_id, id);

CREATE TABLE keys (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    workspace_id       TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id),
    api_id             TEXT COLLATE "C" NOT NULL REFERENCES apis(id),
    hash               TEXT NOT NULL UNIQUE,
    start              TEXT NOT NULL,
    prefix             TEXT,
    byte_length        BIGINT NOT NULL,
    name               TEXT,
    meta               TEXT,
    enabled            BOOLEAN NOT NULL,
    expires            BIGINT,
    credits_remaining  BIGINT,
    refill_interval    TEXT,
    refill_amount      BIGINT,
    refill_day         BIGINT,
    last_refill_at     BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT,
    deleted_at         BIGINT,
    identity_id        TEXT COLLATE "C" REFERENCES identities(id),
    ratelimits         TEXT
);
CREATE INDEX keys_by_api ON keys (workspace_id, api_id, id);
CREATE INDEX keys_with_refill ON keys (id) WHERE refill_interval IS NOT NULL;
CREATE INDEX keys_by_identity ON keys (identity_id) WHERE identity_id IS NOT NULL;

CREATE TABLE ratelimit_namespaces (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id),
    name          TEXT COLLATE "C" NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (workspace_id, name)
);

CREATE TABLE ratelimit_overrides (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id),
    namespace_id  TEXT COLLATE "C" NOT NULL REFERENCES ratelimit_namespaces(id),
    identifier    TEXT COLLATE "C" NOT NULL,
    "limit"       BIGINT NOT NULL,
    duration      BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT,
    UNIQUE (namespace_id, identifier)
);

CREATE TABLE permissions (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id),
    name          TEXT COLLATE "C" NOT NULL,
    slug          TEXT COLLATE "C" NOT NULL,
    description   TEXT,
    created_at    BIGINT NOT NULL,
    UNIQUE (workspace_id, slug)
);
CREATE INDEX permissions_by_workspace ON permissions (workspace_id, id);

CREATE TABLE roles (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id),
    name          TEXT COLLATE "C" NOT NULL,
    description   TEXT,
    created_at    BIGINT NOT NULL,
    UNIQUE (workspace_id, name)
);
CREATE INDEX roles_by_workspace ON roles (workspace_id, id);

-- Deleting a role or a permission removes it from every role that had it.
CREATE TABLE role_permissions (
    role_id        TEXT COLLATE "C" NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    permission_id  TEXT COLLATE "C" NOT NULL REFERENCES permissions(id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, permission_id)
);
CREATE INDEX role_permissions_by_permission ON role_permissions (permission_id);

-- What keys hold; deleting a permission or role removes it from every key.
CREATE TABLE key_permissions (
    key_id         TEXT COLLATE "C" NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    permission_id  TEXT COLLATE "C" NOT NULL REFERENCES permissions(id) ON DELETE CASCADE,
    PRIMARY KEY (key_id, permission_id)
);
CREATE INDEX key_permissions_by_permission ON key_permissions (permission_id);

CREATE TABLE key_roles (
    key_id   TEXT COLLATE "C" NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    role_id  TEXT COLLATE "C" NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (key_id, role_id)
);
CREATE INDEX key_roles_by_role ON key_roles (role_id);
"#,
    // The audit log: append-only, read newest first per workspace. `targets` and `changes`
    // are JSON text, like the other JSON columns; `actor_id` is the root key's id (NULL for
    // the CLI and the system).
    r#"
CREATE TABLE audit_log (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id),
    time          BIGINT NOT NULL,
    actor_type    TEXT COLLATE "C" NOT NULL,
    actor_id      TEXT COLLATE "C",
    action        TEXT COLLATE "C" NOT NULL,
    targets       TEXT NOT NULL,
    changes       TEXT NOT NULL,
    request_id    TEXT COLLATE "C",
    client_ip     TEXT
);
CREATE INDEX audit_log_by_workspace ON audit_log (workspace_id, id);
CREATE INDEX audit_log_by_action ON audit_log (workspace_id, action, id);
CREATE INDEX audit_log_by_actor ON audit_log (workspace_id, actor_id, id);
"#,
    r#"
-- One row per verification of a known key, kept for the retention period. No foreign keys:
-- history outlives the keys, APIs and identities it names.
CREATE TABLE analytics_verifications (
    request_id     TEXT COLLATE "C" NOT NULL,
    time           BIGINT NOT NULL,
    workspace_id   TEXT COLLATE "C" NOT NULL,
    key_space_id   TEXT COLLATE "C" NOT NULL,
    identity_id    TEXT COLLATE "C",
    external_id    TEXT COLLATE "C",
    key_id         TEXT COLLATE "C" NOT NULL,
    outcome        TEXT NOT NULL,
    region         TEXT NOT NULL DEFAULT '',
    tags           TEXT NOT NULL,
    spent_credits  BIGINT NOT NULL,
    client_ip      TEXT
);
CREATE INDEX analytics_verifications_by_time ON analytics_verifications (workspace_id, time);
CREATE INDEX analytics_verifications_for_pruning ON analytics_verifications (time);

-- Counts per bucket (its start in Unix ms, UTC), kept for good. A row is unique per
-- workspace, bucket, API, key, identity, outcome and tags; identity_id is NULL for keys
-- without one, so the uniqueness reads it through coalesce.
CREATE TABLE analytics_verifications_per_minute (
    time           BIGINT NOT NULL,
    workspace_id   TEXT COLLATE "C" NOT NULL,
    key_space_id   TEXT COLLATE "C" NOT NULL,
    identity_id    TEXT COLLATE "C",
    external_id    TEXT COLLATE "C",
    key_id         TEXT COLLATE "C" NOT NULL,
    outcome        TEXT NOT NULL,
    tags           TEXT NOT NULL,
    count          BIGINT NOT NULL,
    spent_credits  BIGINT NOT NULL
);
CREATE UNIQUE INDEX analytics_verifications_per_minute_row ON analytics_verifications_per_minute
    (workspace_id, time, key_space_id, key_id, (coalesce(identity_id, '')), outcome, tags);
CREATE TABLE analytics_verifications_per_hour (
    time           BIGINT NOT NULL,
    workspace_id   TEXT COLLATE "C" NOT NULL,
    key_space_id   TEXT COLLATE "C" NOT NULL,
    identity_id    TEXT COLLATE "C",
    external_id    TEXT COLLATE "C",
    key_id         TEXT COLLATE "C" NOT NULL,
    outcome        TEXT NOT NULL,
    tags           TEXT NOT NULL,
    count          BIGINT NOT NULL,
    spent_credits  BIGINT NOT NULL
);
CREATE UNIQUE INDEX analytics_verifications_per_hour_row ON analytics_verifications_per_hour
    (workspace_id, time, key_space_id, key_id, (coalesce(identity_id, '')), outcome, tags);
CREATE TABLE analytics_verifications_per_day (
    time           BIGINT NOT NULL,
    workspace_id   TEXT COLLATE "C" NOT NULL,
    key_space_id   TEXT COLLATE "C" NOT NULL,
    identity_id    TEXT COLLATE "C",
    external_id    TEXT COLLATE "C",
    key_id         TEXT COLLATE "C" NOT NULL,
    outcome        TEXT NOT NULL,
    tags           TEXT NOT NULL,
    count          BIGINT NOT NULL,
    spent_credits  BIGINT NOT NULL
);
CREATE UNIQUE INDEX analytics_verifications_per_day_row ON analytics_verifications_per_day
    (workspace_id, time, key_space_id, key_id, (coalesce(identity_id, '')), outcome, tags);
CREATE TABLE analytics_verifications_per_month (
    time           BIGINT NOT NULL,
    workspace_id   TEXT COLLATE "C" NOT NULL,
    key_space_id   TEXT COLLATE "C" NOT NULL,
    identity_id    TEXT COLLATE "C",
    external_id    TEXT COLLATE "C",
    key_id         TEXT COLLATE "C" NOT NULL,
    outcome        TEXT NOT NULL,
    tags           TEXT NOT NULL,
    count          BIGINT NOT NULL,
    spent_credits  BIGINT NOT NULL
);
CREATE UNIQUE INDEX analytics_verifications_per_month_row ON analytics_verifications_per_month
    (workspace_id, time, key_space_id, key_id, (coalesce(identity_id, '')), outcome, tags);

ALTER TABLE keys ADD COLUMN last_used_at BIGINT;
"#,
    // Webhooks: endpoints (with the secret their deliveries are signed with), the outbox
    // (one row per event and endpoint, leased by the worker sending it), the log of
    // attempts, and which key expiries have been announced.
    r#"
CREATE TABLE webhook_endpoints (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id),
    url           TEXT NOT NULL,
    description   TEXT,
    event_types   TEXT NOT NULL,
    enabled       BOOLEAN NOT NULL,
    secret        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT
);
CREATE INDEX webhook_endpoints_by_workspace ON webhook_endpoints (workspace_id, id);
CREATE TABLE webhook_deliveries (
    id               TEXT COLLATE "C" PRIMARY KEY,
    workspace_id     TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id),
    endpoint_id      TEXT COLLATE "C" NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    attempts         BIGINT NOT NULL,
    state            TEXT NOT NULL,
    next_attempt_at  BIGINT,
    last_status      BIGINT,
    last_error       TEXT,
    delivered_at     BIGINT,
    lease_until      BIGINT
);
CREATE INDEX webhook_deliveries_by_workspace ON webhook_deliveries (workspace_id, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE TABLE webhook_attempts (
    delivery_id  TEXT COLLATE "C" NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt      BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    status       BIGINT,
    error        TEXT,
    duration_ms  BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
CREATE TABLE webhook_expiry_notices (
    key_id        TEXT COLLATE "C" PRIMARY KEY REFERENCES keys(id) ON DELETE CASCADE,
    expires       BIGINT NOT NULL,
    announced_at  BIGINT NOT NULL
);
"#,
    // Anomaly detection: the anomalies raised, and the marker a reroll leaves on the key it
    // replaced (so its use after the grace period is recognised).
    r#"
ALTER TABLE keys ADD COLUMN replaced_at BIGINT;
ALTER TABLE keys ADD COLUMN rotated_to TEXT COLLATE "C";
CREATE TABLE anomalies (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT COLLATE "C" NOT NULL REFERENCES workspaces(id),
    kind          TEXT NOT NULL,
    severity      TEXT NOT NULL,
    key_id        TEXT COLLATE "C",
    client_ip     TEXT,
    time          BIGINT NOT NULL,
    evidence      TEXT NOT NULL
);
CREATE INDEX anomalies_by_workspace ON anomalies (workspace_id, id);
"#,
    // Raw verifications are pruned per workspace through (workspace_id, time), which
    // analytics needs anyway; an index on time alone cost each recorded verification one
    // more B-tree insert.
    r#"
DROP INDEX analytics_verifications_for_pruning;
"#,
    // Each workspace's answer to leaked keys; no row means the default (revoke).
    r#"
CREATE TABLE leak_policies (
    workspace_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES workspaces(id),
    policy        TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);
"#,
    // Recoverable keys: each key's sealed plaintext, and each workspace's data key, wrapped
    // under a master key from configuration (never stored).
    r#"
ALTER TABLE keys ADD COLUMN encryption_key_id TEXT COLLATE "C";
ALTER TABLE keys ADD COLUMN encrypted TEXT;
CREATE TABLE data_keys (
    id             TEXT COLLATE "C" PRIMARY KEY,
    workspace_id   TEXT COLLATE "C" NOT NULL UNIQUE REFERENCES workspaces(id),
    master_key_id  TEXT COLLATE "C" NOT NULL,
    wrapped        TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
"#,
    // Keys that sign short-lived tokens, shared by every node of the installation.
    r#"
CREATE TABLE signing_keys (
    id          TEXT COLLATE "C" PRIMARY KEY,
    created_at  BIGINT NOT NULL,
    seed        TEXT NOT NULL
);
"#,
    // Where keys may be used from (per key and per API), and each API's expiry policy.
    // Restrictions are JSON objects in their canonical text form; NULL is "unrestricted".
    r#"
ALTER TABLE keys ADD COLUMN restrictions TEXT;
ALTER TABLE apis ADD COLUMN restrictions TEXT;
ALTER TABLE apis ADD COLUMN default_key_lifetime_ms BIGINT;
ALTER TABLE apis ADD COLUMN max_key_lifetime_ms BIGINT;
"#,
    // Verification events in batches, as on SQLite: a row per workspace and write whose
    // `events` is a JSON array of arrays, each write's minute rollup rows until a fold adds
    // them to the rollup tables, and the raw table as a view over the batches. The events are
    // compressed with lz4 where the server has it (pglz, the default, costs several times
    // more CPU per byte).
    r#"
CREATE TABLE analytics_event_batches (
    id            TEXT COLLATE "C" PRIMARY KEY,
    workspace_id  TEXT COLLATE "C" NOT NULL,
    first_time    BIGINT NOT NULL,
    last_time     BIGINT NOT NULL,
    event_count   BIGINT NOT NULL,
    events        TEXT NOT NULL
);
CREATE INDEX analytics_event_batches_by_time ON analytics_event_batches (workspace_id, last_time);
DO $$ BEGIN
    ALTER TABLE analytics_event_batches ALTER COLUMN events SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN NULL;
END $$;
CREATE TABLE analytics_rollups_pending (
    id    TEXT COLLATE "C" PRIMARY KEY,
    rows  TEXT NOT NULL
);
INSERT INTO analytics_event_batches (id, workspace_id, first_time, last_time, event_count, events)
SELECT 'vb_migrated_' || workspace_id || '_' || (time / 60000), workspace_id, min(time),
       max(time), count(*),
       json_agg(json_build_array(time, request_id, key_space_id, identity_id, external_id,
                                 key_id, outcome, tags::json, spent_credits, client_ip))::text
FROM analytics_verifications GROUP BY workspace_id, time / 60000;
DROP TABLE analytics_verifications;
CREATE VIEW analytics_verifications AS
SELECT (e.value ->> 1) COLLATE "C" AS request_id,
       (e.value ->> 0)::bigint AS time,
       b.workspace_id AS workspace_id,
       (e.value ->> 2) COLLATE "C" AS key_space_id,
       (e.value ->> 3) COLLATE "C" AS identity_id,
       (e.value ->> 4) COLLATE "C" AS external_id,
       (e.value ->> 5) COLLATE "C" AS key_id,
       e.value ->> 6 AS outcome,
       ''::text AS region,
       e.value ->> 7 AS tags,
       (e.value ->> 8)::bigint AS spent_credits,
       e.value ->> 9 AS client_ip,
       b.first_time AS batch_first_time,
       b.last_time AS batch_last_time
FROM analytics_event_batches AS b
CROSS JOIN LATERAL json_array_elements(b.events::json) AS e(value);
"#,
];

/// The schema version this build writes.
pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// First key of the advisory lock that serializes migrations; the second is the schema, so
/// deployments in different schemas of one database do not wait for each other.
const MIGRATION_LOCK: i32 = 0x4b57_0001;

/// Brings the schema to the latest version, in one transaction under an advisory lock, so
/// nodes starting at once on an empty database migrate exactly once and the others find the
/// work done. Refuses a schema newer than this build.
pub async fn migrate(conn: &mut PgConnection) -> Result<(), PostgresOpenError> {
    let mut tx = conn.begin().await.map_err(PostgresOpenError::Migrate)?;
    // `current_schema()` is NULL when no schema of the search path exists; the table
    // creation below then fails with a clear error.
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(PostgresOpenError::Migrate)?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS keywarden_schema_version (
            version     BIGINT PRIMARY KEY,
            applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .execute(&mut *tx)
    .await
    .map_err(PostgresOpenError::Migrate)?;
    let found: i64 = sqlx::query("SELECT coalesce(max(version), 0) FROM keywarden_schema_version")
        .fetch_one(&mut *tx)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(PostgresOpenError::Migrate)?;
    if found > LATEST_VERSION {
        return Err(PostgresOpenError::TooNew {
            found,
            supported: LATEST_VERSION,
        });
    }
    let pending = MIGRATIONS
        .iter()
        .zip(1_i64..)
        .skip(usize::try_from(found).unwrap_or(0));
    for (sql, version) in pending {
        sqlx::raw_sql(*sql)
            .execute(&mut *tx)
            .await
            .map_err(PostgresOpenError::Migrate)?;
        sqlx::query("INSERT INTO keywarden_schema_version (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(PostgresOpenError::Migrate)?;
    }
    tx.commit().await.map_err(PostgresOpenError::Migrate)
}

#[cfg(test)]
mod tests {
    use keywarden_core::store::UsageStore;
    use keywarden_core::time::UnixMillis;
    use keywarden_testkit::TestSchema;
    use sqlx::postgres::PgRow;

    use super::*;
    use crate::batch_migration_fixture::{
        BATCHES, RAW_ROWS, RawRow, VIEW_ROWS, assert_rows_unchanged, expected_batches,
    };

    async fn fetch<T>(conn: &mut PgConnection, sql: &'static str, row: fn(&PgRow) -> T) -> Vec<T> {
        let rows = sqlx::query(sql).fetch_all(conn).await.unwrap();
        rows.iter().map(row).collect()
    }

    /// An install that recorded verifications as a row each (schema 10) keeps every one of
    /// them when it moves to batches: the migration's `INSERT … SELECT` has rows to move.
    #[tokio::test]
    async fn raw_rows_of_earlier_versions_move_into_batches() {
        let schema = TestSchema::create().await;
        let mut conn = schema.connection().await;
        let before = MIGRATIONS.len() - 1;
        sqlx::raw_sql(
            "CREATE TABLE keywarden_schema_version (
                version     BIGINT PRIMARY KEY,
                applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        for (sql, version) in MIGRATIONS[..before].iter().zip(1_i64..) {
            sqlx::raw_sql(*sql).execute(&mut conn).await.unwrap();
            sqlx::query("INSERT INTO keywarden_schema_version (version) VALUES ($1)")
                .bind(version)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        sqlx::raw_sql(RAW_ROWS).execute(&mut conn).await.unwrap();

        migrate(&mut conn).await.unwrap();

        let batches = fetch(&mut conn, BATCHES, |r| {
            (r.get(0), r.get(1), r.get(2), r.get(3))
        })
        .await;
        assert_eq!(batches, expected_batches());
        let rows: Vec<RawRow> = fetch(&mut conn, VIEW_ROWS, |r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get(7),
                r.get(8),
                r.get(9),
            )
        })
        .await;
        assert_rows_unchanged(&rows);
        let versions: Vec<i64> = fetch(
            &mut conn,
            "SELECT version FROM keywarden_schema_version ORDER BY version",
            |r| r.get(0),
        )
        .await;
        assert_eq!(versions.last(), Some(&LATEST_VERSION));

        // Pruning reads and rewrites a moved batch (PostgreSQL's own JSON text) like one
        // this build wrote: the cut inside ws_a's first minute keeps its later event.
        let store = crate::PostgresStore::connect(&schema.url()).await.unwrap();
        let pruned = store
            .prune_verifications(UnixMillis::from_millis(60_200))
            .await
            .unwrap();
        assert_eq!(pruned, 2);
        let left: Vec<String> = fetch(
            &mut conn,
            "SELECT request_id FROM analytics_verifications ORDER BY request_id",
            |r| r.get(0),
        )
        .await;
        assert_eq!(left, ["req_2", "req_3"]);
    }
}
