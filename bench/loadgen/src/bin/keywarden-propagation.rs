//! `keywarden-propagation`: measures how long a key deleted on node A of a cluster keeps
//! verifying on node B (see `keywarden_loadgen::propagation`). It starts nothing: give it
//! two running nodes that share PostgreSQL. Exits 2 if a request fails or a key never stops
//! verifying; a missed goal does not change the exit status.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use keywarden_loadgen::client::Target;
use keywarden_loadgen::propagation::{self, Settings};

/// Issue 5: a deleted key stops verifying on every node within this, at the 99th percentile.
const P99_GOAL: Duration = Duration::from_millis(100);

#[derive(Debug, Parser)]
#[command(
    name = "keywarden-propagation",
    about = "Revocation propagation: delete keys on node A, poll node B until it answers NOT_FOUND"
)]
struct Args {
    /// Base URL of node A, where keys are created and deleted.
    #[arg(long)]
    node_a: String,
    /// Base URL of node B, where keys are verified.
    #[arg(long)]
    node_b: String,
    /// Root key of the cluster's workspace.
    #[arg(long, env = "KEYWARDEN_ROOT_KEY", hide_env_values = true)]
    root_key: String,
    /// Keys to create, cache on B, and delete one after the other.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    keys: u64,
    /// Milliseconds of idle before each delete.
    #[arg(long, default_value_t = 10)]
    gap_ms: u64,
    /// Seconds to wait for B to see a new key or to stop verifying a deleted one, before
    /// giving up.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
    /// Delete keys permanently rather than softly (the default, as in Unkey).
    #[arg(long)]
    permanent: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // One thread: the probe does one thing at a time, and a second worker would only compete
    // with the nodes for the CPUs.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let a = Target::new(&args.node_a, &args.root_key)?;
    let b = Target::new(&args.node_b, &args.root_key)?;
    propagation::check_cluster(&a, &b).await?;
    let settings = Settings {
        keys: usize::try_from(args.keys)?,
        timeout: Duration::from_secs(args.timeout_secs),
        gap: Duration::from_millis(args.gap_ms),
        permanent: args.permanent,
    };
    println!(
        "creating {} keys on A, verifying each on B until VALID, then deleting each on A ({}) \
         and polling B until NOT_FOUND, {} ms apart",
        settings.keys,
        if settings.permanent {
            "permanently"
        } else {
            "softly"
        },
        args.gap_ms
    );
    let report = propagation::run(&a, &b, &settings).await?;
    println!();
    print!("{}", report.table());
    println!(
        "  The first row (the goal's figure) ends when B's NOT_FOUND answer has been read, so \
         it includes one keys.verifyKey round trip on B; the second ends when that poll was \
         sent, so it excludes it (B still answered VALID to the poll before, if any). The \
         third starts when the delete was sent: A announces the change before it answers."
    );
    let p99 = Duration::from_nanos(report.until_answer.value_at_quantile(0.99));
    println!(
        "Goal: p99 propagation < {} ms: {} (p99 {:.3} ms)",
        P99_GOAL.as_millis(),
        if p99 < P99_GOAL { "PASS" } else { "FAIL" },
        p99.as_secs_f64() * 1e3
    );
    Ok(ExitCode::SUCCESS)
}
