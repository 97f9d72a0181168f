//! `keys.*`: the key lifecycle and verification.

mod access;
mod create;
mod credits;
mod delete;
mod exchange;
mod migrate;
mod read;
mod reroll;
mod update;
mod verify;

use axum::Router;
use axum::routing::post;
use keywarden_core::id::KeyId;
use serde::Deserialize;

use super::fields::Fields;
use super::wire::parse_id;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/keys.createKey", post(create::create_key))
        .route("/v2/keys.verifyKey", post(verify::verify_key))
        .route("/v2/keys.getKey", post(read::get_key))
        .route("/v2/keys.whoami", post(read::whoami))
        .route("/v2/keys.updateKey", post(update::update_key))
        .route("/v2/keys.deleteKey", post(delete::delete_key))
        .route("/v2/keys.rerollKey", post(reroll::reroll_key))
        .route("/v2/keys.updateCredits", post(credits::update_credits))
        .route("/v2/keys.migrateKeys", post(migrate::migrate_keys))
        .route("/v2/keys.addPermissions", post(access::add_permissions))
        .route(
            "/v2/keys.removePermissions",
            post(access::remove_permissions),
        )
        .route("/v2/keys.setPermissions", post(access::set_permissions))
        .route("/v2/keys.addRoles", post(access::add_roles))
        .route("/v2/keys.removeRoles", post(access::remove_roles))
        .route("/v2/keys.setRoles", post(access::set_roles))
        .route("/v2/keys.exchangeToken", post(exchange::exchange_token))
}

/// The `keyId` every single-key endpoint takes: 3..255 characters of `[a-zA-Z0-9_]`.
fn key_id(f: &mut Fields, value: Option<String>) -> Option<KeyId> {
    f.required("body.keyId", value)
        .and_then(|s| parse_id(f, "body.keyId", &s, 3, KeyId::parse))
}

/// A key plaintext as a request carries it (verify, whoami): read like a string, but its
/// `Debug` never shows it, so a body printed for diagnosis cannot leak a key.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct SubmittedKey(String);

impl std::fmt::Debug for SubmittedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubmittedKey(<redacted>)")
    }
}

/// The plaintext `key` of verify and whoami: 1..512 characters.
fn plaintext_key(f: &mut Fields, value: Option<SubmittedKey>) -> Option<String> {
    let key = f.required("body.key", value.map(|k| k.0))?;
    f.length("body.key", &key, 1, 512).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::SubmittedKey;

    #[test]
    fn a_submitted_key_never_shows_in_debug_output() {
        let key: SubmittedKey = serde_json::from_str("\"sk_3ZjXsecretbody\"").unwrap();
        assert!(!format!("{key:?}").contains("secretbody"));
        assert_eq!(key.0, "sk_3ZjXsecretbody");
    }
}
