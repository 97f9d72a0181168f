//! `keywarden-loadgen`: measures how fast a Keywarden server verifies keys and decides rate
//! limits, next to how fast it answers liveness probes (the cost of the HTTP stack alone).
//!
//! It creates an API, N keys without anything, N keys with a rate limit and N keys with three
//! permissions, and M rate-limit identifiers, then runs the phases (liveness, verify-valid,
//! verify-perms, verify-query, verify-limited, verify-unknown, ratelimit-limit, create-key)
//! with C keep-alive connections for a fixed time each, alternating them for several rounds
//! so that drift affects every phase alike, and sums each phase over its rounds. Every
//! response is checked; any error makes the run invalid (exit status 2).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;

use keywarden_loadgen::client::Target;
use keywarden_loadgen::cpu::MachineCpu;
use keywarden_loadgen::phase::{self, Phase, Workload};
use keywarden_loadgen::report::{self, PhaseTotal};
use keywarden_loadgen::runner::{self, RunSettings};
use keywarden_loadgen::summary::RunSummary;
use keywarden_loadgen::{health, setup};

#[derive(Debug, Parser)]
#[command(
    name = "keywarden-loadgen",
    about = "Load generator for Keywarden: verify throughput and latency against liveness"
)]
struct Args {
    /// Base URL of the server.
    #[arg(long, env = "KEYWARDEN_URL", default_value = "http://127.0.0.1:7070")]
    url: String,
    /// Root key to create the API and keys and to verify with.
    #[arg(long, env = "KEYWARDEN_ROOT_KEY", hide_env_values = true)]
    root_key: String,
    /// Keys to create for verify-valid, and as many with a rate limit for verify-limited and
    /// with permissions for verify-perms and verify-query.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..))]
    keys: u64,
    /// Distinct identifiers ratelimit-limit draws from.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    identifiers: u64,
    /// Concurrent keep-alive connections, each with one request in flight.
    #[arg(short, long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    connections: u64,
    /// Seconds each phase runs per round.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds each phase runs untimed before the first round (0: no warm-up).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds of idle between phases, so one phase's leftovers (such as store writes of
    /// create-key) do not run into the next.
    #[arg(long, default_value_t = 0.5)]
    pause: f64,
    /// Rounds; each runs every phase once, starting one phase later than the previous round.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    rounds: u64,
    /// Phases to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Phase::ALL)]
    phases: Vec<Phase>,
    /// Tokio worker threads of the load generator [default: the CPUs this process may use].
    #[arg(long)]
    threads: Option<usize>,
    /// The server's process id, to report the CPU time it spends per request.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Other load tolerated, in cores of CPU time used by processes other than the server and
    /// this load generator: before each run, wait (up to --quiet-wait) until other processes
    /// use at most this much; after it, repeat a run (up to --retries times) during which
    /// they used more. Negative: neither wait nor repeat. Needs --server-pid.
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    max_other_cores: f64,
    /// Longest wait for a quiet machine before each run, in seconds.
    #[arg(long, default_value_t = 120.0)]
    quiet_wait: f64,
    /// How many times a disturbed run is repeated before it is kept anyway (and flagged).
    #[arg(long, default_value_t = 10)]
    retries: u32,
    /// Main processes of the server's backing services, such as the PostgreSQL postmaster
    /// and redis-server (comma-separated): their CPU time and their descendants' is reported
    /// per request (`svc µs`) and, during a run, not counted as other load. Between runs it
    /// still is, so a busy shared database delays the next run.
    #[arg(long, value_delimiter = ',')]
    service_pid: Vec<u32>,
    /// Also write the results as JSON to this file (for `keywarden-bench-compare`).
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
}

fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| anyhow::anyhow!("invalid --{name} {value}"))
}

/// How to keep other load on the machine out of the measurements.
struct Quiet {
    pause: Duration,
    /// This process and the server: their CPU use is not "other load".
    measured: Vec<u32>,
    /// The server's backing services; while idle they count as other load.
    services: Vec<u32>,
    max_other_cores: Option<f64>,
    max_wait: Duration,
    retries: u32,
}

impl Quiet {
    /// Idles for at least `pause` (so one phase's leftovers do not run into the next), and on
    /// until the machine is quiet or `max_wait` has passed.
    async fn wait(&self) {
        let started = std::time::Instant::now();
        let mut said = false;
        loop {
            let before = MachineCpu::read(&self.measured, &self.services);
            tokio::time::sleep(self.pause).await;
            let Some(max) = self.max_other_cores else {
                return;
            };
            let busy = MachineCpu::read(&self.measured, &self.services)
                .zip(before)
                .map(|(after, before)| {
                    let idle = after.since(before);
                    (idle.others + idle.services).as_secs_f64()
                });
            let cores = busy.map(|b| b / self.pause.as_secs_f64());
            if cores.is_none_or(|c| c <= max) {
                return;
            }
            if started.elapsed() >= self.max_wait {
                println!(
                    "  still busy after {:.0} s (other processes use {:.2} cores); going on",
                    self.max_wait.as_secs_f64(),
                    cores.unwrap_or(0.0)
                );
                return;
            }
            if !said {
                println!(
                    "  waiting for other load to end (other processes use {:.2} cores)",
                    cores.unwrap_or(0.0)
                );
                said = true;
            }
        }
    }
}

/// Cores used by other processes during a run (known only when the server's pid is).
fn other_cores(run: &runner::PhaseRun) -> Option<f64> {
    run.server_cpu?;
    let others = run.machine_cpu?.others;
    let elapsed = run.elapsed.as_secs_f64();
    (elapsed > 0.0).then(|| others.as_secs_f64() / elapsed)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, threads)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, threads: usize) -> anyhow::Result<ExitCode> {
    let duration = seconds("duration", args.duration)?;
    let warmup = seconds("warmup", args.warmup)?;
    let pause = seconds("pause", args.pause)?;
    let connections = usize::try_from(args.connections)?;
    let key_count = usize::try_from(args.keys)?;
    let identifiers = usize::try_from(args.identifiers)?;
    let mut phases: Vec<Phase> = Vec::new();
    for &phase in &args.phases {
        if !phases.contains(&phase) {
            phases.push(phase);
        }
    }
    let target = Target::new(&args.url, &args.root_key)?;

    println!(
        "keywarden-loadgen: {} | {connections} connections | {} rounds x {} phases x {:.1} s \
         (warm-up {:.1} s per phase) | {key_count} keys | {identifiers} identifiers | {threads} \
         loadgen threads",
        target.authority(),
        args.rounds,
        phases.len(),
        duration.as_secs_f64(),
        warmup.as_secs_f64(),
    );

    // What the server runs on, as it says itself; older builds have no health endpoint.
    let health_at_start = match health::fetch(&target).await {
        Ok(health) => {
            println!(
                "server backends: store {}, limiter {}, change feed {} (status {})",
                health.backends.store,
                health.backends.limiter,
                health.backends.change_feed,
                health.status
            );
            Some(health)
        }
        Err(e) => {
            println!("server backends: unknown ({e:#})");
            None
        }
    };

    let started = std::time::Instant::now();
    // What only an unselected phase would use is not created.
    let plan = setup::Plan {
        keys: key_count,
        limited_keys: if phases.contains(&Phase::VerifyLimited) {
            key_count
        } else {
            0
        },
        permitted_keys: if phases.contains(&Phase::VerifyPerms)
            || phases.contains(&Phase::VerifyQuery)
        {
            key_count
        } else {
            0
        },
        identifiers: if phases.contains(&Phase::RatelimitLimit) {
            identifiers
        } else {
            0
        },
        connections,
    };
    let setup = setup::run(&target, &plan).await?;
    println!(
        "setup: API {} with {} keys, {} rate-limited keys and {} keys with permissions created \
         and verified once, namespace {} with {} identifiers limited once, in {:.1} s",
        setup.api_id,
        setup.keys.len(),
        setup.limited_keys.len(),
        setup.permitted_keys.len(),
        setup.namespace,
        plan.identifiers,
        started.elapsed().as_secs_f64()
    );
    let unknown_body_len = setup
        .keys
        .first()
        .and_then(|k| k.rsplit_once('_'))
        .map_or(28, |(_, body)| body.len());
    let workload = Arc::new(Workload {
        valid_bodies: setup.keys.iter().map(|k| phase::verify_body(k)).collect(),
        limited_bodies: setup
            .limited_keys
            .iter()
            .map(|k| phase::verify_body(k))
            .collect(),
        permitted_bodies: setup
            .permitted_keys
            .iter()
            .map(|k| phase::verify_body(k))
            .collect(),
        query_bodies: setup
            .permitted_keys
            .iter()
            .map(|k| phase::verify_query_body(k))
            .collect(),
        limit_bodies: (0..plan.identifiers)
            .map(|i| phase::limit_body(&setup.namespace, i))
            .collect(),
        create_key_body: phase::create_key_body(&setup.api_id),
        unknown_body_len,
        target,
    });
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x5EED, |d| u64::try_from(d.as_nanos()).unwrap_or(0x5EED));
    let mut settings = RunSettings {
        connections,
        duration: warmup,
        server_pid: args.server_pid,
        services: args.service_pid.clone(),
        seed,
    };

    let quiet = Quiet {
        pause,
        measured: [Some(std::process::id()), args.server_pid]
            .into_iter()
            .flatten()
            .collect(),
        services: args.service_pid.clone(),
        max_other_cores: (args.max_other_cores >= 0.0).then_some(args.max_other_cores),
        max_wait: seconds("quiet-wait", args.quiet_wait)?,
        retries: args.retries,
    };
    let mut totals: Vec<PhaseTotal> = phases.iter().map(|&p| PhaseTotal::new(p)).collect();
    if !warmup.is_zero() {
        for &phase in &phases {
            quiet.wait().await;
            let run = runner::run_phase(&workload, phase, &settings).await;
            // Warm-up errors are errors all the same.
            if let Some(total) = totals.iter_mut().find(|t| t.phase == phase) {
                total.errors.merge(&run.errors);
            }
            println!(
                "warm-up {phase:<15} {:>9.0} req/s",
                report::per_second(run.ok, run.elapsed)
            );
        }
    }

    settings.duration = duration;
    let rounds = usize::try_from(args.rounds)?;
    for round in 0..rounds {
        for step in 0..phases.len() {
            let phase = phases[(round + step) % phases.len()];
            let Some(total) = totals.iter_mut().find(|t| t.phase == phase) else {
                continue;
            };
            let mut attempt = 0;
            let run = loop {
                quiet.wait().await;
                settings.seed = settings.seed.wrapping_add(0x1_0000);
                let run = runner::run_phase(&workload, phase, &settings).await;
                let other = other_cores(&run);
                let disturbed = quiet
                    .max_other_cores
                    .zip(other)
                    .is_some_and(|(max, other)| other > max);
                let line = format!(
                    "round {}/{rounds} {phase:<15} {:>9.0} req/s  p99 {:.3} ms  other load {} cores",
                    round + 1,
                    report::per_second(run.ok, run.elapsed),
                    Duration::from_nanos(run.latency.value_at_quantile(0.99)).as_secs_f64() * 1e3,
                    other.map_or_else(|| "?".to_owned(), |o| format!("{o:.2}")),
                );
                let line = if run.errors.count > 0 {
                    format!("{line}  ({} ERRORS)", run.errors.count)
                } else {
                    line
                };
                if disturbed && attempt < quiet.retries {
                    attempt += 1;
                    total.discarded += 1;
                    // A repeated run's errors still count.
                    total.errors.merge(&run.errors);
                    println!("{line}  -> disturbed by other load, discarded and repeated");
                    continue;
                }
                if disturbed {
                    total.disturbed += 1;
                    println!("{line}  -> DISTURBED by other load, kept after {attempt} repeats");
                } else {
                    println!("{line}");
                }
                break run;
            };
            total.add(&run);
        }
    }

    println!();
    println!(
        "Results: each phase summed over {rounds} rounds of {:.1} s, {connections} connections",
        duration.as_secs_f64()
    );
    print!("{}", report::table(&totals, !args.service_pid.is_empty()));
    println!();

    let errors: u64 = totals.iter().map(|t| t.errors.count).sum();
    let fallback_calls = match (&health_at_start, health::fetch(&workload.target).await) {
        (Some(start), Ok(end)) => Some(end.fallback_calls.saturating_sub(start.fallback_calls)),
        _ => None,
    };
    if let Some(calls) = fallback_calls.filter(|&c| c > 0) {
        println!(
            "WARNING: the server decided {calls} limit calls without its shared limiter during \
             the run (see /v2/health): those phases did not measure it alone."
        );
    }
    if let Some(path) = &args.summary_json {
        let summary = RunSummary {
            server: workload.target.authority().to_owned(),
            backends: health_at_start.map(|h| h.backends),
            fallback_calls,
            connections,
            rounds,
            duration_secs: duration.as_secs_f64(),
            errors,
            phases: RunSummary::phases_of(&totals, !args.service_pid.is_empty()),
        };
        summary.write(path)?;
        println!("summary written to {}", path.display());
    }
    let (verdict, met) = report::verdict(&totals, connections);
    println!("Goals:");
    print!("{verdict}");
    if errors > 0 {
        eprintln!();
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!("!!! {errors} REQUESTS FAILED: THESE RESULTS ARE NOT VALID");
        for t in totals.iter().filter(|t| t.errors.count > 0) {
            eprintln!("!!!   {}: {} errors", t.phase, t.errors.count);
            for sample in &t.errors.samples {
                eprintln!("!!!     {sample}");
            }
        }
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        println!("Verdict: INVALID RUN ({errors} errors)");
        return Ok(ExitCode::from(2));
    }
    let disturbed: u32 = totals.iter().map(|t| t.disturbed).sum();
    if disturbed > 0 {
        println!(
            "WARNING: {disturbed} runs were disturbed by other load on the machine (see \
             \"repeats\"); the figures are less reliable."
        );
    }
    println!(
        "Verdict: {}",
        match met {
            Some(true) => "all goals met",
            Some(false) => "goals NOT met",
            None => "not every goal could be evaluated",
        }
    );
    Ok(ExitCode::SUCCESS)
}
