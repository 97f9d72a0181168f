//! Leaked keys (a Keywarden extension): what a workspace does when one of its keys is found in
//! public, and how reports from GitHub's secret scanning partner program are authenticated.
//!
//! GitHub signs each report with ECDSA P-256 over the raw request body (SHA-256), sends the
//! base64 DER signature in `Github-Public-Key-Signature` and names the key in
//! `Github-Public-Key-Identifier`. GitHub publishes its keys; a Keywarden node cannot fetch
//! them (it is not expected to reach github.com), so the operator configures them in the
//! published JSON form ([`PartnerKeys::from_github_json`]).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use serde::Deserialize;

/// Most reports one partner request may carry; GitHub batches far fewer.
pub const MAX_REPORTS: usize = 1000;
/// Longest token a report may carry: longer than any key this server issues.
pub const MAX_TOKEN_LEN: usize = 1024;
/// Most keys one `leaks.checkKeys` request may ask about.
pub const MAX_CHECK_KEYS: usize = 100;

/// What happens to a live key reported as leaked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeakPolicy {
    /// Deleted (softly, as `keys.deleteKey` without `permanent`): it stops verifying at once,
    /// while its record stays, so the audit trail and later reports of the same key still
    /// resolve to it. The safe default: a leaked key is in strangers' hands.
    #[default]
    Revoke,
    /// Disabled (`enabled: false`): it stops verifying, and an owner can enable it again.
    Disable,
    /// Left working; the report is recorded, audited and announced so an owner can act.
    Flag,
}

impl LeakPolicy {
    pub const ALL: [Self; 3] = [Self::Revoke, Self::Disable, Self::Flag];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Revoke => "revoke",
            Self::Disable => "disable",
            Self::Flag => "flag",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// What applying the policy did to the key, as recorded in the report.
    pub const fn outcome(self) -> &'static str {
        match self {
            Self::Revoke => "revoked",
            Self::Disable => "disabled",
            Self::Flag => "flagged",
        }
    }
}

impl fmt::Display for LeakPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// GitHub's answer for one reported token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakLabel {
    /// The token is a key this server issued.
    TruePositive,
    /// It is not (or no longer known): nothing is said about it beyond this.
    FalsePositive,
}

impl LeakLabel {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TruePositive => "true_positive",
            Self::FalsePositive => "false_positive",
        }
    }
}

/// One match reported by GitHub: `{token, type, url, source}`.
#[derive(Clone, Deserialize)]
pub struct PartnerReport {
    pub token: String,
    #[serde(rename = "type")]
    pub token_type: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

impl fmt::Debug for PartnerReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a secret even when it leaked: it never goes to logs.
        f.debug_struct("PartnerReport")
            .field("token", &"..")
            .field("token_type", &self.token_type)
            .field("url", &self.url)
            .field("source", &self.source)
            .finish()
    }
}

/// Why a partner request body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportsError {
    #[error("must be a JSON array of {{token, type, url, source}} objects")]
    Shape,
    #[error("must hold at most {MAX_REPORTS} reports")]
    TooMany,
    #[error("a token must be 1 to {MAX_TOKEN_LEN} characters")]
    Token,
}

/// Parses a partner request body.
pub fn parse_reports(body: &[u8]) -> Result<Vec<PartnerReport>, ReportsError> {
    let reports: Vec<PartnerReport> =
        serde_json::from_slice(body).map_err(|_| ReportsError::Shape)?;
    if reports.len() > MAX_REPORTS {
        return Err(ReportsError::TooMany);
    }
    if reports
        .iter()
        .any(|r| r.token.is_empty() || r.token.len() > MAX_TOKEN_LEN)
    {
        return Err(ReportsError::Token);
    }
    Ok(reports)
}

/// Why a partner request is not believed. Deliberately coarse: the sender learns only that
/// it failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRejected {
    #[error("the Github-Public-Key-Identifier header names no configured key")]
    UnknownKey,
    #[error("the Github-Public-Key-Signature header is not a base64 DER ECDSA signature")]
    Malformed,
    #[error("the signature does not match the request body")]
    Mismatch,
}

/// Why the configured partner keys cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartnerKeysError {
    #[error("expected GitHub's JSON form: {{\"public_keys\": [{{\"key_identifier\", \"key\"}}]}}")]
    Shape,
    #[error("key {0} is not a PEM-encoded P-256 public key")]
    Key(String),
}

#[derive(Deserialize)]
struct PublishedKeys {
    public_keys: Vec<PublishedKey>,
}

#[derive(Deserialize)]
struct PublishedKey {
    key_identifier: String,
    key: String,
}

/// The public keys partner reports are checked against, by identifier.
#[derive(Clone, Default)]
pub struct PartnerKeys {
    keys: Vec<(String, VerifyingKey)>,
}

impl fmt::Debug for PartnerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|(id, _)| id))
            .finish()
    }
}

impl PartnerKeys {
    /// Parses the document GitHub publishes for secret scanning partners:
    /// `{"public_keys": [{"key_identifier": "…", "key": "-----BEGIN PUBLIC KEY-----…", …}]}`.
    /// Other fields (`is_current`) are ignored: a key stays valid while it is listed.
    pub fn from_github_json(text: &str) -> Result<Self, PartnerKeysError> {
        let published: PublishedKeys =
            serde_json::from_str(text).map_err(|_| PartnerKeysError::Shape)?;
        let keys = published
            .public_keys
            .into_iter()
            .map(|k| {
                VerifyingKey::from_public_key_pem(k.key.trim())
                    .map(|key| (k.key_identifier.clone(), key))
                    .map_err(|_| PartnerKeysError::Key(k.key_identifier))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks that `signature_b64` (base64 DER) is the signature of `body` by the key named
    /// `key_identifier`.
    pub fn verify(
        &self,
        key_identifier: &str,
        signature_b64: &str,
        body: &[u8],
    ) -> Result<(), SignatureRejected> {
        let key = self
            .keys
            .iter()
            .find(|(id, _)| id == key_identifier)
            .map(|(_, key)| key)
            .ok_or(SignatureRejected::UnknownKey)?;
        let der = STANDARD
            .decode(signature_b64.trim())
            .map_err(|_| SignatureRejected::Malformed)?;
        let signature = Signature::from_der(&der).map_err(|_| SignatureRejected::Malformed)?;
        key.verify(body, &signature)
            .map_err(|_| SignatureRejected::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::{EncodePublicKey as _, LineEnding};

    use super::*;

    fn signing_key() -> SigningKey {
        loop {
            let mut bytes = [0u8; 32];
            crate::random::fill(&mut bytes);
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                return key;
            }
        }
    }

    fn published(id: &str, key: &SigningKey) -> String {
        let pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        serde_json::json!({"public_keys": [{"key_identifier": id, "key": pem, "is_current": true}]})
            .to_string()
    }

    fn sign(key: &SigningKey, body: &[u8]) -> String {
        let signature: Signature = key.sign(body);
        STANDARD.encode(signature.to_der().as_bytes())
    }

    #[test]
    fn a_signed_body_verifies_and_any_change_is_refused() {
        let key = signing_key();
        let keys = PartnerKeys::from_github_json(&published("k1", &key)).unwrap();
        let body = br#"[{"token":"x","type":"keywarden","url":"u","source":"content"}]"#;
        let signature = sign(&key, body);
        assert_eq!(keys.verify("k1", &signature, body), Ok(()));
        assert_eq!(
            keys.verify("k1", &signature, b"[]"),
            Err(SignatureRejected::Mismatch)
        );
        assert_eq!(
            keys.verify("k2", &signature, body),
            Err(SignatureRejected::UnknownKey)
        );
        assert_eq!(
            keys.verify("k1", "not base64!", body),
            Err(SignatureRejected::Malformed)
        );
        assert_eq!(
            keys.verify("k1", &STANDARD.encode(b"junk"), body),
            Err(SignatureRejected::Malformed)
        );
        let other = signing_key();
        assert_eq!(
            keys.verify("k1", &sign(&other, body), body),
            Err(SignatureRejected::Mismatch)
        );
    }

    #[test]
    fn bad_key_documents_are_refused() {
        assert_eq!(
            PartnerKeys::from_github_json("{}").unwrap_err(),
            PartnerKeysError::Shape
        );
        let bad = r#"{"public_keys": [{"key_identifier": "k", "key": "nope"}]}"#;
        assert_eq!(
            PartnerKeys::from_github_json(bad).unwrap_err(),
            PartnerKeysError::Key("k".into())
        );
    }

    #[test]
    fn reports_parse_and_bounds_hold() {
        let reports =
            parse_reports(br#"[{"token":"t","type":"kw","url":"https://x","source":"content"}]"#)
                .unwrap();
        assert_eq!(reports[0].token_type, "kw");
        assert!(!format!("{:?}", reports[0]).contains("\"t\""));
        assert_eq!(parse_reports(b"{}").unwrap_err(), ReportsError::Shape);
        assert_eq!(
            parse_reports(br#"[{"token":"","type":"kw"}]"#).unwrap_err(),
            ReportsError::Token
        );
    }

    #[test]
    fn policies_round_trip() {
        for p in LeakPolicy::ALL {
            assert_eq!(LeakPolicy::parse(p.as_str()), Some(p));
        }
        assert_eq!(LeakPolicy::parse("ignore"), None);
        assert_eq!(LeakPolicy::default(), LeakPolicy::Revoke);
    }
}
