//! The `keywarden` binary: parses the command line and hands over to the library crates.

mod audit_command;
mod backends;
mod cli;
mod config;
mod logging;
mod master_key_command;
mod migrate_store_command;
mod root_key_command;
mod scan_command;
mod scan_sources;
mod serve;
mod workspace_command;

use std::process::ExitCode;

use clap::Parser as _;

use cli::{Cli, Command};

/// mimalloc rather than the system allocator: a request allocates and frees a few dozen small
/// blocks (header maps, bodies, futures), often on different worker threads, where glibc's
/// malloc spends several times the instructions (measured in bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // One rustls provider for every HTTPS client of the process: the server's webhook worker
    // and `scan --check` against an https:// server alike.
    keywarden_server::tls::install_crypto_provider();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::RootKey(args) => root_key_command::run(args).await,
        Command::Workspace(args) => workspace_command::run(args).await,
        Command::MigrateStore(args) => migrate_store_command::run(args).await,
        Command::Audit(args) => audit_command::run(args).await,
        // Scanning has exit codes of its own: 1 means keys were found, 2 an error.
        Command::Scan(args) => return scan_command::run(args).await,
        Command::MasterKey(args) => master_key_command::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
