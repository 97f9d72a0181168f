//! Server secrets at rest: the seeds of token signing keys and the secrets of webhook
//! endpoints. Unlike keys, these cannot be stored as digests (the server signs with them), so
//! when master keys are configured they are stored sealed under one.
//!
//! They are sealed directly under the current master key (AES-256-GCM, fresh nonce), with the
//! master key's id stored next to the ciphertext, rather than under a workspace data key:
//! signing keys belong to no workspace, both kinds are few (a handful of signing keys, a few
//! endpoints per workspace), and rotation is then one re-seal per row with no second layer to
//! create or keep in step. The associated data names the row the secret belongs to (the
//! signing key id; the workspace and endpoint id), so a ciphertext copied to another row does
//! not open.
//!
//! Without master keys, secrets stay stored as they always were (the plaintext form), and
//! sealed values are told apart by their `sealed:v1:` prefix, which neither plaintext form can
//! start with; so existing rows keep working and get sealed once master keys are configured.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::id::{SigningKeyId, WebhookEndpointId, WorkspaceId};
use crate::vault::{MasterKeyId, MasterKeyring, open_bytes, seal_bytes};
use crate::webhook::WebhookSecret;

/// What marks a stored value as sealed: `sealed:v1:<master key id>:<base64>`.
const SEALED_PREFIX: &str = "sealed:v1:";

/// A secret the server keeps to sign with, and its plaintext stored form (the form used when
/// no master key is configured, and the bytes that get sealed otherwise).
pub trait ServerSecret: Clone + Sized {
    fn to_plain(&self) -> String;
    fn from_plain(text: &str) -> Option<Self>;
}

impl ServerSecret for WebhookSecret {
    fn to_plain(&self) -> String {
        self.expose()
    }

    fn from_plain(text: &str) -> Option<Self> {
        Self::parse(text).ok()
    }
}

/// The row a server secret belongs to; bound to its ciphertext as associated data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOwner {
    SigningKey(SigningKeyId),
    WebhookEndpoint {
        workspace: WorkspaceId,
        endpoint: WebhookEndpointId,
    },
}

impl SecretOwner {
    fn aad(&self) -> Vec<u8> {
        match self {
            Self::SigningKey(id) => format!("keywarden/secret/v1\0signing-key\0{id}"),
            Self::WebhookEndpoint {
                workspace,
                endpoint,
            } => format!("keywarden/secret/v1\0webhook-secret\0{workspace}\0{endpoint}"),
        }
        .into_bytes()
    }
}

impl fmt::Display for SecretOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SigningKey(id) => write!(f, "the seed of token signing key {id}"),
            Self::WebhookEndpoint { endpoint, .. } => {
                write!(f, "the secret of webhook endpoint {endpoint}")
            }
        }
    }
}

/// A secret encrypted under the master key `master_key_id`. `Debug` shows the id only.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    master_key_id: MasterKeyId,
    /// Nonce followed by ciphertext and tag.
    ciphertext: Vec<u8>,
}

impl SealedSecret {
    pub fn master_key_id(&self) -> &MasterKeyId {
        &self.master_key_id
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecret")
            .field("master_key_id", &self.master_key_id)
            .finish_non_exhaustive()
    }
}

/// A server secret as the store keeps it: sealed under a master key, or plaintext when the
/// server has none. `Debug` never shows the secret (the plaintext types redact themselves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretAtRest<T> {
    Plain(T),
    Sealed(SealedSecret),
}

/// A stored value that is neither a plaintext secret nor a well-formed sealed one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a stored secret (neither its plaintext form nor sealed:v1:<master key id>:<base64>)")]
pub struct StoredSecretError;

/// Why a stored secret does not open. Names the row and the master key, never material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretSealError {
    #[error(
        "{owner} is sealed under master key '{master_key}', but this server has no master key \
         configured"
    )]
    NoMasterKeys {
        owner: String,
        master_key: MasterKeyId,
    },
    #[error("{owner} is sealed under master key '{master_key}', which is not configured")]
    UnknownMasterKey {
        owner: String,
        master_key: MasterKeyId,
    },
    #[error(
        "{owner} does not decrypt under master key '{master_key}': the configured key with that \
         id is not the one that sealed it, or the stored row was altered or moved"
    )]
    Undecryptable {
        owner: String,
        master_key: MasterKeyId,
    },
}

impl<T: ServerSecret> SecretAtRest<T> {
    /// `secret` as it is to be stored for `owner`: sealed under the current master key of
    /// `ring`, plaintext when the server has no master keys.
    pub fn seal(secret: &T, owner: &SecretOwner, ring: Option<&MasterKeyring>) -> Self {
        match ring {
            None => Self::Plain(secret.clone()),
            Some(ring) => {
                let master = ring.current();
                Self::Sealed(SealedSecret {
                    master_key_id: master.id().clone(),
                    ciphertext: seal_bytes(
                        &master.secret,
                        &owner.aad(),
                        secret.to_plain().as_bytes(),
                    ),
                })
            }
        }
    }

    /// The secret of `owner`, decrypted when it is sealed.
    pub fn open(
        &self,
        owner: &SecretOwner,
        ring: Option<&MasterKeyring>,
    ) -> Result<T, SecretSealError> {
        let sealed = match self {
            Self::Plain(secret) => return Ok(secret.clone()),
            Self::Sealed(sealed) => sealed,
        };
        let master_key = sealed.master_key_id.clone();
        let Some(ring) = ring else {
            return Err(SecretSealError::NoMasterKeys {
                owner: owner.to_string(),
                master_key,
            });
        };
        let Some(master) = ring.key(&master_key) else {
            return Err(SecretSealError::UnknownMasterKey {
                owner: owner.to_string(),
                master_key,
            });
        };
        open_bytes(&master.secret, &owner.aad(), &sealed.ciphertext)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| T::from_plain(&text))
            .ok_or_else(|| SecretSealError::Undecryptable {
                owner: owner.to_string(),
                master_key,
            })
    }

    /// The same secret sealed under the current master key of `ring`, or `None` when it
    /// already is. Fails when it does not open.
    pub fn reseal(
        &self,
        owner: &SecretOwner,
        ring: &MasterKeyring,
    ) -> Result<Option<Self>, SecretSealError> {
        let secret = self.open(owner, Some(ring))?;
        Ok((self.master_key_id() != Some(ring.current().id()))
            .then(|| Self::seal(&secret, owner, Some(ring))))
    }

    /// The master key it is sealed under; `None` for a plaintext secret.
    pub fn master_key_id(&self) -> Option<&MasterKeyId> {
        match self {
            Self::Plain(_) => None,
            Self::Sealed(sealed) => Some(&sealed.master_key_id),
        }
    }

    /// The stored text: the plaintext form, or `sealed:v1:<master key id>:<base64>`.
    pub fn to_stored(&self) -> String {
        match self {
            Self::Plain(secret) => secret.to_plain(),
            Self::Sealed(sealed) => format!(
                "{SEALED_PREFIX}{}:{}",
                sealed.master_key_id,
                STANDARD.encode(&sealed.ciphertext)
            ),
        }
    }

    /// Reads what [`Self::to_stored`] wrote.
    pub fn from_stored(text: &str) -> Result<Self, StoredSecretError> {
        let Some(rest) = text.strip_prefix(SEALED_PREFIX) else {
            return T::from_plain(text)
                .map(Self::Plain)
                .ok_or(StoredSecretError);
        };
        let (id, ciphertext) = rest.split_once(':').ok_or(StoredSecretError)?;
        let master_key_id = MasterKeyId::parse(id).map_err(|_| StoredSecretError)?;
        let ciphertext = STANDARD.decode(ciphertext).map_err(|_| StoredSecretError)?;
        Ok(Self::Sealed(SealedSecret {
            master_key_id,
            ciphertext,
        }))
    }
}

/// A webhook endpoint's secret as stored, with the row it belongs to; for sealing existing
/// secrets and master-key rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSecret {
    pub workspace_id: WorkspaceId,
    pub endpoint_id: WebhookEndpointId,
    pub secret: SecretAtRest<WebhookSecret>,
}

impl EndpointSecret {
    pub fn owner(&self) -> SecretOwner {
        SecretOwner::WebhookEndpoint {
            workspace: self.workspace_id.clone(),
            endpoint: self.endpoint_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::UnixMillis;
    use crate::vault::MasterKey;

    fn entry(id: &str) -> String {
        MasterKey::generate(MasterKeyId::parse(id).unwrap()).expose_config_entry()
    }

    fn ring(entries: &[&str]) -> MasterKeyring {
        MasterKeyring::parse(&entries.join("\n")).unwrap()
    }

    fn endpoint(workspace: &str, id: &str) -> SecretOwner {
        SecretOwner::WebhookEndpoint {
            workspace: WorkspaceId::parse(workspace).unwrap(),
            endpoint: WebhookEndpointId::parse(id).unwrap(),
        }
    }

    fn signing_key() -> SecretOwner {
        SecretOwner::SigningKey(SigningKeyId::generate(UnixMillis::from_millis(
            1_795_780_800_000,
        )))
    }

    #[test]
    fn a_sealed_secret_round_trips_through_its_stored_form() {
        let keys = ring(&[&entry("mk1")]);
        let owner = endpoint("ws_1", "wh_1");
        let secret = WebhookSecret::generate();
        let sealed = SecretAtRest::seal(&secret, &owner, Some(&keys));
        let stored = sealed.to_stored();
        assert!(stored.starts_with("sealed:v1:mk1:"), "{stored}");
        assert!(!stored.contains(secret.expose().trim_start_matches("whsec_")));
        let read = SecretAtRest::<WebhookSecret>::from_stored(&stored).unwrap();
        assert_eq!(read, sealed);
        assert_eq!(read.open(&owner, Some(&keys)).unwrap(), secret);
    }

    #[test]
    fn without_master_keys_the_plaintext_form_is_stored_as_before() {
        let secret = WebhookSecret::generate();
        let plain = SecretAtRest::seal(&secret, &endpoint("ws_1", "wh_1"), None);
        assert_eq!(plain.to_stored(), secret.expose());
        assert_eq!(
            SecretAtRest::from_stored(&secret.expose()).unwrap(),
            SecretAtRest::Plain(secret.clone())
        );
        assert_eq!(plain.open(&endpoint("ws_1", "wh_1"), None).unwrap(), secret);
        assert_eq!(
            SecretAtRest::<WebhookSecret>::from_stored("sealed:v1:mk1"),
            Err(StoredSecretError)
        );
        assert_eq!(
            SecretAtRest::<WebhookSecret>::from_stored("whsec_!!"),
            Err(StoredSecretError)
        );
    }

    #[test]
    fn a_sealed_secret_moved_to_another_row_does_not_open() {
        let keys = ring(&[&entry("mk1")]);
        let secret = WebhookSecret::generate();
        let sealed = SecretAtRest::seal(&secret, &endpoint("ws_1", "wh_1"), Some(&keys));
        for other in [
            endpoint("ws_1", "wh_2"),
            endpoint("ws_2", "wh_1"),
            signing_key(),
        ] {
            assert!(matches!(
                sealed.open(&other, Some(&keys)),
                Err(SecretSealError::Undecryptable { .. })
            ));
        }
    }

    #[test]
    fn opening_names_the_missing_or_wrong_master_key() {
        let owner = signing_key();
        let sealed = SecretAtRest::seal(
            &WebhookSecret::generate(),
            &owner,
            Some(&ring(&[&entry("mk1")])),
        );
        let no_keys = sealed.open(&owner, None).unwrap_err();
        assert!(matches!(no_keys, SecretSealError::NoMasterKeys { .. }));
        let unknown = sealed
            .open(&owner, Some(&ring(&[&entry("mk2")])))
            .unwrap_err();
        assert!(matches!(unknown, SecretSealError::UnknownMasterKey { .. }));
        let wrong = sealed
            .open(&owner, Some(&ring(&[&entry("mk1")])))
            .unwrap_err();
        assert!(matches!(wrong, SecretSealError::Undecryptable { .. }));
        for e in [no_keys, unknown, wrong] {
            assert!(
                e.to_string().contains("'mk1'") || e.to_string().contains("'mk2'"),
                "{e}"
            );
            assert!(e.to_string().contains("signing key"), "{e}");
        }
    }

    #[test]
    fn reseal_moves_secrets_to_the_current_master_key() {
        let (old, new) = (entry("old"), entry("new"));
        let owner = endpoint("ws_1", "wh_1");
        let secret = WebhookSecret::generate();
        let under_old = SecretAtRest::seal(&secret, &owner, Some(&ring(&[&old])));
        let both = ring(&[&new, &old]);
        let resealed = under_old.reseal(&owner, &both).unwrap().unwrap();
        assert_eq!(resealed.master_key_id().unwrap().as_str(), "new");
        assert!(resealed.reseal(&owner, &both).unwrap().is_none());
        assert_eq!(resealed.open(&owner, Some(&ring(&[&new]))).unwrap(), secret);

        let plain = SecretAtRest::Plain(secret.clone());
        let sealed = plain.reseal(&owner, &both).unwrap().unwrap();
        assert_eq!(sealed.master_key_id().unwrap().as_str(), "new");
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let keys = ring(&[&entry("mk1")]);
        let secret = WebhookSecret::generate();
        let body = secret.expose().trim_start_matches("whsec_").to_owned();
        let sealed = SecretAtRest::seal(&secret, &endpoint("ws_1", "wh_1"), Some(&keys));
        let stored = sealed.to_stored();
        let ciphertext = stored.rsplit_once(':').unwrap().1.to_owned();
        for shown in [
            format!("{sealed:?}"),
            format!("{:?}", SecretAtRest::Plain(secret.clone())),
        ] {
            assert!(!shown.contains(&body), "{shown}");
            assert!(!shown.contains(&ciphertext), "{shown}");
        }
    }
}
