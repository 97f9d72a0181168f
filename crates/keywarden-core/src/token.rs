//! Short-lived tokens (a Keywarden extension): a verified key is exchanged for a JWT signed
//! with Ed25519 (`EdDSA`), which services can check offline against the published keys
//! (`/.well-known/jwks.json`) instead of calling verify on every request.
//!
//! Signing keys are shared by every node (kept in the store) and rotated: the newest key
//! signs until it is `rotate_every` old, and a replaced key stays published until every
//! token it can have signed has expired (its successor's creation plus the longest token
//! lifetime plus a grace period for clock skew and nodes that learn of the successor late).
//! See `docs/tokens.md`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::Serialize;

use crate::id::{ApiId, KeyId, SigningKeyId, WorkspaceId};
use crate::sealed_secret::{SecretAtRest, SecretOwner, SecretSealError, ServerSecret};
use crate::time::UnixMillis;
use crate::vault::MasterKeyring;

/// The private half of a signing key: an Ed25519 seed. Never printed.
///
/// Stored sealed under the master key when the server has master keys, as unpadded
/// base64url otherwise (see `sealed_secret`).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSeed([u8; 32]);

/// A stored seed that is not 32 bytes of base64url.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a signing key seed must be 32 bytes of unpadded base64url")]
pub struct SeedFormatError;

impl SigningSeed {
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        crate::random::fill(&mut seed);
        Self(seed)
    }

    /// The seed as stored: unpadded base64url.
    pub fn to_stored(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub fn from_stored(s: &str) -> Result<Self, SeedFormatError> {
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| SeedFormatError)?;
        Ok(Self(bytes.try_into().map_err(|_| SeedFormatError)?))
    }
}

impl ServerSecret for SigningSeed {
    fn to_plain(&self) -> String {
        self.to_stored()
    }

    fn from_plain(text: &str) -> Option<Self> {
        Self::from_stored(text).ok()
    }
}

impl fmt::Debug for SigningSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSeed(<redacted>)")
    }
}

/// A signing key as the store keeps it: its seed sealed under a master key when the server
/// has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub id: SigningKeyId,
    pub created_at: UnixMillis,
    pub seed: SecretAtRest<SigningSeed>,
}

impl SigningKeyRecord {
    /// A fresh key created at `now`, its seed sealed under the current master key of `ring`.
    pub fn generate(now: UnixMillis, ring: Option<&MasterKeyring>) -> Self {
        let id = SigningKeyId::generate(now);
        let seed = SecretAtRest::seal(
            &SigningSeed::generate(),
            &SecretOwner::SigningKey(id.clone()),
            ring,
        );
        Self {
            id,
            created_at: now,
            seed,
        }
    }

    /// What its seed's ciphertext is bound to.
    pub fn owner(&self) -> SecretOwner {
        SecretOwner::SigningKey(self.id.clone())
    }
}

/// A signing key ready to sign.
pub struct SigningKey {
    id: SigningKeyId,
    created_at: UnixMillis,
    pair: Ed25519KeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key of `record`, its seed opened with `ring` when sealed. The seed lives on only
    /// inside the key pair.
    pub fn open(
        record: &SigningKeyRecord,
        ring: Option<&MasterKeyring>,
    ) -> Result<Self, SecretSealError> {
        let seed = record.seed.open(&record.owner(), ring)?;
        // Any 32 bytes are a valid Ed25519 seed; the public key is derived from it.
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed.0)
            .expect("ring accepts every 32-byte Ed25519 seed");
        Ok(Self {
            id: record.id.clone(),
            created_at: record.created_at,
            pair,
        })
    }

    pub fn id(&self) -> &SigningKeyId {
        &self.id
    }

    pub fn created_at(&self) -> UnixMillis {
        self.created_at
    }

    /// The public key as a JWK (RFC 8037: `OKP`, `Ed25519`).
    pub fn jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP",
            crv: "Ed25519",
            x: URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref()),
            kid: self.id.to_string(),
            alg: "EdDSA",
            use_: "sig",
        }
    }

    /// The compact JWT of `claims`, with this key's id as `kid`.
    pub fn sign(&self, claims: &TokenClaims) -> String {
        let header = Header {
            alg: "EdDSA",
            typ: "JWT",
            kid: self.id.as_str(),
        };
        // Both serialize infallibly: strings, numbers and lists of strings only.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let claims = serde_json::to_vec(claims).unwrap_or_default();
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims));
        let signature = self.pair.sign(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
        token
    }
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// One public key of the JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jwk {
    pub kty: &'static str,
    pub crv: &'static str,
    /// The public key, unpadded base64url.
    pub x: String,
    pub kid: String,
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
}

/// What a token says. Times are seconds since the epoch (JWT `NumericDate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenClaims {
    pub iss: String,
    /// The key's id.
    pub sub: KeyId,
    pub iat: i64,
    pub exp: i64,
    /// Unique per token, for replay lists.
    pub jti: String,
    pub workspace_id: WorkspaceId,
    pub api_id: ApiId,
    /// The external id of the key's identity, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Every permission the key holds, directly or through its roles, sorted.
    pub permissions: Vec<String>,
    pub roles: Vec<String>,
}

/// A new `jti`: 16 random bytes, base64url.
pub fn new_token_id() -> String {
    let mut bytes = [0u8; 16];
    crate::random::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// How long tokens live and how signing keys rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Lifetime of a token when the request names none.
    pub default_ttl_ms: i64,
    /// The longest lifetime a token gets, whatever the request asks.
    pub max_ttl_ms: i64,
    /// How long one signing key signs before a new one takes over.
    pub rotate_every_ms: i64,
    /// Extra time a replaced key stays published, for clock skew and for nodes that learn
    /// of its successor late.
    pub grace_ms: i64,
}

/// A policy whose numbers cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is out of range")]
pub struct TokenPolicyError(pub &'static str);

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            default_ttl_ms: 5 * 60 * 1000,
            max_ttl_ms: 60 * 60 * 1000,
            rotate_every_ms: 24 * 60 * 60 * 1000,
            grace_ms: 60 * 1000,
        }
    }
}

impl TokenPolicy {
    /// The shortest lifetime a request may ask for.
    pub const MIN_TTL_MS: i64 = 1000;

    pub fn validate(&self) -> Result<(), TokenPolicyError> {
        if self.max_ttl_ms < Self::MIN_TTL_MS {
            return Err(TokenPolicyError("max_ttl"));
        }
        if !(Self::MIN_TTL_MS..=self.max_ttl_ms).contains(&self.default_ttl_ms) {
            return Err(TokenPolicyError("default_ttl"));
        }
        if self.rotate_every_ms < 60_000 {
            return Err(TokenPolicyError("rotation"));
        }
        if self.grace_ms < 0 {
            return Err(TokenPolicyError("grace"));
        }
        Ok(())
    }

    /// When a token issued at `now` expires: the requested lifetime (or the default), capped
    /// by the policy's maximum and by the key's own expiry. Whole seconds, as JWTs count.
    pub fn expiry(
        &self,
        now: UnixMillis,
        requested_ttl_ms: Option<i64>,
        key_expires: Option<UnixMillis>,
    ) -> UnixMillis {
        let ttl = requested_ttl_ms
            .unwrap_or(self.default_ttl_ms)
            .min(self.max_ttl_ms);
        let mut expires = now.plus_millis(ttl);
        if let Some(key_expires) = key_expires
            && key_expires < expires
        {
            expires = key_expires;
        }
        UnixMillis::from_millis(expires.as_millis().div_euclid(1000) * 1000)
    }

    /// How long a replaced key stays published after its successor was created.
    fn overlap_ms(&self) -> i64 {
        self.max_ttl_ms.saturating_add(self.grace_ms)
    }

    /// Keys created before the newest key created at or before this time have signed their
    /// last live token: they may be deleted.
    pub fn retire_cutoff(&self, now: UnixMillis) -> UnixMillis {
        now.plus_millis(-self.overlap_ms())
    }

    /// A new key is due when the newest was created at or before this time.
    pub fn rotation_cutoff(&self, now: UnixMillis) -> UnixMillis {
        now.plus_millis(-self.rotate_every_ms)
    }
}

/// The signing keys one node knows, newest first.
#[derive(Debug, Default)]
pub struct SigningKeyRing {
    keys: Vec<std::sync::Arc<SigningKey>>,
}

impl SigningKeyRing {
    /// The keys of `records`, their seeds opened with `ring`; fails on the first seed that
    /// does not open.
    pub fn open(
        records: &[SigningKeyRecord],
        ring: Option<&MasterKeyring>,
    ) -> Result<Self, SecretSealError> {
        let mut keys = records
            .iter()
            .map(|r| SigningKey::open(r, ring).map(std::sync::Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by(|a, b| b.created_at().cmp(&a.created_at()).then(b.id().cmp(a.id())));
        Ok(Self { keys })
    }

    /// The key that signs at `now`, or `None` when a new key is due (or none exists).
    pub fn signer(
        &self,
        now: UnixMillis,
        policy: &TokenPolicy,
    ) -> Option<std::sync::Arc<SigningKey>> {
        self.keys
            .iter()
            .find(|k| k.created_at() <= now)
            .filter(|k| k.created_at() > policy.rotation_cutoff(now))
            .cloned()
    }

    /// The keys to publish at `now`: the newest, and each older one until its successor
    /// has been around longer than any token lives (plus grace).
    pub fn published(&self, now: UnixMillis, policy: &TokenPolicy) -> Vec<Jwk> {
        let cutoff = policy.retire_cutoff(now);
        let mut published = Vec::new();
        let mut successor_created: Option<UnixMillis> = None;
        for key in &self.keys {
            if successor_created.is_some_and(|s| s <= cutoff) {
                break;
            }
            published.push(key.jwk());
            successor_created = Some(key.created_at());
        }
        published
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_780_800_000;
    const HOUR: i64 = 3_600_000;

    fn at(ms: i64) -> UnixMillis {
        UnixMillis::from_millis(ms)
    }

    #[test]
    fn seeds_never_print_and_round_trip_through_storage() {
        let seed = SigningSeed::generate();
        assert_eq!(format!("{seed:?}"), "SigningSeed(<redacted>)");
        let record = SigningKeyRecord {
            seed: SecretAtRest::Plain(seed.clone()),
            ..SigningKeyRecord::generate(at(T0), None)
        };
        assert!(!format!("{record:?}").contains(&seed.to_stored()));
        assert_eq!(SigningSeed::from_stored(&seed.to_stored()), Ok(seed));
        assert_eq!(SigningSeed::from_stored("c2hvcnQ"), Err(SeedFormatError));
        assert_eq!(
            SigningSeed::from_stored("not base64!"),
            Err(SeedFormatError)
        );
    }

    #[test]
    fn a_sealed_seed_opens_to_the_same_key_pair_and_never_prints() {
        use crate::vault::{MasterKey, MasterKeyId};
        let entry = MasterKey::generate(MasterKeyId::parse("mk1").unwrap()).expose_config_entry();
        let keys = MasterKeyring::parse(&entry).unwrap();
        let sealed = SigningKeyRecord::generate(at(T0), Some(&keys));
        let stored = sealed.seed.to_stored();
        assert!(stored.starts_with("sealed:v1:mk1:"), "{stored}");
        let seed = sealed.seed.open(&sealed.owner(), Some(&keys)).unwrap();
        let plain = SigningKeyRecord {
            seed: SecretAtRest::Plain(seed.clone()),
            ..sealed.clone()
        };
        assert_eq!(
            SigningKey::open(&sealed, Some(&keys)).unwrap().jwk(),
            SigningKey::open(&plain, None).unwrap().jwk()
        );
        assert!(SigningKey::open(&sealed, None).is_err());
        assert!(!format!("{sealed:?}").contains(&seed.to_stored()));
        assert!(!format!("{sealed:?}").contains(stored.rsplit_once(':').unwrap().1));
    }

    #[test]
    fn tokens_are_three_base64url_parts_with_the_kid_in_the_header() {
        let key = SigningKey::open(&SigningKeyRecord::generate(at(T0), None), None).unwrap();
        let claims = TokenClaims {
            iss: "keywarden".into(),
            sub: KeyId::parse("key_abc").unwrap(),
            iat: 10,
            exp: 20,
            jti: new_token_id(),
            workspace_id: WorkspaceId::parse("ws_abc").unwrap(),
            api_id: ApiId::parse("api_abc").unwrap(),
            external_id: None,
            permissions: vec!["a.read".into()],
            roles: vec![],
        };
        let token = key.sign(&claims);
        let parts: Vec<_> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], key.id().as_str());
        let body: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(body["sub"], "key_abc");
        assert!(body.get("external_id").is_none());
        // The signature checks out with the published public key.
        let jwk = key.jwk();
        let public = URL_SAFE_NO_PAD.decode(&jwk.x).unwrap();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();
    }

    #[test]
    fn expiry_takes_the_request_capped_by_policy_and_key() {
        let policy = TokenPolicy::default();
        let now = at(T0);
        assert_eq!(policy.expiry(now, None, None), at(T0 + 300_000));
        assert_eq!(policy.expiry(now, Some(60_000), None), at(T0 + 60_000));
        assert_eq!(policy.expiry(now, Some(5 * HOUR), None), at(T0 + HOUR));
        assert_eq!(
            policy.expiry(now, None, Some(at(T0 + 90_500))),
            at(T0 + 90_000),
            "capped by the key's expiry, rounded down to whole seconds"
        );
    }

    #[test]
    fn policies_that_cannot_work_are_refused() {
        assert_eq!(TokenPolicy::default().validate(), Ok(()));
        let bad = |p: TokenPolicy| p.validate().unwrap_err().0;
        let d = TokenPolicy::default();
        assert_eq!(
            bad(TokenPolicy {
                default_ttl_ms: 2 * HOUR,
                ..d
            }),
            "default_ttl"
        );
        assert_eq!(
            bad(TokenPolicy {
                max_ttl_ms: 10,
                ..d
            }),
            "max_ttl"
        );
        assert_eq!(
            bad(TokenPolicy {
                rotate_every_ms: 5,
                ..d
            }),
            "rotation"
        );
    }

    #[test]
    fn a_replaced_key_stays_published_until_its_tokens_have_expired() {
        let policy = TokenPolicy::default();
        let day = policy.rotate_every_ms;
        let old = SigningKeyRecord::generate(at(T0), None);
        let ring = SigningKeyRing::open(std::slice::from_ref(&old), None).unwrap();
        assert_eq!(ring.signer(at(T0 + 1), &policy).unwrap().id(), &old.id);
        assert!(ring.signer(at(T0 + day), &policy).is_none(), "rotation due");

        let new = SigningKeyRecord::generate(at(T0 + day), None);
        let ring = SigningKeyRing::open(&[old.clone(), new.clone()], None).unwrap();
        assert_eq!(ring.signer(at(T0 + day), &policy).unwrap().id(), &new.id);
        let kids = |now: i64| -> Vec<String> {
            ring.published(at(now), &policy)
                .into_iter()
                .map(|k| k.kid)
                .collect()
        };
        let overlap = policy.max_ttl_ms + policy.grace_ms;
        assert_eq!(
            kids(T0 + day + overlap - 1),
            [new.id.to_string(), old.id.to_string()]
        );
        assert_eq!(kids(T0 + day + overlap), [new.id.to_string()]);
        assert_eq!(policy.retire_cutoff(at(T0 + day + overlap)), at(T0 + day));
    }
}
