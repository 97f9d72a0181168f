//! The measured phases: what each sends and what each expects back.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use clap::ValueEnum;
use hyper::{Request, StatusCode};
use serde::Deserialize;

use crate::client::{Body, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    /// `GET /v2/liveness`: the HTTP stack alone, the baseline.
    Liveness,
    /// `keys.verifyKey` with keys that exist (cached after their first use) and carry no
    /// rate limit and no permissions.
    VerifyValid,
    /// `keys.verifyKey` without a permission query, with keys that hold three permissions:
    /// the counterpart verify-query is compared with (same keys, same response).
    VerifyPerms,
    /// `keys.verifyKey` with the same keys as verify-perms and a three-term permission query
    /// they satisfy: the cost of evaluating a query on every verification.
    VerifyQuery,
    /// `keys.verifyKey` with keys that carry one auto-applied rate limit, too high to be
    /// reached: the cost of checking and counting a limit on every verification.
    VerifyLimited,
    /// `keys.verifyKey` with a fresh random key each request.
    VerifyUnknown,
    /// `ratelimit.limit` for identifiers drawn from a fixed set, with a limit too high to be
    /// reached.
    RatelimitLimit,
    /// `keys.createKey`: one store write per request.
    CreateKey,
}

impl Phase {
    pub const ALL: [Self; 8] = [
        Self::Liveness,
        Self::VerifyValid,
        Self::VerifyPerms,
        Self::VerifyQuery,
        Self::VerifyLimited,
        Self::VerifyUnknown,
        Self::RatelimitLimit,
        Self::CreateKey,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Liveness => "liveness",
            Self::VerifyValid => "verify-valid",
            Self::VerifyPerms => "verify-perms",
            Self::VerifyQuery => "verify-query",
            Self::VerifyLimited => "verify-limited",
            Self::VerifyUnknown => "verify-unknown",
            Self::RatelimitLimit => "ratelimit-limit",
            Self::CreateKey => "create-key",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

pub const LIVENESS: &str = "/v2/liveness";
pub const CREATE_API: &str = "/v2/apis.createApi";
pub const CREATE_KEY: &str = "/v2/keys.createKey";
pub const VERIFY_KEY: &str = "/v2/keys.verifyKey";
pub const RATELIMIT_LIMIT: &str = "/v2/ratelimit.limit";

/// Prefix of every key the benchmark creates, and of the unknown keys it makes up.
pub const KEY_PREFIX: &str = "sk";

/// The rate limits of verify-limited and ratelimit-limit: far more calls per window than a
/// run can make, so every call passes and each one does the full work of counting.
pub const HIGH_LIMIT: u64 = 1_000_000_000;
pub const LIMIT_WINDOW_MS: u64 = 60_000;

/// The permissions of the keys of verify-perms and verify-query (created on the fly by
/// `keys.createKey`), and the query verify-query sends: three terms, which these keys
/// satisfy. The example, so the whole of `AND`, `OR` and parentheses is evaluated.
pub const PERMISSIONS: [&str; 3] = ["documents.read", "documents.write", "users.view"];
pub const PERMISSION_QUERY: &str = "documents.read AND (documents.write OR users.view)";

/// Everything the phases need, shared by all workers.
pub struct Workload {
    pub target: Target,
    /// `{"key":"…"}` for every created key without a rate limit.
    pub valid_bodies: Vec<Bytes>,
    /// `{"key":"…"}` for every created key with one auto-applied rate limit.
    pub limited_bodies: Vec<Bytes>,
    /// `{"key":"…"}` for every created key with the three `PERMISSIONS`.
    pub permitted_bodies: Vec<Bytes>,
    /// `{"key":"…","permissions":PERMISSION_QUERY}` for the same keys, in the same order.
    pub query_bodies: Vec<Bytes>,
    /// `ratelimit.limit` bodies, one per identifier of the benchmark's namespace.
    pub limit_bodies: Vec<Bytes>,
    /// `{"apiId":"…","prefix":"sk"}`.
    pub create_key_body: Bytes,
    /// Length of the random part of made-up keys: that of the created keys, so unknown and
    /// valid keys cost the same to hash and parse.
    pub unknown_body_len: usize,
}

pub fn create_key_body(api_id: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "apiId": api_id, "prefix": KEY_PREFIX }).to_string())
}

/// Like `create_key_body`, for a key whose every verification checks one high limit.
pub fn create_limited_key_body(api_id: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "apiId": api_id,
            "prefix": KEY_PREFIX,
            "ratelimits": [{
                "name": "requests",
                "limit": HIGH_LIMIT,
                "duration": LIMIT_WINDOW_MS,
                "autoApply": true,
            }],
        })
        .to_string(),
    )
}

/// Like `create_key_body`, for a key that holds the three `PERMISSIONS`.
pub fn create_permitted_key_body(api_id: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "apiId": api_id,
            "prefix": KEY_PREFIX,
            "permissions": PERMISSIONS,
        })
        .to_string(),
    )
}

pub fn verify_body(key: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "key": key }).to_string())
}

/// `verify_body` with `PERMISSION_QUERY`.
pub fn verify_query_body(key: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "key": key, "permissions": PERMISSION_QUERY }).to_string())
}

/// `ratelimit.limit` for identifier number `index` of `namespace`.
pub fn limit_body(namespace: &str, index: usize) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "namespace": namespace,
            "identifier": format!("user_{index}"),
            "limit": HIGH_LIMIT,
            "duration": LIMIT_WINDOW_MS,
        })
        .to_string(),
    )
}

/// Per-worker state that decides each request.
pub struct Cursor {
    rng: XorShift,
    next_key: usize,
}

impl Cursor {
    /// Worker `index` of `workers` starts at its own share of the keys, so every key is used
    /// (every verify phase with created keys has as many keys).
    pub fn new(index: usize, workers: usize, keys: usize, seed: u64) -> Self {
        Self {
            rng: XorShift::new(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            next_key: (index * keys).checked_div(workers.max(1)).unwrap_or(0),
        }
    }

    /// The next of `bodies`, in turn.
    fn in_turn(&mut self, bodies: &[Bytes]) -> Bytes {
        let i = self.next_key % bodies.len();
        self.next_key = i + 1;
        bodies[i].clone()
    }
}

const BASE58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

impl Workload {
    pub fn request(&self, phase: Phase, cursor: &mut Cursor) -> Request<Body> {
        match phase {
            Phase::Liveness => self.target.get(LIVENESS),
            Phase::VerifyValid => self
                .target
                .post(VERIFY_KEY, cursor.in_turn(&self.valid_bodies)),
            Phase::VerifyPerms => self
                .target
                .post(VERIFY_KEY, cursor.in_turn(&self.permitted_bodies)),
            Phase::VerifyQuery => self
                .target
                .post(VERIFY_KEY, cursor.in_turn(&self.query_bodies)),
            Phase::VerifyLimited => self
                .target
                .post(VERIFY_KEY, cursor.in_turn(&self.limited_bodies)),
            Phase::VerifyUnknown => {
                let mut body = Vec::with_capacity(self.unknown_body_len + 16);
                body.extend_from_slice(b"{\"key\":\"");
                body.extend_from_slice(KEY_PREFIX.as_bytes());
                body.push(b'_');
                for _ in 0..self.unknown_body_len {
                    let r = cursor.rng.next() % 58;
                    body.push(BASE58[usize::try_from(r).unwrap_or(0)]);
                }
                body.extend_from_slice(b"\"}");
                self.target.post(VERIFY_KEY, Bytes::from(body))
            }
            Phase::RatelimitLimit => {
                // Drawn at random rather than in turn, as real callers' identifiers are.
                let n = u64::try_from(self.limit_bodies.len()).unwrap_or(u64::MAX);
                let i = usize::try_from(cursor.rng.next() % n.max(1)).unwrap_or(0);
                self.target
                    .post(RATELIMIT_LIMIT, self.limit_bodies[i].clone())
            }
            Phase::CreateKey => self.target.post(CREATE_KEY, self.create_key_body.clone()),
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data<'a> {
    valid: Option<bool>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    key_id: Option<Cow<'a, str>>,
    ratelimits: Option<Vec<CheckedLimit>>,
    #[serde(borrow)]
    permissions: Option<Vec<Cow<'a, str>>>,
    success: Option<bool>,
}

impl Data<'_> {
    /// A valid verification without rate limits, of a key that holds exactly `permissions`
    /// (a missing list counts as empty).
    fn valid_holding(&self, permissions: &[&str]) -> bool {
        self.valid == Some(true)
            && self.code.as_deref() == Some("VALID")
            && self.ratelimits.is_none()
            && self.permissions.as_deref().unwrap_or_default().len() == permissions.len()
            && permissions
                .iter()
                .all(|&p| self.permissions.iter().flatten().any(|held| held == p))
    }
}

/// One limit a verification checked.
#[derive(Deserialize)]
struct CheckedLimit {
    exceeded: Option<bool>,
}

/// Checks that a response is the one `phase` expects; the error says how it differs.
pub fn check(phase: Phase, status: StatusCode, body: &[u8]) -> Result<(), String> {
    if status != StatusCode::OK {
        return Err(format!("{phase}: HTTP {status}: {}", snippet(body)));
    }
    let data = serde_json::from_slice::<Envelope<'_>>(body)
        .ok()
        .and_then(|e| e.data)
        .ok_or_else(|| format!("{phase}: no JSON `data` in {}", snippet(body)))?;
    let ok = match phase {
        Phase::Liveness => data.message.as_deref() == Some("OK"),
        // No `ratelimits`: these phases are verifications without limits. The permissions
        // are checked so that the phases compare the keys they claim to.
        Phase::VerifyValid => data.valid_holding(&[]),
        Phase::VerifyPerms | Phase::VerifyQuery => data.valid_holding(&PERMISSIONS),
        Phase::VerifyLimited => {
            data.valid == Some(true)
                && data.code.as_deref() == Some("VALID")
                && data
                    .ratelimits
                    .as_deref()
                    .is_some_and(|l| matches!(l, [only] if only.exceeded == Some(false)))
        }
        Phase::VerifyUnknown => {
            data.valid == Some(false) && data.code.as_deref() == Some("NOT_FOUND")
        }
        Phase::RatelimitLimit => data.success == Some(true),
        Phase::CreateKey => {
            data.key_id.as_deref().is_some_and(|k| !k.is_empty())
                && data
                    .key
                    .as_deref()
                    .is_some_and(|k| k.starts_with(KEY_PREFIX))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{phase}: unexpected response {}", snippet(body)))
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s
}

/// xorshift64*: plenty for making up keys, and no dependency.
pub(crate) struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}
