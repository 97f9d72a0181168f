//! `keywarden workspace create | list`, working on the store directly.

use anyhow::Context as _;
use keywarden_core::id::{RootKeyId, WorkspaceId};
use keywarden_core::root_key::{RootKey, RootPermissions, end_of, generate_root_key};
use keywarden_core::store::Store;
use keywarden_core::text::Label;
use keywarden_core::time::{Clock, SystemClock};
use keywarden_core::workspace::Workspace;

use crate::cli::WorkspaceCommand;
use crate::root_key_command::{format_time, open_store};

pub async fn run(command: WorkspaceCommand) -> anyhow::Result<()> {
    match command {
        WorkspaceCommand::Create { name, store } => {
            create(open_store(store).await?.as_ref(), &name).await
        }
        WorkspaceCommand::List { store } => list(open_store(store).await?.as_ref()).await,
    }
}

async fn create(store: &dyn Store, name: &str) -> anyhow::Result<()> {
    let name = Label::parse(name).context("--name must be 1 to 255 characters")?;
    let now = SystemClock.now();
    let workspace = Workspace {
        id: WorkspaceId::generate(now),
        name,
        created_at: now,
    };
    let issued = generate_root_key();
    let key = RootKey {
        id: RootKeyId::generate(now),
        workspace_id: workspace.id.clone(),
        digest: issued.plaintext.digest(),
        end: end_of(issued.plaintext.expose()),
        start: issued.start,
        name: Label::parse("first root key").ok(),
        permissions: RootPermissions::everything(),
        expires: None,
        enabled: true,
        created_at: now,
        revoked_at: None,
    };
    store.insert_workspace(&workspace).await?;
    store
        .insert_root_key(&key, &crate::root_key_command::root_key_created(&key))
        .await?;
    store.flush().await?;
    eprintln!(
        "Created workspace {} ({}) with root key {}, which holds every permission in it. \
         The root key is printed below once; store it now.",
        workspace.id,
        workspace.name.as_str(),
        key.id
    );
    println!("{}", issued.plaintext.expose());
    Ok(())
}

async fn list(store: &dyn Store) -> anyhow::Result<()> {
    let workspaces = store.workspaces().await?;
    if workspaces.is_empty() {
        eprintln!("no workspaces");
    }
    for workspace in workspaces {
        println!(
            "{}\t{}\tcreated {}",
            workspace.id,
            workspace.name.as_str(),
            format_time(workspace.created_at)
        );
    }
    Ok(())
}
