//! Signing keys of short-lived tokens in their stored form, shared by both backends.

use keywarden_core::id::SigningKeyId;
use keywarden_core::sealed_secret::SecretAtRest;
use keywarden_core::time::UnixMillis;
use keywarden_core::token::SigningKeyRecord;

use crate::columns::{ColumnError, at};

pub const SIGNING_KEY_COLUMNS: &str = "id, created_at, seed";

/// One row of `signing_keys`. The seed column holds the private key: `sealed:v1:…` under a
/// master key, or unpadded base64url on a server without master keys.
pub struct StoredSigningKey {
    pub id: String,
    pub created_at: i64,
    pub seed: String,
}

impl StoredSigningKey {
    pub fn of(key: &SigningKeyRecord) -> Self {
        Self {
            id: key.id.to_string(),
            created_at: key.created_at.as_millis(),
            seed: key.seed.to_stored(),
        }
    }

    pub fn into_record(self) -> Result<SigningKeyRecord, ColumnError> {
        Ok(SigningKeyRecord {
            id: SigningKeyId::parse(&self.id).map_err(at("signing_keys.id"))?,
            created_at: UnixMillis::from_millis(self.created_at),
            seed: SecretAtRest::from_stored(&self.seed).map_err(at("signing_keys.seed"))?,
        })
    }
}
