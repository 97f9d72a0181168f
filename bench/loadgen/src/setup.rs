//! Creates what the phases use: one API and N keys without credits (so verifying them never
//! writes to the store), then verifies each key once so every record is in the server's cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use hyper::StatusCode;
use serde_json::Value;

use crate::client::{Target, send};
use crate::phase::{self, CREATE_API, CREATE_KEY, VERIFY_KEY};

pub struct Setup {
    pub api_id: String,
    pub keys: Vec<String>,
}

pub async fn run(target: &Target, keys: usize, connections: usize) -> anyhow::Result<Setup> {
    let mut conn = target.connect().await?;
    let name = format!("loadgen-{}", std::process::id());
    let (status, body) = send(
        &mut conn,
        target.post(
            CREATE_API,
            Bytes::from(serde_json::json!({ "name": name }).to_string()),
        ),
    )
    .await?;
    let api_id = data_field(status, &body, "apiId").context("apis.createApi failed")?;

    let create_body = phase::create_key_body(&api_id);
    let created = parallel(target, keys, connections, move |_| {
        (CREATE_KEY, create_body.clone())
    })
    .await
    .context("keys.createKey failed")?;
    let keys = created
        .iter()
        .map(|(status, body)| data_field(*status, body, "key"))
        .collect::<anyhow::Result<Vec<_>>>()
        .context("keys.createKey failed")?;

    // The first verification of a key reads it from the store; do that now, untimed.
    let bodies: Arc<Vec<Bytes>> = Arc::new(keys.iter().map(|k| phase::verify_body(k)).collect());
    let verified = parallel(target, keys.len(), connections, move |i| {
        (VERIFY_KEY, bodies[i].clone())
    })
    .await
    .context("keys.verifyKey failed")?;
    for (status, body) in &verified {
        phase::check(phase::Phase::VerifyValid, *status, body)
            .map_err(anyhow::Error::msg)
            .context("a freshly created key did not verify")?;
    }
    Ok(Setup { api_id, keys })
}

/// Sends `count` POSTs over `connections` connections; request `i` is `make(i)`. Returns the
/// responses in order.
async fn parallel(
    target: &Target,
    count: usize,
    connections: usize,
    make: impl Fn(usize) -> (&'static str, Bytes) + Send + Sync + 'static,
) -> anyhow::Result<Vec<(StatusCode, Bytes)>> {
    let next = Arc::new(AtomicUsize::new(0));
    let make = Arc::new(make);
    let mut tasks = Vec::new();
    for _ in 0..connections.clamp(1, count.max(1)) {
        let target = target.clone();
        let next = Arc::clone(&next);
        let make = Arc::clone(&make);
        tasks.push(tokio::spawn(async move {
            let mut conn = target.connect().await?;
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(out);
                }
                let (path, body) = make(i);
                out.push((i, send(&mut conn, target.post(path, body)).await?));
            }
        }));
    }
    let mut all = Vec::with_capacity(count);
    for task in tasks {
        all.extend(task.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, r)| r).collect())
}

/// `data.<field>` of a 200 response, as a string.
fn data_field(status: StatusCode, body: &[u8], field: &str) -> anyhow::Result<String> {
    let text = String::from_utf8_lossy(body);
    if status != StatusCode::OK {
        bail!("HTTP {status}: {text}");
    }
    let value: Value = serde_json::from_slice(body).with_context(|| format!("not JSON: {text}"))?;
    value["data"][field]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no data.{field} in {text}"))
}
