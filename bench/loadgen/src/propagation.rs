//! How long a key deleted on one node keeps verifying on another node of the same cluster.
//!
//! Keys are created on node A and verified on node B until B answers `VALID`, so B holds
//! them in its cache (the case that needs the change feed: a node that never saw a key
//! reads it from the store anyway). Then, one key at a time, the key is deleted on A and,
//! from the moment A's response has been read, B is asked to verify it in a tight loop on
//! one keep-alive connection until it answers `NOT_FOUND`. The delay ends when that answer
//! has been read, so it includes one verify round trip on B; the time until that last poll
//! was sent is reported too, which excludes it. B was still answering `VALID` to the poll
//! before, so the change took effect on B between those two bounds.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::StatusCode;
use hyper::client::conn::http1::SendRequest;
use serde::Deserialize;
use serde_json::json;

use crate::client::{Body, Target, send};
use crate::health;
use crate::phase::{CREATE_API, CREATE_KEY, KEY_PREFIX, VERIFY_KEY, verify_body};
use crate::runner::new_histogram;

pub const DELETE_KEY: &str = "/v2/keys.deleteKey";

/// What to measure.
pub struct Settings {
    /// Keys to create and delete, one after the other.
    pub keys: usize,
    /// Longest wait for B to see a new key, or to stop verifying a deleted one.
    pub timeout: Duration,
    /// Idle time before each delete, so each change reaches a node that is not busy with
    /// the previous one.
    pub gap: Duration,
    /// Delete permanently instead of softly (Unkey's default).
    pub permanent: bool,
}

/// Latencies in nanoseconds.
pub struct Report {
    pub keys: usize,
    /// From A's acknowledgement of the delete to reading B's `NOT_FOUND`.
    pub until_answer: Histogram<u64>,
    /// From A's acknowledgement to sending the poll that B answered `NOT_FOUND`.
    pub until_last_poll: Histogram<u64>,
    /// From sending the delete to A to reading B's `NOT_FOUND`: A announces the change
    /// before it answers, so B often has it before the acknowledgement arrives.
    pub from_request: Histogram<u64>,
    /// `keys.deleteKey` on A, request to response.
    pub delete: Histogram<u64>,
    /// `keys.verifyKey` on B while it still answered `VALID`: the resolution of the polling.
    pub poll: Histogram<u64>,
    /// Polls per key, the `NOT_FOUND` one included.
    pub polls: Vec<u32>,
    /// Keys B already did not find at the first poll after A's acknowledgement.
    pub gone_at_first_poll: usize,
    /// Keys B did not verify as `VALID` at their first verification after creation.
    pub late_on_b: usize,
}

#[derive(Deserialize)]
struct Envelope {
    data: Option<serde_json::Value>,
}

/// `data` of a 200 response.
fn data(status: StatusCode, body: &[u8], what: &str) -> anyhow::Result<serde_json::Value> {
    let text = || String::from_utf8_lossy(body).into_owned();
    if status != StatusCode::OK {
        bail!("{what}: HTTP {status}: {}", text());
    }
    serde_json::from_slice::<Envelope>(body)
        .ok()
        .and_then(|e| e.data)
        .with_context(|| format!("{what}: no `data` in {}", text()))
}

fn string_field(data: &serde_json::Value, field: &str, what: &str) -> anyhow::Result<String> {
    data[field]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{what}: no `data.{field}` in {data}"))
}

/// The `code` B answers for a verification.
async fn verify_code(
    b: &Target,
    conn: &mut SendRequest<Body>,
    body: Bytes,
) -> anyhow::Result<String> {
    let (status, response) = send(conn, b.post(VERIFY_KEY, body)).await?;
    let data = data(status, &response, "keys.verifyKey on B")?;
    string_field(&data, "code", "keys.verifyKey on B")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Checks that both nodes share a change feed, so that B can hear of A's changes at all.
pub async fn check_cluster(a: &Target, b: &Target) -> anyhow::Result<()> {
    for (node, target) in [("A", a), ("B", b)] {
        let health = health::fetch(target)
            .await
            .with_context(|| format!("node {node} ({})", target.authority()))?;
        println!(
            "node {node} {}: {}, change feed {}, status {}",
            target.authority(),
            health.backends.label(),
            health.backends.change_feed,
            health.status
        );
        // A standalone node reports its feed as `none`.
        if health.backends.change_feed == "none" {
            bail!("node {node} has no change feed: it is not part of a cluster");
        }
    }
    Ok(())
}

pub async fn run(a: &Target, b: &Target, settings: &Settings) -> anyhow::Result<Report> {
    let mut conn_a = a.connect().await?;
    let mut conn_b = b.connect().await?;

    let name = format!("propagation-{}", std::process::id());
    let (status, body) = send(
        &mut conn_a,
        a.post(CREATE_API, Bytes::from(json!({ "name": name }).to_string())),
    )
    .await?;
    let api_id = string_field(
        &data(status, &body, "apis.createApi on A")?,
        "apiId",
        "apis.createApi on A",
    )?;
    let create = Bytes::from(json!({ "apiId": api_id, "prefix": KEY_PREFIX }).to_string());
    let mut keys = Vec::with_capacity(settings.keys);
    for _ in 0..settings.keys {
        let (status, body) = send(&mut conn_a, a.post(CREATE_KEY, create.clone())).await?;
        let data = data(status, &body, "keys.createKey on A")?;
        keys.push((
            string_field(&data, "keyId", "keys.createKey on A")?,
            verify_body(&string_field(&data, "key", "keys.createKey on A")?),
        ));
    }

    // B caches a key when it verifies it; until then it does not need to hear of changes.
    let mut late_on_b = 0;
    for (key_id, verify) in &keys {
        let started = Instant::now();
        let mut first = true;
        loop {
            let code = verify_code(b, &mut conn_b, verify.clone()).await?;
            if code == "VALID" {
                break;
            }
            if first {
                late_on_b += 1;
                first = false;
            }
            if started.elapsed() > settings.timeout {
                bail!(
                    "node B still answers {code} for new key {key_id} after {:?}",
                    settings.timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    let mut report = Report {
        keys: keys.len(),
        until_answer: new_histogram(),
        until_last_poll: new_histogram(),
        from_request: new_histogram(),
        delete: new_histogram(),
        poll: new_histogram(),
        polls: Vec::with_capacity(keys.len()),
        gone_at_first_poll: 0,
        late_on_b,
    };
    for (key_id, verify) in &keys {
        tokio::time::sleep(settings.gap).await;
        let delete =
            Bytes::from(json!({ "keyId": key_id, "permanent": settings.permanent }).to_string());
        let sent = Instant::now();
        let (status, body) = send(&mut conn_a, a.post(DELETE_KEY, delete)).await?;
        let acknowledged = Instant::now();
        data(status, &body, "keys.deleteKey on A")?;
        report.delete.saturating_record(nanos(acknowledged - sent));
        let mut polls = 0;
        loop {
            let poll_sent = Instant::now();
            let code = verify_code(b, &mut conn_b, verify.clone()).await?;
            let answered = Instant::now();
            polls += 1;
            match code.as_str() {
                "NOT_FOUND" => {
                    report
                        .until_answer
                        .saturating_record(nanos(answered - acknowledged));
                    report
                        .until_last_poll
                        .saturating_record(nanos(poll_sent - acknowledged));
                    report
                        .from_request
                        .saturating_record(nanos(answered - sent));
                    if polls == 1 {
                        report.gone_at_first_poll += 1;
                    }
                    break;
                }
                "VALID" => report.poll.saturating_record(nanos(answered - poll_sent)),
                other => bail!("node B answered {other} for deleted key {key_id}"),
            }
            if answered - acknowledged > settings.timeout {
                bail!(
                    "node B still verifies key {key_id} {:?} after node A deleted it",
                    settings.timeout
                );
            }
        }
        report.polls.push(polls);
    }
    Ok(report)
}

fn ms(nanos: u64) -> String {
    format!("{:.3}", nanos as f64 / 1e6)
}

fn row(out: &mut String, name: &str, h: &Histogram<u64>) {
    if h.is_empty() {
        let _ = writeln!(out, "{name:<44} {:>8}", "-");
        return;
    }
    let _ = writeln!(
        out,
        "{name:<44} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        ms(h.min()),
        format!("{:.3}", h.mean() / 1e6),
    );
}

impl Report {
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<44} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "ms", "p50", "p90", "p99", "max", "min", "mean"
        );
        let rows = [
            (
                "delete acked by A -> NOT_FOUND read from B",
                &self.until_answer,
            ),
            (
                "delete acked by A -> that poll sent to B",
                &self.until_last_poll,
            ),
            (
                "delete sent to A -> NOT_FOUND read from B",
                &self.from_request,
            ),
            ("keys.deleteKey on A, round trip", &self.delete),
            ("keys.verifyKey on B while VALID, round trip", &self.poll),
        ];
        for (name, histogram) in rows {
            row(&mut out, name, histogram);
        }
        let total: u64 = self.polls.iter().map(|&p| u64::from(p)).sum();
        let _ = writeln!(
            out,
            "{} keys; polls of B per key: mean {:.1}, max {}; B already answered NOT_FOUND at \
             the first poll for {} keys; {} new keys were not yet VALID on B at their first \
             verification",
            self.keys,
            total as f64 / self.polls.len().max(1) as f64,
            self.polls.iter().max().copied().unwrap_or(0),
            self.gone_at_first_poll,
            self.late_on_b,
        );
        out
    }
}
