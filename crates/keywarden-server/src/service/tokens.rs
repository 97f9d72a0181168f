//! Short-lived tokens (a Keywarden extension): a key is verified exactly as
//! `keys.verifyKey` verifies it (limits, credits, usage event, anomaly detection) and, when
//! the outcome is `VALID`, a JWT signed with the current signing key is issued for it.
//!
//! Every node keeps the signing keys in memory and reloads them from the store regularly
//! (`refresh_signing_keys`); the node that finds the newest key due adds its successor,
//! and the store makes sure only one node's key is added.

use std::sync::Arc;

use keywarden_core::sealed_secret::SecretSealError;
use keywarden_core::store::StoreError;
use keywarden_core::time::UnixMillis;
use keywarden_core::token::{
    Jwk, SigningKey, SigningKeyRecord, SigningKeyRing, TokenClaims, TokenPolicy, new_token_id,
};
use keywarden_core::verify::VerifyCode;
use parking_lot::RwLock;

use super::{Caller, Keywarden, RequestOrigin, Verification, VerifyInput};
use crate::error::ApiError;

/// How tokens are issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    pub policy: TokenPolicy,
    /// The `iss` claim.
    pub issuer: String,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            policy: TokenPolicy::default(),
            issuer: "keywarden".into(),
        }
    }
}

/// The signing keys this node knows and the rules it issues by.
#[derive(Debug)]
pub(super) struct TokenKeys {
    settings: TokenSettings,
    ring: RwLock<Arc<SigningKeyRing>>,
}

impl TokenKeys {
    pub(super) fn new(settings: TokenSettings) -> Self {
        Self {
            settings,
            ring: RwLock::new(Arc::new(SigningKeyRing::default())),
        }
    }

    fn ring(&self) -> Arc<SigningKeyRing> {
        Arc::clone(&self.ring.read())
    }
}

/// A token request, validated.
#[derive(Debug)]
pub struct TokenRequest {
    pub verify: VerifyInput,
    /// The lifetime asked for; the default when `None`. Capped by the policy and the key.
    pub ttl_ms: Option<i64>,
}

/// The outcome of an exchange: the verification, and a token when it was `VALID`.
#[derive(Debug)]
pub struct Exchange {
    pub verification: Verification,
    pub token: Option<IssuedToken>,
}

#[derive(Debug)]
pub struct IssuedToken {
    /// The compact JWT. Not a secret to the caller, but a credential: never logged.
    pub jwt: String,
    pub expires: UnixMillis,
}

/// Why the signing keys could not be loaded or rotated.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a token signing key does not open with the configured master keys")]
    Sealed(#[from] SecretSealError),
}

impl From<SigningKeyError> for ApiError {
    fn from(e: SigningKeyError) -> Self {
        match e {
            SigningKeyError::Store(e) => e.into(),
            e @ SigningKeyError::Sealed(_) => Self::Internal(anyhow::Error::new(e)),
        }
    }
}

impl Keywarden {
    /// Verifies the key and, when the outcome is `VALID`, signs a token for it.
    pub async fn exchange_token(
        &self,
        caller: &Caller,
        mut request: TokenRequest,
        origin: Option<RequestOrigin>,
    ) -> Result<Exchange, ApiError> {
        // The signer comes first: should a due rotation fail in the store, the request fails
        // before the key spent credits or counted against its limits.
        let signer = self.token_signer(self.now()).await?;
        let verification = self.verify(caller, &mut request.verify, origin).await?;
        let key = match &verification.key {
            Some(key) if verification.code == VerifyCode::Valid => Arc::clone(key),
            _ => {
                return Ok(Exchange {
                    verification,
                    token: None,
                });
            }
        };
        let now = self.now();
        let expires = self
            .tokens
            .settings
            .policy
            .expiry(now, request.ttl_ms, key.expires);
        let claims = TokenClaims {
            iss: self.tokens.settings.issuer.clone(),
            sub: key.id.clone(),
            iat: now.as_millis().div_euclid(1000),
            exp: expires.as_millis() / 1000,
            jti: new_token_id(),
            workspace_id: key.workspace_id.clone(),
            api_id: key.api_id.clone(),
            external_id: key.identity.as_ref().map(|i| i.external_id.to_string()),
            permissions: key
                .effective_permissions()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            roles: key
                .roles
                .iter()
                .map(|r| r.name.as_str().to_owned())
                .collect(),
        };
        let jwt = signer.sign(&claims);
        Ok(Exchange {
            verification,
            token: Some(IssuedToken { jwt, expires }),
        })
    }

    /// The public keys to publish now (`/.well-known/jwks.json`).
    pub fn published_signing_keys(&self) -> Vec<Jwk> {
        self.tokens
            .ring()
            .published(self.now(), &self.tokens.settings.policy)
    }

    /// Reloads the signing keys from the store (other nodes may have rotated) and adds a
    /// new one when the newest is due.
    pub async fn refresh_signing_keys(&self) -> Result<(), SigningKeyError> {
        self.load_signing_keys().await?;
        let now = self.now();
        if self
            .tokens
            .ring()
            .signer(now, &self.tokens.settings.policy)
            .is_none()
        {
            self.rotate_signing_key(now).await?;
        }
        Ok(())
    }

    /// The key that signs at `now`, rotating first when one is due.
    async fn token_signer(&self, now: UnixMillis) -> Result<Arc<SigningKey>, ApiError> {
        let policy = &self.tokens.settings.policy;
        if let Some(signer) = self.tokens.ring().signer(now, policy) {
            return Ok(signer);
        }
        self.rotate_signing_key(now).await?;
        self.tokens.ring().signer(now, policy).ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "no signing key is current after a rotation"
            ))
        })
    }

    async fn rotate_signing_key(&self, now: UnixMillis) -> Result<(), SigningKeyError> {
        let policy = &self.tokens.settings.policy;
        let key = SigningKeyRecord::generate(now, self.master_keys.as_ref());
        let added = self
            .store
            .rotate_signing_key(&key, policy.rotation_cutoff(now), policy.retire_cutoff(now))
            .await?;
        if added {
            tracing::info!(kid = %key.id, "new token signing key");
        }
        self.load_signing_keys().await
    }

    /// Reloads the signing keys, opening their seeds: the only place seeds are decrypted.
    async fn load_signing_keys(&self) -> Result<(), SigningKeyError> {
        let records = self.store.signing_keys().await?;
        let ring = SigningKeyRing::open(&records, self.master_keys.as_ref())?;
        *self.tokens.ring.write() = Arc::new(ring);
        Ok(())
    }
}
