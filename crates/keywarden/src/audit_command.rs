//! `keywarden audit`: reads a workspace's audit log from the store directly, newest first,
//! one line (or one JSON object) per entry.

use anyhow::{Context as _, bail};
use keywarden_core::audit::{AuditAction, AuditEntry, AuditFilter};
use keywarden_core::id::WorkspaceId;
use keywarden_core::store::{PageRequest, Store};
use keywarden_core::time::UnixMillis;

use crate::cli::AuditArgs;
use crate::root_key_command::{choose_workspace, format_time, open_store};

/// Entries read from the store per page.
const PAGE: usize = 100;

pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let store = open_store(args.store).await?;
    let workspace = choose_workspace(store.as_ref(), args.workspace).await?;
    let filter = AuditFilter {
        actor: args.actor,
        action: args
            .action
            .map(|a| AuditAction::parse(&a).with_context(|| format!("unknown action {a}")))
            .transpose()?,
        target_id: args.target,
        since: args.since.as_deref().map(parse_time).transpose()?,
        until: args.until.as_deref().map(parse_time).transpose()?,
    };
    let entries = read(store.as_ref(), &workspace, &filter, args.limit).await?;
    if entries.is_empty() && !args.json {
        eprintln!("no audit entries");
    }
    for entry in entries {
        if args.json {
            println!("{}", serde_json::to_string(&entry)?);
        } else {
            println!("{}", line(&entry));
        }
    }
    Ok(())
}

/// Up to `limit` entries, newest first, over as many pages as that takes.
async fn read(
    store: &dyn Store,
    workspace: &WorkspaceId,
    filter: &AuditFilter,
    limit: usize,
) -> anyhow::Result<Vec<AuditEntry>> {
    let mut entries = Vec::new();
    let mut from = None;
    while entries.len() < limit {
        let page = store
            .audit_entries(
                workspace,
                filter,
                PageRequest {
                    from,
                    limit: PAGE.min(limit - entries.len()),
                },
            )
            .await?;
        entries.extend(page.items);
        match page.next {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    Ok(entries)
}

/// `time  actor  action  targets`, tab-separated.
fn line(entry: &AuditEntry) -> String {
    let targets = entry
        .targets
        .iter()
        .map(|t| match &t.name {
            Some(name) => format!("{}:{} ({name})", t.kind, t.id),
            None => format!("{}:{}", t.kind, t.id),
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{}\t{}\t{}\t{}",
        format_time(entry.time),
        entry.actor,
        entry.action,
        targets
    )
}

/// Unix milliseconds, as `audit.listLogs` takes them.
fn parse_time(s: &str) -> anyhow::Result<UnixMillis> {
    match s.parse::<i64>() {
        Ok(ms) if ms >= 0 => Ok(UnixMillis::from_millis(ms)),
        _ => bail!("--since and --until take Unix milliseconds, not {s:?}"),
    }
}
