//! `keywarden-bench-compare`: puts the summaries of several `keywarden-loadgen` runs (written
//! with `--summary-json`, typically one per backend) side by side and gives the verdict on
//! the scale-out goals. Exits 2 if a run is invalid (failed requests, limit calls decided
//! without Redis), like the load generator; a missed goal does not change the exit status.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use keywarden_loadgen::compare;
use keywarden_loadgen::summary::RunSummary;

#[derive(Debug, Parser)]
#[command(
    name = "keywarden-bench-compare",
    about = "Side-by-side table of keywarden-loadgen summaries, and the scale-out goals"
)]
struct Args {
    /// Summaries written by `keywarden-loadgen --summary-json`.
    #[arg(required = true)]
    summaries: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut runs = Vec::with_capacity(args.summaries.len());
    for path in &args.summaries {
        match RunSummary::read(path) {
            Ok(run) => runs.push(run),
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    print!("{}", compare::table(&runs));
    println!();
    let (verdict, met) = compare::verdict(&runs);
    println!("Goals (issue 5, each ratio against the liveness of the same run):");
    print!("{verdict}");
    let invalid = runs
        .iter()
        .any(|r| r.errors > 0 || r.fallback_calls.is_some_and(|c| c > 0));
    println!(
        "Verdict: {}",
        match (invalid, met) {
            (true, _) => "INVALID RUN",
            (false, Some(true)) => "all goals met",
            (false, Some(false)) => "goals NOT met",
            (false, None) => "not every goal could be evaluated",
        }
    );
    if invalid {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
