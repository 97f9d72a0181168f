//! Runs against different backends side by side, and the verdict on the scale-out goals
//! (issue 5). Every ratio is a phase's throughput over the liveness throughput of the same
//! run against the same server, never across runs: absolute rates drift between runs on a
//! shared machine, ratios much less.

use std::fmt::Write as _;

use crate::phase::Phase;
use crate::summary::{PhaseSummary, RunSummary};

/// Cached verification without limits, on every backend.
pub const VERIFY_GOAL: (Phase, f64) = (Phase::VerifyValid, 0.85);
/// Verification with one limit, where the limit is decided in Redis.
pub const SHARED_LIMIT_GOAL: (Phase, f64) = (Phase::VerifyLimited, 0.5);
/// The limiter backend `SHARED_LIMIT_GOAL` is about.
pub const SHARED_LIMITER: &str = "redis";

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn rounds(ratios: &[f64]) -> String {
    let all: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
    all.join(" ")
}

/// The phases of every run, in the order they first appear.
fn phases(runs: &[RunSummary]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for phase in runs.iter().flat_map(|r| &r.phases) {
        if !names.contains(&phase.phase) {
            names.push(phase.phase.clone());
        }
    }
    names
}

/// The ratio of each phase to liveness for each run, one column per run, then the details.
pub fn table(runs: &[RunSummary]) -> String {
    let mut out = String::new();
    let labels: Vec<String> = runs.iter().map(RunSummary::label).collect();
    let width = labels.iter().map(String::len).max().unwrap_or(0).max(24);
    let _ = write!(out, "{:<15}", "vs liveness");
    for label in &labels {
        let _ = write!(out, "  {label:>width$}");
    }
    out.push('\n');
    for name in phases(runs) {
        let _ = write!(out, "{name:<15}");
        for run in runs {
            let cell = run.phases.iter().find(|p| p.phase == name).map_or_else(
                || "-".to_owned(),
                |p| format!("{} ({:.0} req/s)", opt(p.vs_liveness, 3), p.throughput),
            );
            let _ = write!(out, "  {cell:>width$}");
        }
        out.push('\n');
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<16} {:<15} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>5} {:>5} {:>5} {:>7}  per-round vs live",
        "backend",
        "phase",
        "req/s",
        "vs live",
        "p50 ms",
        "p99 ms",
        "srv µs",
        "srv cap",
        "svc µs",
        "srv",
        "svc",
        "other",
        "repeats",
    );
    for (run, label) in runs.iter().zip(&labels) {
        for p in &run.phases {
            let _ = writeln!(
                out,
                "{label:<16} {:<15} {:>8.0} {:>7} {:>7.3} {:>7.3} {:>7} {:>7} {:>7} {:>5} {:>5} {:>5} {:>7}  {}",
                p.phase,
                p.throughput,
                opt(p.vs_liveness, 3),
                p.p50_ms,
                p.p99_ms,
                opt(p.server_us, 2),
                opt(p.server_capacity, 3),
                opt(p.service_us, 2),
                opt(p.server_cores, 2),
                opt(p.service_cores, 2),
                opt(p.other_cores, 2),
                if p.disturbed > 0 {
                    format!("{}+{}!", p.repeats, p.disturbed)
                } else {
                    p.repeats.to_string()
                },
                rounds(&p.rounds_vs_liveness),
            );
        }
    }
    out.push_str(
        "  srv µs / svc µs: CPU time per request of the server / of the backing services \
         (PostgreSQL and Redis processes; - when not measured).\n  \
         srv cap: liveness srv µs / this phase's srv µs. srv, svc, other: cores busy.\n",
    );
    out
}

/// The verdict on issue 5's goals; `None` in the result when one could not be evaluated,
/// `Some(false)` when one was missed or a run is invalid.
pub fn verdict(runs: &[RunSummary]) -> (String, Option<bool>) {
    let mut out = String::new();
    let mut all = Some(true);
    let mut record = |out: &mut String, pass: Option<bool>, text: String| {
        let mark = match pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "n/a ",
        };
        let _ = writeln!(out, "  [{mark}] {text}");
        all = match (all, pass) {
            (Some(a), Some(p)) => Some(a && p),
            _ => None,
        };
    };
    for run in runs {
        let label = run.label();
        if run.errors > 0 {
            record(
                &mut out,
                Some(false),
                format!("{label}: INVALID RUN, {} requests failed", run.errors),
            );
        }
        if let Some(calls) = run.fallback_calls.filter(|&c| c > 0) {
            record(
                &mut out,
                Some(false),
                format!(
                    "{label}: INVALID RUN, {calls} limit calls were decided without the shared \
                     limiter (Redis unreachable or slower than the server's timeout)"
                ),
            );
        }
        let shared = run
            .backends
            .as_ref()
            .is_some_and(|b| b.limiter == SHARED_LIMITER);
        let (phase, min) = VERIFY_GOAL;
        let name = format!("{label}: {phase} >= {min} x liveness");
        goal(&mut out, &mut record, run, phase, min, name);
        let (phase, min) = SHARED_LIMIT_GOAL;
        if shared {
            let name = format!("{label}: {phase} (limit in Redis) >= {min} x liveness");
            goal(&mut out, &mut record, run, phase, min, name);
        } else if let Some(p) = run.phase(phase) {
            let _ = writeln!(
                out,
                "  [info] {label}: {phase} (limit in process) {} (per round {}); the goal of \
                 {min} is for limits in Redis",
                opt(p.vs_liveness, 3),
                rounds(&p.rounds_vs_liveness),
            );
        }
    }
    (out, all)
}

fn measured(phase: Option<&PhaseSummary>) -> Option<&PhaseSummary> {
    phase.filter(|p| p.requests > 0)
}

fn goal(
    out: &mut String,
    record: &mut impl FnMut(&mut String, Option<bool>, String),
    run: &RunSummary,
    phase: Phase,
    min: f64,
    name: String,
) {
    match (
        measured(run.phase(phase)),
        measured(run.phase(Phase::Liveness)),
    ) {
        (Some(p), Some(_)) => {
            let ratio = p.vs_liveness.unwrap_or(0.0);
            let capacity = p
                .server_capacity
                .map_or_else(String::new, |c| format!("; server CPU ratio {c:.3}"));
            record(
                out,
                Some(ratio >= min),
                format!(
                    "{name}: {ratio:.3} (per round {}{capacity})",
                    rounds(&p.rounds_vs_liveness)
                ),
            );
        }
        _ => record(out, None, format!("{name}: not measured")),
    }
}
