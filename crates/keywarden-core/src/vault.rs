//! Recoverable keys: key plaintexts kept encrypted, so that a root key holding `decrypt_key`
//! can read them back.
//!
//! Two layers (envelope encryption), both AES-256-GCM with a fresh random 96-bit nonce:
//!
//! - each workspace has one **data key**, which encrypts (seals) its recoverable keys;
//! - data keys are stored only wrapped (encrypted) under a **master key** from the server's
//!   configuration, never in the store.
//!
//! A copy of the database alone therefore reveals no plaintext. Rotating the master key means
//! re-wrapping the data keys (a few rows), not re-encrypting every key.
//!
//! The associated data of every ciphertext names what it belongs to (workspace and data key
//! id for a data key; workspace, key id and data key id for a key), so a ciphertext copied to
//! another row or workspace fails to decrypt instead of revealing a different key.
//!
//! Pure functions: the caller stores what they return.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::id::{DataKeyId, KeyId, WorkspaceId};
use crate::random;
use crate::secret::PlaintextKey;
use crate::time::UnixMillis;

/// Bytes of an AES-256 key.
pub const KEY_LEN: usize = 32;
/// Bytes of an AES-GCM nonce.
const NONCE_LEN: usize = 12;
/// Bytes of an AES-GCM authentication tag.
const TAG_LEN: usize = 16;

/// 32 secret bytes. Never printed.
#[derive(Clone)]
pub(crate) struct SecretBytes([u8; KEY_LEN]);

impl SecretBytes {
    fn random() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        random::fill(&mut bytes);
        Self(bytes)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The name of a master key in the configuration: 1..64 of `[A-Za-z0-9_.-]`. Stored next to
/// every data key it wraps, so the right key is used to unwrap it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MasterKeyId(String);

impl MasterKeyId {
    pub fn parse(s: &str) -> Result<Self, MasterKeyError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(MasterKeyError::Id(s.chars().take(64).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MasterKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A master key: its id and 32 secret bytes. `Debug` shows the id only.
#[derive(Debug, Clone)]
pub struct MasterKey {
    id: MasterKeyId,
    pub(crate) secret: SecretBytes,
}

impl MasterKey {
    /// A new random master key, for `keywarden master-key generate`.
    pub fn generate(id: MasterKeyId) -> Self {
        Self {
            id,
            secret: SecretBytes::random(),
        }
    }

    pub fn id(&self) -> &MasterKeyId {
        &self.id
    }

    /// The configuration form, `<id>:<base64 of 32 bytes>`. This exposes the secret: only for
    /// printing a newly generated key to the operator.
    pub fn expose_config_entry(&self) -> String {
        format!("{}:{}", self.id, STANDARD.encode(self.secret.0))
    }
}

/// Why master-key configuration is unusable. Never quotes key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterKeyError {
    #[error("no master key is listed")]
    Empty,
    #[error(
        "master key entry {0} is not of the form <id>:<base64 of 32 bytes> (entries are \
         separated by commas or new lines)"
    )]
    Shape(usize),
    #[error("master key id '{0}' must be 1 to 64 letters, digits, '_', '.' or '-'")]
    Id(String),
    #[error("master key '{0}' is not standard base64 of exactly 32 bytes")]
    Material(String),
    #[error("master key id '{0}' is listed twice")]
    Duplicate(String),
}

/// The configured master keys. The first one is current: it wraps new data keys and is the
/// target of rotation; the others only unwrap data keys not yet rotated.
#[derive(Debug, Clone)]
pub struct MasterKeyring {
    keys: Vec<MasterKey>,
}

impl MasterKeyring {
    /// Parses `<id>:<base64>` entries separated by commas or new lines; blank lines and lines
    /// starting with `#` are skipped, so a key file can carry comments.
    pub fn parse(text: &str) -> Result<Self, MasterKeyError> {
        let mut keys: Vec<MasterKey> = Vec::new();
        let entries = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with('#'))
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty());
        for (n, entry) in entries.enumerate() {
            let (id, material) = entry.split_once(':').ok_or(MasterKeyError::Shape(n + 1))?;
            let id = MasterKeyId::parse(id.trim())?;
            let bytes: [u8; KEY_LEN] = STANDARD
                .decode(material.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| MasterKeyError::Material(id.0.clone()))?;
            if keys.iter().any(|k| k.id == id) {
                return Err(MasterKeyError::Duplicate(id.0));
            }
            keys.push(MasterKey {
                id,
                secret: SecretBytes(bytes),
            });
        }
        if keys.is_empty() {
            return Err(MasterKeyError::Empty);
        }
        Ok(Self { keys })
    }

    /// The key that wraps new data keys.
    pub fn current(&self) -> &MasterKey {
        &self.keys[0]
    }

    pub fn ids(&self) -> impl Iterator<Item = &MasterKeyId> {
        self.keys.iter().map(|k| &k.id)
    }

    pub(crate) fn key(&self, id: &MasterKeyId) -> Option<&MasterKey> {
        self.keys.iter().find(|k| &k.id == id)
    }

    /// Wraps `data_key` for storage under the current master key.
    pub fn wrap(
        &self,
        workspace: &WorkspaceId,
        data_key: &DataKey,
        now: UnixMillis,
    ) -> WrappedDataKey {
        let master = self.current();
        let aad = data_key_aad(workspace, &data_key.id);
        WrappedDataKey {
            id: data_key.id.clone(),
            workspace_id: workspace.clone(),
            master_key_id: master.id.clone(),
            wrapped: seal_bytes(&master.secret, &aad, &data_key.secret.0),
            created_at: now,
        }
    }

    /// The data key inside `wrapped`, if a configured master key opens it.
    pub fn unwrap(&self, wrapped: &WrappedDataKey) -> Result<DataKey, VaultError> {
        let master = self
            .key(&wrapped.master_key_id)
            .ok_or_else(|| VaultError::UnknownMasterKey(wrapped.master_key_id.clone()))?;
        let aad = data_key_aad(&wrapped.workspace_id, &wrapped.id);
        let bytes = open_bytes(&master.secret, &aad, &wrapped.wrapped).map_err(|_| {
            VaultError::DataKeyUndecryptable {
                data_key: wrapped.id.clone(),
                master_key: wrapped.master_key_id.clone(),
            }
        })?;
        let secret: [u8; KEY_LEN] =
            bytes
                .try_into()
                .map_err(|_| VaultError::DataKeyUndecryptable {
                    data_key: wrapped.id.clone(),
                    master_key: wrapped.master_key_id.clone(),
                })?;
        Ok(DataKey {
            id: wrapped.id.clone(),
            secret: SecretBytes(secret),
        })
    }

    /// `wrapped` re-wrapped under the current master key, or `None` when it already is.
    pub fn rewrap(&self, wrapped: &WrappedDataKey) -> Result<Option<WrappedDataKey>, VaultError> {
        if wrapped.master_key_id == self.current().id {
            return Ok(None);
        }
        let data_key = self.unwrap(wrapped)?;
        Ok(Some(self.wrap(
            &wrapped.workspace_id,
            &data_key,
            wrapped.created_at,
        )))
    }
}

/// A workspace's data key in the clear, only ever in memory. `Debug` shows the id only.
#[derive(Debug, Clone)]
pub struct DataKey {
    id: DataKeyId,
    secret: SecretBytes,
}

impl DataKey {
    pub fn generate(now: UnixMillis) -> Self {
        Self {
            id: DataKeyId::generate(now),
            secret: SecretBytes::random(),
        }
    }

    pub fn id(&self) -> &DataKeyId {
        &self.id
    }

    /// Encrypts the plaintext of key `key_id` of `workspace`.
    pub fn seal(&self, workspace: &WorkspaceId, key_id: &KeyId, key: &PlaintextKey) -> SealedKey {
        let aad = key_aad(workspace, key_id, &self.id);
        SealedKey {
            data_key_id: self.id.clone(),
            ciphertext: seal_bytes(&self.secret, &aad, key.expose().as_bytes()),
        }
    }

    /// The plaintext of key `key_id` of `workspace` from its sealed form.
    pub fn open(
        &self,
        workspace: &WorkspaceId,
        key_id: &KeyId,
        sealed: &SealedKey,
    ) -> Result<PlaintextKey, VaultError> {
        if sealed.data_key_id != self.id {
            return Err(VaultError::OtherDataKey(sealed.data_key_id.clone()));
        }
        let aad = key_aad(workspace, key_id, &self.id);
        let bytes = open_bytes(&self.secret, &aad, &sealed.ciphertext)
            .map_err(|_| VaultError::KeyUndecryptable(key_id.clone()))?;
        String::from_utf8(bytes)
            .map(PlaintextKey::new)
            .map_err(|_| VaultError::KeyUndecryptable(key_id.clone()))
    }
}

/// A data key as stored: encrypted under the master key `master_key_id`.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedDataKey {
    pub id: DataKeyId,
    pub workspace_id: WorkspaceId,
    pub master_key_id: MasterKeyId,
    /// Nonce followed by ciphertext and tag.
    pub wrapped: Vec<u8>,
    pub created_at: UnixMillis,
}

impl fmt::Debug for WrappedDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedDataKey")
            .field("id", &self.id)
            .field("workspace_id", &self.workspace_id)
            .field("master_key_id", &self.master_key_id)
            .finish_non_exhaustive()
    }
}

/// A recoverable key's plaintext, encrypted under its workspace's data key `data_key_id`.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKey {
    pub data_key_id: DataKeyId,
    /// Nonce followed by ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

impl SealedKey {
    /// The stored form of the ciphertext: standard base64.
    pub fn ciphertext_base64(&self) -> String {
        STANDARD.encode(&self.ciphertext)
    }

    /// Reads the stored form; `None` when the ciphertext is not base64 or too short to hold a
    /// nonce and a tag.
    pub fn from_stored(data_key_id: DataKeyId, ciphertext_base64: &str) -> Option<Self> {
        let ciphertext = STANDARD.decode(ciphertext_base64).ok()?;
        (ciphertext.len() >= NONCE_LEN + TAG_LEN).then_some(Self {
            data_key_id,
            ciphertext,
        })
    }
}

impl fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedKey")
            .field("data_key_id", &self.data_key_id)
            .finish_non_exhaustive()
    }
}

/// Why a data key or a key could not be decrypted. Names ids, never material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("a data key is wrapped under master key '{0}', which is not configured")]
    UnknownMasterKey(MasterKeyId),
    #[error(
        "data key {data_key} does not decrypt under master key '{master_key}': the configured \
         key with that id is not the one that wrapped it, or the stored row was altered"
    )]
    DataKeyUndecryptable {
        data_key: DataKeyId,
        master_key: MasterKeyId,
    },
    #[error("the key was sealed under data key {0}, not this workspace's data key")]
    OtherDataKey(DataKeyId),
    #[error("key {0} does not decrypt: its stored ciphertext was altered or moved")]
    KeyUndecryptable(KeyId),
}

fn data_key_aad(workspace: &WorkspaceId, id: &DataKeyId) -> Vec<u8> {
    format!("keywarden/data-key/v1\0{workspace}\0{id}").into_bytes()
}

fn key_aad(workspace: &WorkspaceId, key_id: &KeyId, data_key: &DataKeyId) -> Vec<u8> {
    format!("keywarden/key/v1\0{workspace}\0{key_id}\0{data_key}").into_bytes()
}

/// AES-256-GCM under `key` with a fresh random nonce; returns nonce ‖ ciphertext ‖ tag.
pub(crate) fn seal_bytes(key: &SecretBytes, aad: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    random::fill(&mut nonce);
    let ciphertext = key
        .cipher()
        .encrypt(&Nonce::from(nonce), Payload { msg, aad })
        .expect("AES-GCM encrypts any message shorter than 64 GiB");
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

/// Opens what [`seal_bytes`] produced; fails on a wrong key, wrong associated data or any
/// altered byte.
pub(crate) fn open_bytes(key: &SecretBytes, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, ()> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(());
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| ())?;
    key.cipher()
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(text: &str) -> MasterKeyring {
        MasterKeyring::parse(text).unwrap()
    }

    fn entry(id: &str) -> String {
        MasterKey::generate(MasterKeyId::parse(id).unwrap()).expose_config_entry()
    }

    fn now() -> UnixMillis {
        UnixMillis::from_millis(1_795_816_081_000)
    }

    fn ws(s: &str) -> WorkspaceId {
        WorkspaceId::parse(s).unwrap()
    }

    #[test]
    fn a_key_round_trips_through_both_layers() {
        let ring = ring(&entry("mk1"));
        let workspace = ws("ws_1");
        let data_key = DataKey::generate(now());
        let stored = ring.wrap(&workspace, &data_key, now());
        assert_eq!(stored.master_key_id.as_str(), "mk1");
        let key_id = KeyId::parse("key_1").unwrap();
        let plaintext = PlaintextKey::new("sk_3ZjXabcdefghijkmnop".to_owned());
        let sealed = data_key.seal(&workspace, &key_id, &plaintext);
        let opened = ring.unwrap(&stored).unwrap();
        assert_eq!(
            opened.open(&workspace, &key_id, &sealed).unwrap(),
            plaintext
        );
    }

    #[test]
    fn a_ciphertext_moved_to_another_key_or_workspace_does_not_open() {
        let workspace = ws("ws_1");
        let data_key = DataKey::generate(now());
        let key_id = KeyId::parse("key_1").unwrap();
        let sealed = data_key.seal(
            &workspace,
            &key_id,
            &PlaintextKey::new("sk_secret".to_owned()),
        );
        let other_key = KeyId::parse("key_2").unwrap();
        assert_eq!(
            data_key.open(&workspace, &other_key, &sealed),
            Err(VaultError::KeyUndecryptable(other_key))
        );
        assert!(data_key.open(&ws("ws_2"), &key_id, &sealed).is_err());
        let mut altered = sealed.clone();
        let last = altered.ciphertext.len() - 1;
        altered.ciphertext[last] ^= 1;
        assert!(data_key.open(&workspace, &key_id, &altered).is_err());
    }

    #[test]
    fn a_data_key_wrapped_for_one_workspace_does_not_open_for_another() {
        let ring = ring(&entry("mk1"));
        let mut stored = ring.wrap(&ws("ws_1"), &DataKey::generate(now()), now());
        stored.workspace_id = ws("ws_2");
        assert!(matches!(
            ring.unwrap(&stored),
            Err(VaultError::DataKeyUndecryptable { .. })
        ));
    }

    #[test]
    fn rotation_rewraps_under_the_current_key_and_then_needs_only_it() {
        let old = entry("old");
        let new = entry("new");
        let workspace = ws("ws_1");
        let data_key = DataKey::generate(now());
        let key_id = KeyId::parse("key_1").unwrap();
        let plaintext = PlaintextKey::new("sk_rotate_me".to_owned());
        let sealed = data_key.seal(&workspace, &key_id, &plaintext);
        let stored = ring(&old).wrap(&workspace, &data_key, now());

        let both = ring(&format!("{new}\n{old}"));
        let rewrapped = both.rewrap(&stored).unwrap().unwrap();
        assert_eq!(rewrapped.master_key_id.as_str(), "new");
        assert_eq!(rewrapped.id, stored.id);
        assert!(both.rewrap(&rewrapped).unwrap().is_none());

        let only_new = ring(&new);
        let opened = only_new.unwrap(&rewrapped).unwrap();
        assert_eq!(
            opened.open(&workspace, &key_id, &sealed).unwrap(),
            plaintext
        );
        assert_eq!(
            only_new.unwrap(&stored).unwrap_err(),
            VaultError::UnknownMasterKey(MasterKeyId::parse("old").unwrap())
        );
    }

    #[test]
    fn a_wrong_master_key_under_the_right_id_fails_clearly() {
        let stored = ring(&entry("mk1")).wrap(&ws("ws_1"), &DataKey::generate(now()), now());
        let err = ring(&entry("mk1")).unwrap(&stored).unwrap_err();
        assert!(matches!(err, VaultError::DataKeyUndecryptable { .. }));
        assert!(err.to_string().contains("mk1"));
    }

    #[test]
    fn keyrings_parse_lists_and_files_and_reject_bad_entries_without_quoting_them() {
        let (a, b) = (entry("a"), entry("b"));
        let parsed = ring(&format!("# current first\n{a}\n\n{b}\n"));
        assert_eq!(
            parsed.ids().map(MasterKeyId::as_str).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(ring(&format!("{b}, {a}")).current().id().as_str(), "b");

        assert_eq!(
            MasterKeyring::parse(" \n# none\n").unwrap_err(),
            MasterKeyError::Empty
        );
        assert_eq!(
            MasterKeyring::parse("justbase64").unwrap_err(),
            MasterKeyError::Shape(1)
        );
        let short = "k:c2hvcnQtc2VjcmV0";
        let err = MasterKeyring::parse(short).unwrap_err();
        assert_eq!(err, MasterKeyError::Material("k".into()));
        assert!(!err.to_string().contains("c2hvcnQtc2VjcmV0"));
        assert_eq!(
            MasterKeyring::parse(&format!("{a},{a}")).unwrap_err(),
            MasterKeyError::Duplicate("a".into())
        );
        assert!(matches!(
            MasterKeyring::parse("bad id:AAAA").unwrap_err(),
            MasterKeyError::Id(_)
        ));
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let master = MasterKey::generate(MasterKeyId::parse("mk1").unwrap());
        let config = master.expose_config_entry();
        let material = config.split_once(':').unwrap().1.to_owned();
        let ring = ring(&config);
        let data_key = DataKey::generate(now());
        let wrapped = ring.wrap(&ws("ws_1"), &data_key, now());
        let sealed = data_key.seal(
            &ws("ws_1"),
            &KeyId::parse("key_1").unwrap(),
            &PlaintextKey::new("sk_visible_nowhere".to_owned()),
        );
        for shown in [
            format!("{master:?}"),
            format!("{ring:?}"),
            format!("{data_key:?}"),
            format!("{wrapped:?}"),
            format!("{sealed:?}"),
        ] {
            assert!(!shown.contains(&material), "{shown}");
            assert!(!shown.contains("visible_nowhere"), "{shown}");
            assert!(
                !shown.contains(&format!("{:?}", data_key.secret.0)),
                "{shown}"
            );
            assert!(
                !shown.contains(&format!("{:?}", wrapped.wrapped)),
                "{shown}"
            );
        }
    }
}
