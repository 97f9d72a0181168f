//! `keywarden migrate-store --from URL --to URL`: copies a whole installation between stores.

use anyhow::Context as _;
use keywarden_store::StoreLocation;
use keywarden_store::transfer::{copy, open_tables};

use crate::cli::MigrateStoreArgs;

pub async fn run(args: MigrateStoreArgs) -> anyhow::Result<()> {
    let from = StoreLocation::parse(&args.from).context("invalid --from")?;
    let to = StoreLocation::parse(&args.to).context("invalid --to")?;
    if from == to {
        anyhow::bail!("--from and --to name the same store");
    }
    let source = open_tables(&from)
        .await
        .context("could not open the source store")?;
    let target = open_tables(&to)
        .await
        .context("could not open the target store")?;
    let report = copy(source.as_ref(), target.as_ref())
        .await
        .context("the copy failed; the target is unchanged")?;
    for (table, rows) in &report.tables {
        println!("{table:<36} {rows:>10} rows");
    }
    println!("copied and checked: every table has as many rows in the target as in the source");
    Ok(())
}
