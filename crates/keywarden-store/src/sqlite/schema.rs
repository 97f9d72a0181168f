//! The SQLite schema and its migrations, applied in order and recorded in `user_version`.

use rusqlite::Connection;

/// Each entry migrates from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE root_keys (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    hash          TEXT NOT NULL UNIQUE,
    start         TEXT NOT NULL,
    name          TEXT,
    permissions   TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
) STRICT;

-- Counters that change with every change of a kind of object, polled by servers to notice
-- changes made by other processes.
CREATE TABLE revisions (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
) STRICT;
INSERT INTO revisions (name, value) VALUES ('root_keys', 0);

CREATE TABLE apis (
    id                   TEXT PRIMARY KEY,
    workspace_id         TEXT NOT NULL REFERENCES workspaces(id),
    name                 TEXT NOT NULL,
    default_prefix       TEXT,
    default_byte_length  INTEGER NOT NULL,
    delete_protection    INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    deleted_at           INTEGER
) STRICT;
CREATE INDEX apis_by_workspace ON apis (workspace_id, id);

CREATE TABLE keys (
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL REFERENCES workspaces(id),
    api_id             TEXT NOT NULL REFERENCES apis(id),
    hash               TEXT NOT NULL UNIQUE,
    start              TEXT NOT NULL,
    prefix             TEXT,
    byte_length        INTEGER NOT NULL,
    name               TEXT,
    meta               TEXT,
    enabled            INTEGER NOT NULL,
    expires            INTEGER,
    credits_remaining  INTEGER,
    refill_interval    TEXT,
    refill_amount      INTEGER,
    refill_day         INTEGER,
    last_refill_at     INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER,
    deleted_at         INTEGER
) STRICT;
CREATE INDEX keys_by_api ON keys (workspace_id, api_id, id);
CREATE INDEX keys_with_refill ON keys (id) WHERE refill_interval IS NOT NULL;
",
    r#"
CREATE TABLE identities (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    external_id   TEXT NOT NULL,
    meta          TEXT,
    -- Named limits as one JSON array: at most 50, always read with the identity.
    ratelimits    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER,
    UNIQUE (workspace_id, external_id)
) STRICT;
CREATE INDEX identities_by_workspace ON identities (workspace_id, id);

ALTER TABLE keys ADD COLUMN identity_id TEXT REFERENCES identities(id);
ALTER TABLE keys ADD COLUMN ratelimits TEXT;
CREATE INDEX keys_by_identity ON keys (identity_id) WHERE identity_id IS NOT NULL;

CREATE TABLE ratelimit_namespaces (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (workspace_id, name)
) STRICT;

CREATE TABLE ratelimit_overrides (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    namespace_id  TEXT NOT NULL REFERENCES ratelimit_namespaces(id),
    identifier    TEXT NOT NULL,
    "limit"       INTEGER NOT NULL,
    duration      INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER,
    UNIQUE (namespace_id, identifier)
) STRICT;
"#,
    r"
CREATE TABLE permissions (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    slug          TEXT NOT NULL,
    description   TEXT,
    created_at    INTEGER NOT NULL,
    UNIQUE (workspace_id, slug)
) STRICT;
CREATE INDEX permissions_by_workspace ON permissions (workspace_id, id);

CREATE TABLE roles (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    description   TEXT,
    created_at    INTEGER NOT NULL,
    UNIQUE (workspace_id, name)
) STRICT;
CREATE INDEX roles_by_workspace ON roles (workspace_id, id);

-- Deleting a role or a permission removes it from every role that had it.
CREATE TABLE role_permissions (
    role_id        TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    permission_id  TEXT NOT NULL REFERENCES permissions(id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, permission_id)
) STRICT;
CREATE INDEX role_permissions_by_permission ON role_permissions (permission_id);

-- What keys hold; deleting a permission or role removes it from every key.
CREATE TABLE key_permissions (
    key_id         TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    permission_id  TEXT NOT NULL REFERENCES permissions(id) ON DELETE CASCADE,
    PRIMARY KEY (key_id, permission_id)
) STRICT;
CREATE INDEX key_permissions_by_permission ON key_permissions (permission_id);

CREATE TABLE key_roles (
    key_id   TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    role_id  TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (key_id, role_id)
) STRICT;
CREATE INDEX key_roles_by_role ON key_roles (role_id);
",
    r#"
ALTER TABLE root_keys ADD COLUMN "end" TEXT NOT NULL DEFAULT '';
ALTER TABLE root_keys ADD COLUMN expires INTEGER;
ALTER TABLE root_keys ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1;
"#,
    // The audit log: append-only, read newest first per workspace. `targets` and `changes`
    // are JSON; `actor_id` is the root key's id (NULL for the CLI and the system).
    "
CREATE TABLE audit_log (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    time          INTEGER NOT NULL,
    actor_type    TEXT NOT NULL,
    actor_id      TEXT,
    action        TEXT NOT NULL,
    targets       TEXT NOT NULL,
    changes       TEXT NOT NULL,
    request_id    TEXT,
    client_ip     TEXT
) STRICT;
CREATE INDEX audit_log_by_workspace ON audit_log (workspace_id, id);
CREATE INDEX audit_log_by_action ON audit_log (workspace_id, action, id);
CREATE INDEX audit_log_by_actor ON audit_log (workspace_id, actor_id, id);
",
    r"
-- One row per verification of a known key, kept for the retention period. No foreign keys:
-- history outlives the keys, APIs and identities it names.
CREATE TABLE analytics_verifications (
    request_id     TEXT NOT NULL,
    time           INTEGER NOT NULL,
    workspace_id   TEXT NOT NULL,
    key_space_id   TEXT NOT NULL,
    identity_id    TEXT,
    external_id    TEXT,
    key_id         TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    region         TEXT NOT NULL DEFAULT '',
    tags           TEXT NOT NULL,
    spent_credits  INTEGER NOT NULL,
    client_ip      TEXT
) STRICT;
CREATE INDEX analytics_verifications_by_time ON analytics_verifications (workspace_id, time);
CREATE INDEX analytics_verifications_for_pruning ON analytics_verifications (time);

-- Counts per bucket (its start in Unix ms, UTC), kept for good. A row is unique per
-- workspace, bucket, API, key, identity, outcome and tags; identity_id is NULL for keys
-- without one, so the uniqueness reads it through coalesce.
CREATE TABLE analytics_verifications_per_minute (
    time           INTEGER NOT NULL,
    workspace_id   TEXT NOT NULL,
    key_space_id   TEXT NOT NULL,
    identity_id    TEXT,
    external_id    TEXT,
    key_id         TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    tags           TEXT NOT NULL,
    count          INTEGER NOT NULL,
    spent_credits  INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX analytics_verifications_per_minute_row ON analytics_verifications_per_minute
    (workspace_id, time, key_space_id, key_id, (coalesce(identity_id, '')), outcome, tags);
CREATE TABLE analytics_verifications_per_hour (
    time           INTEGER NOT NULL,
    workspace_id   TEXT NOT NULL,
    key_space_id   TEXT NOT NULL,
    identity_id    TEXT,
    external_id    TEXT,
    key_id         TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    tags           TEXT NOT NULL,
    count          INTEGER NOT NULL,
    spent_credits  INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX analytics_verifications_per_hour_row ON analytics_verifications_per_hour
    (workspace_id, time, key_space_id, key_id, (coalesce(identity_id, '')), outcome, tags);
CREATE TABLE analytics_verifications_per_day (
    time           INTEGER NOT NULL,
    workspace_id   TEXT NOT NULL,
    key_space_id   TEXT NOT NULL,
    identity_id    TEXT,
    external_id    TEXT,
    key_id         TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    tags           TEXT NOT NULL,
    count          INTEGER NOT NULL,
    spent_credits  INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX analytics_verifications_per_day_row ON analytics_verifications_per_day
    (workspace_id, time, key_space_id, key_id, (coalesce(identity_id, '')), outcome, tags);
CREATE TABLE analytics_verifications_per_month (
    time           INTEGER NOT NULL,
    workspace_id   TEXT NOT NULL,
    key_space_id   TEXT NOT NULL,
    identity_id    TEXT,
    external_id    TEXT,
    key_id         TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    tags           TEXT NOT NULL,
    count          INTEGER NOT NULL,
    spent_credits  INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX analytics_verifications_per_month_row ON analytics_verifications_per_month
    (workspace_id, time, key_space_id, key_id, (coalesce(identity_id, '')), outcome, tags);

ALTER TABLE keys ADD COLUMN last_used_at INTEGER;
",
    // Webhooks: endpoints (with the secret their deliveries are signed with), the outbox
    // (one row per event and endpoint, leased by the worker sending it), the log of
    // attempts, and which key expiries have been announced.
    "
CREATE TABLE webhook_endpoints (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    url           TEXT NOT NULL,
    description   TEXT,
    event_types   TEXT NOT NULL,
    enabled       INTEGER NOT NULL,
    secret        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER
) STRICT;
CREATE INDEX webhook_endpoints_by_workspace ON webhook_endpoints (workspace_id, id);
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL REFERENCES workspaces(id),
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL,
    state            TEXT NOT NULL,
    next_attempt_at  INTEGER,
    last_status      INTEGER,
    last_error       TEXT,
    delivered_at     INTEGER,
    lease_until      INTEGER
) STRICT;
CREATE INDEX webhook_deliveries_by_workspace ON webhook_deliveries (workspace_id, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE TABLE webhook_attempts (
    delivery_id  TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    status       INTEGER,
    error        TEXT,
    duration_ms  INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
) STRICT;
CREATE TABLE webhook_expiry_notices (
    key_id        TEXT PRIMARY KEY REFERENCES keys(id) ON DELETE CASCADE,
    expires       INTEGER NOT NULL,
    announced_at  INTEGER NOT NULL
) STRICT;
",
    // Anomaly detection: the anomalies raised, and the marker a reroll leaves on the key it
    // replaced (so its use after the grace period is recognised).
    "
ALTER TABLE keys ADD COLUMN replaced_at INTEGER;
ALTER TABLE keys ADD COLUMN rotated_to TEXT;
CREATE TABLE anomalies (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    kind          TEXT NOT NULL,
    severity      TEXT NOT NULL,
    key_id        TEXT,
    client_ip     TEXT,
    time          INTEGER NOT NULL,
    evidence      TEXT NOT NULL
) STRICT;
CREATE INDEX anomalies_by_workspace ON anomalies (workspace_id, id);
",
    // Raw verifications are pruned per workspace through (workspace_id, time), which
    // analytics needs anyway; an index on time alone cost each recorded verification one
    // more B-tree insert.
    "
DROP INDEX analytics_verifications_for_pruning;
",
    // Each workspace's answer to leaked keys; no row means the default (revoke).
    "
CREATE TABLE leak_policies (
    workspace_id  TEXT PRIMARY KEY REFERENCES workspaces(id),
    policy        TEXT NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
",
    // Recoverable keys: each key's sealed plaintext, and each workspace's data key, wrapped
    // under a master key from configuration (never stored).
    "
ALTER TABLE keys ADD COLUMN encryption_key_id TEXT;
ALTER TABLE keys ADD COLUMN encrypted TEXT;
CREATE TABLE data_keys (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL UNIQUE REFERENCES workspaces(id),
    master_key_id  TEXT NOT NULL,
    wrapped        TEXT NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;
",
    // Keys that sign short-lived tokens, shared by every node of the installation.
    "
CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    seed        TEXT NOT NULL
) STRICT;
",
    // Where keys may be used from (per key and per API), and each API's expiry policy.
    // Restrictions are JSON objects in their canonical text form; NULL is "unrestricted".
    "
ALTER TABLE keys ADD COLUMN restrictions TEXT;
ALTER TABLE apis ADD COLUMN restrictions TEXT;
ALTER TABLE apis ADD COLUMN default_key_lifetime_ms INTEGER;
ALTER TABLE apis ADD COLUMN max_key_lifetime_ms INTEGER;
",
    // Verification events in batches: a row per workspace and write whose `events` is a JSON
    // array of arrays (keywarden-store's `usage_batch`), and each write's minute rollup rows
    // until a fold adds them to the rollup tables. The raw table becomes a view over the
    // batches with the same columns (and the batch's time range, which rendered queries use to
    // skip batches), so analytics queries read it as before. Existing raw
    // rows become one batch per workspace and minute; their rollups are counted already.
    r"
CREATE TABLE analytics_event_batches (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL,
    first_time    INTEGER NOT NULL,
    last_time     INTEGER NOT NULL,
    event_count   INTEGER NOT NULL,
    events        TEXT NOT NULL
) STRICT;
CREATE INDEX analytics_event_batches_by_time ON analytics_event_batches (workspace_id, last_time);
CREATE TABLE analytics_rollups_pending (
    id    TEXT PRIMARY KEY,
    rows  TEXT NOT NULL
) STRICT;
INSERT INTO analytics_event_batches (id, workspace_id, first_time, last_time, event_count, events)
SELECT 'vb_migrated_' || workspace_id || '_' || (time / 60000), workspace_id, min(time),
       max(time), count(*),
       json_group_array(json_array(time, request_id, key_space_id, identity_id, external_id,
                                   key_id, outcome, json(tags), spent_credits, client_ip))
FROM analytics_verifications GROUP BY workspace_id, time / 60000;
DROP TABLE analytics_verifications;
CREATE VIEW analytics_verifications AS
SELECT e.value ->> 1 AS request_id,
       e.value ->> 0 AS time,
       b.workspace_id AS workspace_id,
       e.value ->> 2 AS key_space_id,
       e.value ->> 3 AS identity_id,
       e.value ->> 4 AS external_id,
       e.value ->> 5 AS key_id,
       e.value ->> 6 AS outcome,
       '' AS region,
       e.value ->> 7 AS tags,
       e.value ->> 8 AS spent_credits,
       e.value ->> 9 AS client_ip,
       b.first_time AS batch_first_time,
       b.last_time AS batch_last_time
FROM analytics_event_batches AS b, json_each(b.events) AS e;
",
];

/// Brings the database to the latest schema version.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let current = usize::try_from(current).unwrap_or(0);
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(version + 1).unwrap_or(i64::MAX),
        )?;
    }
    tx.commit()
}

/// The schema version this build writes.
pub const LATEST_VERSION: usize = MIGRATIONS.len();

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch_migration_fixture::{
        BATCHES, RAW_ROWS, RawRow, VIEW_ROWS, assert_rows_unchanged, expected_batches,
    };

    /// A database written before events were stored in batches keeps its raw events: they
    /// move into batches and read back through the view as they were.
    #[test]
    fn raw_rows_of_earlier_versions_move_into_batches() {
        let mut conn = Connection::open_in_memory().unwrap();
        let before = MIGRATIONS.len() - 1;
        for sql in &MIGRATIONS[..before] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", i64::try_from(before).unwrap())
            .unwrap();
        conn.execute_batch(RAW_ROWS).unwrap();
        migrate(&mut conn).unwrap();

        let batches: Vec<(String, i64, i64, i64)> = conn
            .prepare(BATCHES)
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(batches, expected_batches());
        let rows: Vec<RawRow> = conn
            .prepare(VIEW_ROWS)
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_rows_unchanged(&rows);
    }
}
