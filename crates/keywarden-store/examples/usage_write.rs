//! What writing verification events costs the store, without HTTP: records batches of events
//! for `KEYS` keys verified in turn (the benchmark's worst case: a batch holds mostly distinct
//! keys), folds the rollups as the server would, and reports the wall-clock and the process's
//! CPU time per event.
//!
//! ```sh
//! cargo run --release -p keywarden-store --example usage_write [sqlite|postgres://…] [batch] [batches]
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use keywarden_core::api::Api;
use keywarden_core::audit::{AuditAction, AuditContext};
use keywarden_core::id::{ApiId, KeyId, WorkspaceId};
use keywarden_core::key::KeyRecord;
use keywarden_core::key_format::{self, ByteLength};
use keywarden_core::text::{ApiName, Label};
use keywarden_core::time::UnixMillis;
use keywarden_core::usage::VerificationEvent;
use keywarden_core::verify::VerifyCode;
use keywarden_core::workspace::Workspace;
use keywarden_store::StoreLocation;

const KEYS: usize = 3_000;

/// CPU time of the whole process so far (all threads, the SQLite writer included).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat, 11 and 12 after the command.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap_or_else(|| "sqlite".to_owned());
    let batch: usize = args
        .next()
        .map_or(2_000, |a| a.parse().expect("a batch size"));
    let batches: usize = args
        .next()
        .map_or(50, |a| a.parse().expect("a batch count"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let location = if target == "sqlite" {
        StoreLocation::Sqlite(dir.path().join("usage.db"))
    } else {
        StoreLocation::Postgres(target.clone())
    };
    let store = keywarden_store::open(&location).await.expect("store opens");

    let now = UnixMillis::from_millis(1_795_780_800_000);
    let workspace = Workspace {
        id: WorkspaceId::generate(now),
        name: Label::parse("usage-bench").expect("name"),
        created_at: now,
    };
    store.insert_workspace(&workspace).await.expect("workspace");
    let audit = AuditContext::cli().entry(&workspace.id, now, AuditAction::KeyUpdate);
    let api = Api {
        id: ApiId::generate(now),
        workspace_id: workspace.id.clone(),
        name: ApiName::parse("api").expect("name"),
        default_prefix: None,
        default_byte_length: ByteLength::DEFAULT,
        delete_protection: false,
        created_at: now,
        restrictions: None,
        key_lifetime: Default::default(),
    };
    store.insert_api(&api, &audit).await.expect("api");
    let mut keys = Vec::with_capacity(KEYS);
    for _ in 0..KEYS {
        let key = KeyRecord {
            id: KeyId::generate(now),
            workspace_id: workspace.id.clone(),
            api_id: api.id.clone(),
            digest: key_format::generate(None, ByteLength::DEFAULT)
                .plaintext
                .digest(),
            start: "sk_abcd".into(),
            prefix: None,
            byte_length: ByteLength::DEFAULT,
            name: None,
            meta: None,
            enabled: true,
            expires: None,
            credits: None,
            identity: None,
            ratelimits: Vec::new(),
            permissions: Vec::new(),
            roles: Vec::new(),
            created_at: now,
            updated_at: None,
            deleted_at: None,
            last_used: None,
            replaced_at: None,
            sealed: None,
            restrictions: None,
            api_restrictions: None,
            rotated_to: None,
        };
        // Each write has an audit entry of its own.
        let audit = AuditContext::cli().entry(&workspace.id, now, AuditAction::KeyCreate);
        store.insert_key(&key, &audit).await.expect("key");
        keys.push(key.id);
    }

    // 20 000 events a second of simulated time, keys in turn.
    let mut n = 0_usize;
    let mut make = |count: usize| -> Vec<VerificationEvent> {
        (0..count)
            .map(|_| {
                n += 1;
                VerificationEvent {
                    request_id: format!("req_{n:016}").into(),
                    time: UnixMillis::from_millis(
                        now.as_millis() + i64::try_from(n / 20).unwrap_or(0),
                    ),
                    workspace_id: workspace.id.clone(),
                    api_id: api.id.clone(),
                    key_id: keys[n % KEYS].clone(),
                    identity_id: None,
                    external_id: None,
                    outcome: VerifyCode::Valid,
                    spent_credits: 0,
                    tags: Vec::new(),
                    client_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                }
            })
            .collect()
    };
    // Warm-up: every rollup row of the coarser buckets exists, as in a running server.
    for _ in 0..5 {
        let events = make(batch);
        store.record_verifications(&events).await.expect("write");
    }
    store.fold_verification_rollups().await.expect("fold");
    let all: Vec<_> = (0..batches).map(|_| make(batch)).collect();
    let (wall, cpu) = (Instant::now(), cpu_time());
    // As the server does at the benchmark's rate: a fold every 20 writes (10 s of batches
    // written every half second), and the rest at the end.
    for (i, events) in all.iter().enumerate() {
        store.record_verifications(events).await.expect("write");
        if i % 20 == 19 {
            store.fold_verification_rollups().await.expect("fold");
        }
    }
    store.fold_verification_rollups().await.expect("fold");
    let (wall, cpu) = (wall.elapsed(), cpu_time().saturating_sub(cpu));
    let events = (batch * batches) as f64;
    println!(
        "{target}: {batches} batches of {batch} events, {KEYS} keys in turn: \
         {:.2} µs wall, {:.2} µs CPU (this process) per event",
        wall.as_secs_f64() * 1e6 / events,
        cpu.as_secs_f64() * 1e6 / events,
    );
}
