//! Master keys for recoverable keys and server secrets: reading them from the configuration,
//! and `keywarden master-key generate | rotate`.

use anyhow::{Context as _, bail};
use keywarden_core::time::{Clock, SystemClock};
use keywarden_core::vault::{MasterKey, MasterKeyId, MasterKeyring};
use keywarden_server::service::rotate_master_key;

use crate::cli::MasterKeyCommand;
use crate::config::{self, Config, Overrides};
use crate::root_key_command::open_store;

/// The environment variable holding master keys directly (a secret, so not a setting).
const MASTER_KEYS_ENV: &str = "KEYWARDEN_MASTER_KEYS";

/// The configured master keys: from `KEYWARDEN_MASTER_KEYS` or the `master_key_file`
/// setting (not both), `None` when neither is set. Errors never quote key material.
pub fn configured(config: &Config) -> anyhow::Result<Option<MasterKeyring>> {
    let from_env = std::env::var(MASTER_KEYS_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    let text = match (from_env, &config.master_key_file) {
        (Some(_), Some(_)) => bail!(
            "master keys are given both in {MASTER_KEYS_ENV} and in master_key_file; keep one"
        ),
        (Some(keys), None) => keys,
        (None, Some(file)) => {
            warn_if_readable_by_others(file);
            std::fs::read_to_string(file)
                .with_context(|| format!("could not read the master key file {}", file.display()))?
        }
        (None, None) => return Ok(None),
    };
    MasterKeyring::parse(&text)
        .map(Some)
        .context("invalid master key configuration")
}

#[cfg(unix)]
fn warn_if_readable_by_others(file: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(file)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %file.display(),
            "the master key file is readable by other users; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_file: &std::path::Path) {}

pub async fn run(command: MasterKeyCommand) -> anyhow::Result<()> {
    match command {
        MasterKeyCommand::Generate { id } => {
            let id = id.unwrap_or_else(|| format!("mk-{}", SystemClock.now().as_millis() / 1000));
            let id = MasterKeyId::parse(&id).context("invalid --id")?;
            // The one place a master key is shown; stdout only, for redirection to a file.
            println!("{}", MasterKey::generate(id).expose_config_entry());
            Ok(())
        }
        MasterKeyCommand::Rotate { keys, store } => {
            let config = config::load(
                store.config.as_deref(),
                Overrides {
                    database_url: store.database.clone(),
                    master_key_file: keys.master_key_file,
                    ..Overrides::default()
                },
            )?;
            let Some(ring) = configured(&config)? else {
                bail!(
                    "no master keys configured: give --master-key-file or {MASTER_KEYS_ENV}, \
                     the new key first"
                );
            };
            let store = open_store(store).await?;
            let report = rotate_master_key(store.as_ref(), &ring)
                .await
                .context("rotation stopped; running it again continues where it stopped")?;
            println!(
                "{} data key(s) re-wrapped under master key '{}', {} already were",
                report.rewrapped,
                ring.current().id(),
                report.current
            );
            let secrets = report.secrets;
            println!(
                "{} server secret(s) (token signing keys, webhook secrets) sealed under master \
                 key '{}', {} already were; the other master keys can now be removed",
                secrets.sealed + secrets.resealed,
                ring.current().id(),
                secrets.current
            );
            Ok(())
        }
    }
}
