//! Creates what the phases use: one API and N keys without credits (so verifying them never
//! writes to the store), as many keys with one high auto-applied rate limit, as many with
//! three permissions, and a rate-limit namespace with M identifiers. Then it uses each key
//! and identifier once, so every key record is in the server's cache and every identifier
//! has its limiter state before any measurement.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use hyper::StatusCode;
use serde_json::Value;

use crate::client::{Target, send};
use crate::phase::{self, CREATE_API, CREATE_KEY, Phase, RATELIMIT_LIMIT, VERIFY_KEY};

/// How much to create; a count of 0 skips that part (its phase is not run).
pub struct Plan {
    pub keys: usize,
    pub limited_keys: usize,
    pub permitted_keys: usize,
    pub identifiers: usize,
    pub connections: usize,
}

pub struct Setup {
    pub api_id: String,
    /// Keys without rate limits.
    pub keys: Vec<String>,
    /// Keys with one auto-applied rate limit.
    pub limited_keys: Vec<String>,
    /// Keys with the three `phase::PERMISSIONS` and no rate limit.
    pub permitted_keys: Vec<String>,
    /// The rate-limit namespace of ratelimit-limit, created by its first limit call.
    pub namespace: String,
}

pub async fn run(target: &Target, plan: &Plan) -> anyhow::Result<Setup> {
    let mut conn = target.connect().await?;
    // Named after this process, so runs against one server do not share limiter state.
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

    let keys = create_keys(target, plan, phase::create_key_body(&api_id), plan.keys).await?;
    let limited_keys = create_keys(
        target,
        plan,
        phase::create_limited_key_body(&api_id),
        plan.limited_keys,
    )
    .await?;
    let permitted_keys = create_permitted_keys(target, plan, &api_id).await?;

    // The first verification of a key reads it from the store; do that now, untimed.
    let verify = |keys: &[String]| keys.iter().map(|k| phase::verify_body(k)).collect();
    use_once(target, plan, Phase::VerifyValid, VERIFY_KEY, verify(&keys))
        .await
        .context("a freshly created key did not verify")?;
    use_once(
        target,
        plan,
        Phase::VerifyLimited,
        VERIFY_KEY,
        verify(&limited_keys),
    )
    .await
    .context("a freshly created key with a rate limit did not verify")?;
    // With the query, so the server has also compiled it before any measurement.
    use_once(
        target,
        plan,
        Phase::VerifyQuery,
        VERIFY_KEY,
        permitted_keys
            .iter()
            .map(|k| phase::verify_query_body(k))
            .collect(),
    )
    .await
    .context("a freshly created key with permissions did not satisfy the query")?;
    // The first limit call creates the namespace (a store write) and each identifier's state.
    let limits = (0..plan.identifiers)
        .map(|i| phase::limit_body(&name, i))
        .collect();
    use_once(target, plan, Phase::RatelimitLimit, RATELIMIT_LIMIT, limits)
        .await
        .context("ratelimit.limit failed")?;
    Ok(Setup {
        api_id,
        keys,
        limited_keys,
        permitted_keys,
        namespace: name,
    })
}

/// Creates the keys with permissions. The first one alone: it creates the permissions in the
/// workspace, which the others then find instead of racing to create them.
async fn create_permitted_keys(
    target: &Target,
    plan: &Plan,
    api_id: &str,
) -> anyhow::Result<Vec<String>> {
    let body = phase::create_permitted_key_body(api_id);
    let mut keys = create_keys(target, plan, body.clone(), plan.permitted_keys.min(1)).await?;
    keys.extend(create_keys(target, plan, body, plan.permitted_keys.saturating_sub(1)).await?);
    Ok(keys)
}

/// Creates `count` keys with `body` and returns them.
async fn create_keys(
    target: &Target,
    plan: &Plan,
    body: Bytes,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let created = parallel(target, count, plan.connections, move |_| {
        (CREATE_KEY, body.clone())
    })
    .await
    .context("keys.createKey failed")?;
    created
        .iter()
        .map(|(status, body)| data_field(*status, body, "key"))
        .collect::<anyhow::Result<Vec<_>>>()
        .context("keys.createKey failed")
}

/// Sends each of `bodies` once to `path` and checks each answer as `phase` would.
async fn use_once(
    target: &Target,
    plan: &Plan,
    phase: Phase,
    path: &'static str,
    bodies: Vec<Bytes>,
) -> anyhow::Result<()> {
    let bodies = Arc::new(bodies);
    let count = bodies.len();
    let responses = parallel(target, count, plan.connections, move |i| {
        (path, bodies[i].clone())
    })
    .await?;
    for (status, body) in &responses {
        phase::check(phase, *status, body).map_err(anyhow::Error::msg)?;
    }
    Ok(())
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
