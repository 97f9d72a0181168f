//! Sums each phase over its rounds, prints the table and the verdict on the goals.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::cpu::MachineCpu;
use crate::phase::Phase;
use crate::runner::{Errors, PhaseRun, new_histogram};

/// The throughput goals, as a fraction of liveness throughput: verification speed (issue 2)
/// for verify-valid and verify-unknown, rate limits (issue 3) for verify-limited and
/// ratelimit-limit.
pub const THROUGHPUT_GOALS: [(Phase, f64); 4] = [
    (Phase::VerifyValid, 0.85),
    (Phase::VerifyUnknown, 0.85),
    (Phase::VerifyLimited, 0.8),
    (Phase::RatelimitLimit, 0.8),
];
/// Throughput goals against another phase rather than liveness, as (phase, baseline,
/// fraction): permission queries (issue 4), verify with a query against the same keys
/// verified without one, so that only the query's evaluation (and its longer request body)
/// separates them.
pub const RELATIVE_GOALS: [(Phase, Phase, f64); 1] =
    [(Phase::VerifyQuery, Phase::VerifyPerms, 0.9)];
/// The latency goal of issue 2, for the phases it names.
pub const MAX_P99: Duration = Duration::from_millis(2);
pub const P99_GOAL_PHASES: [Phase; 2] = [Phase::VerifyValid, Phase::VerifyUnknown];
pub const GOAL_CONNECTIONS: usize = 32;

/// One phase, summed over every round.
pub struct PhaseTotal {
    pub phase: Phase,
    pub ok: u64,
    pub errors: Errors,
    pub latency: Histogram<u64>,
    pub elapsed: Duration,
    pub server_cpu: Option<Duration>,
    pub loadgen_cpu: Option<Duration>,
    pub machine_cpu: Option<MachineCpu>,
    /// Throughput of each round, in order.
    pub rounds: Vec<f64>,
    /// Runs repeated because other load disturbed them.
    pub discarded: u32,
    /// Runs kept although other load disturbed them (out of repeats).
    pub disturbed: u32,
}

impl PhaseTotal {
    pub fn new(phase: Phase) -> Self {
        Self {
            phase,
            ok: 0,
            errors: Errors::default(),
            latency: new_histogram(),
            elapsed: Duration::ZERO,
            server_cpu: Some(Duration::ZERO),
            loadgen_cpu: Some(Duration::ZERO),
            machine_cpu: Some(MachineCpu::default()),
            rounds: Vec::new(),
            discarded: 0,
            disturbed: 0,
        }
    }

    pub fn add(&mut self, run: &PhaseRun) {
        self.ok += run.ok;
        self.errors.merge(&run.errors);
        self.latency
            .add(&run.latency)
            .expect("histograms with the same bounds");
        self.elapsed += run.elapsed;
        self.server_cpu = self.server_cpu.zip(run.server_cpu).map(|(a, b)| a + b);
        self.loadgen_cpu = self.loadgen_cpu.zip(run.loadgen_cpu).map(|(a, b)| a + b);
        self.machine_cpu = self
            .machine_cpu
            .zip(run.machine_cpu)
            .map(|(a, b)| MachineCpu {
                busy: a.busy + b.busy,
                steal: a.steal + b.steal,
                others: a.others + b.others,
                services: a.services + b.services,
            });
        self.rounds.push(per_second(run.ok, run.elapsed));
    }

    /// CPU used by other processes; only known when the server's CPU is measured (otherwise
    /// the server is one of the "other" processes).
    pub fn other_cpu(&self) -> Option<Duration> {
        self.server_cpu?;
        Some(self.machine_cpu?.others)
    }

    /// CPU used by the server's backing services (zero when none were named).
    pub fn service_cpu(&self) -> Option<Duration> {
        Some(self.machine_cpu?.services)
    }

    pub fn throughput(&self) -> f64 {
        per_second(self.ok, self.elapsed)
    }

    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_nanos(self.latency.value_at_quantile(q))
    }

    /// CPU microseconds per successful request.
    pub fn cpu_per_request(&self, cpu: Option<Duration>) -> Option<f64> {
        let cpu = cpu?;
        (self.ok > 0).then(|| cpu.as_secs_f64() * 1e6 / self.ok as f64)
    }

    /// Average number of cores busy.
    pub fn cores(&self, cpu: Option<Duration>) -> Option<f64> {
        let cpu = cpu?;
        (!self.elapsed.is_zero()).then(|| cpu.as_secs_f64() / self.elapsed.as_secs_f64())
    }
}

pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        0.0
    } else {
        count as f64 / elapsed.as_secs_f64()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// The table of every phase. With `services` (the server's backing services were named),
/// two more columns show their CPU time: per request and in cores.
pub fn table(totals: &[PhaseTotal], services: bool) -> String {
    let live = totals.iter().find(|t| t.phase == Phase::Liveness);
    let live_rps = live.map(PhaseTotal::throughput).filter(|&t| t > 0.0);
    let live_cost = live.and_then(|t| t.cpu_per_request(t.server_cpu));
    let mut out = String::new();
    let service_header = if services {
        format!(" {:>7} {:>5}", "svc µs", "svc")
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{:<15} {:>8} {:>7} {:>7} {:>7} {:>8} {:>7} {:>7} {:>7}{service_header} {:>5} {:>5} {:>5} {:>5} {:>6} {:>7}  per-round req/s",
        "phase",
        "req/s",
        "vs live",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "srv µs",
        "srv cap",
        "srv",
        "gen",
        "other",
        "steal",
        "errors",
        "repeats",
    );
    for t in totals {
        let ratio = live_rps.map(|b| t.throughput() / b);
        let cost = t.cpu_per_request(t.server_cpu);
        let capacity = live_cost.zip(cost).map(|(l, c)| l / c);
        let rounds: Vec<String> = t.rounds.iter().map(|r| format!("{r:.0}")).collect();
        let repeats = if t.disturbed > 0 {
            format!("{}+{}!", t.discarded, t.disturbed)
        } else {
            t.discarded.to_string()
        };
        let service_columns = if services {
            format!(
                " {:>7} {:>5}",
                opt(t.cpu_per_request(t.service_cpu()), 2),
                opt(t.cores(t.service_cpu()), 2)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{:<15} {:>8.0} {:>7} {:>7} {:>7} {:>8} {:>7} {:>7} {:>7}{service_columns} {:>5} {:>5} {:>5} {:>5} {:>6} {:>7}  {}",
            t.phase.name(),
            t.throughput(),
            opt(ratio, 3),
            ms(t.quantile(0.50)),
            ms(t.quantile(0.99)),
            ms(t.quantile(0.999)),
            ms(Duration::from_nanos(t.latency.max())),
            opt(cost, 2),
            opt(capacity, 3),
            opt(t.cores(t.server_cpu), 2),
            opt(t.cores(t.loadgen_cpu), 2),
            opt(t.cores(t.other_cpu()), 2),
            opt(t.cores(t.machine_cpu.map(|m| m.steal)), 2),
            t.errors.count,
            repeats,
            rounds.join(" "),
        );
    }
    out.push_str(
        "  vs live: throughput / liveness throughput. srv µs: server CPU time per request.\n  \
         srv cap: liveness srv µs / this phase's srv µs, the throughput ratio a server-bound \
         setup would show.\n",
    );
    if services {
        out.push_str(
            "  svc µs, svc: CPU time of the backing services (PostgreSQL, Redis) per request, \
             and the cores they kept busy.\n",
        );
    }
    out.push_str(
        "  srv, gen, other, steal: average cores busy in the server, in \
         this load generator, in other processes, and stolen by the hypervisor.\n  \
         repeats: runs discarded and repeated because other load disturbed them \
         (+N!: kept disturbed).\n  \
         Latency: from sending a request to reading the last byte of its response.\n",
    );
    out
}

/// The verdict on the goals; `None` in the result when a goal could not be evaluated.
pub fn verdict(totals: &[PhaseTotal], connections: usize) -> (String, Option<bool>) {
    let get = |p: Phase| totals.iter().find(|t| t.phase == p && t.ok > 0);
    let not_measured = |p: Phase| {
        if totals.iter().any(|t| t.phase == p) {
            "no successful requests".to_owned()
        } else {
            "phase not run".to_owned()
        }
    };
    let mut out = String::new();
    let mut all = Some(true);
    let mut record = |out: &mut String, name: String, pass: Option<bool>, detail: String| {
        let mark = match pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "n/a ",
        };
        let _ = writeln!(out, "  [{mark}] {name}: {detail}");
        all = match (all, pass) {
            (Some(a), Some(p)) => Some(a && p),
            _ => None,
        };
    };
    let goals = THROUGHPUT_GOALS
        .iter()
        .map(|&(phase, min_ratio)| (phase, Phase::Liveness, min_ratio))
        .chain(RELATIVE_GOALS);
    for (phase, baseline, min_ratio) in goals {
        let name = format!("{phase} throughput >= {min_ratio} x {baseline}");
        match (get(phase), get(baseline)) {
            (Some(t), Some(b)) => {
                let ratio = t.throughput() / b.throughput();
                record(
                    &mut out,
                    name,
                    Some(ratio >= min_ratio),
                    ratio_detail(ratio, t, b),
                );
            }
            (None, _) => record(&mut out, name, None, not_measured(phase)),
            (_, None) => record(
                &mut out,
                name,
                None,
                format!("baseline {baseline}: {}", not_measured(baseline)),
            ),
        }
    }
    for phase in P99_GOAL_PHASES {
        let name = format!(
            "{phase} p99 < {} ms at {GOAL_CONNECTIONS} connections",
            MAX_P99.as_millis()
        );
        match get(phase) {
            Some(_) if connections != GOAL_CONNECTIONS => record(
                &mut out,
                name,
                None,
                format!("measured at {connections} connections"),
            ),
            Some(t) => {
                let p99 = t.quantile(0.99);
                record(
                    &mut out,
                    name,
                    Some(p99 < MAX_P99),
                    format!("p99 {} ms", ms(p99)),
                );
            }
            None => record(&mut out, name, None, not_measured(phase)),
        }
    }
    (out, all)
}

/// The evidence for a throughput ratio of `t` to its baseline `b`: both rates, the ratio of
/// each round (the spread), and the ratio of their server CPU per request (the cross-check).
fn ratio_detail(ratio: f64, t: &PhaseTotal, b: &PhaseTotal) -> String {
    let capacity = b
        .cpu_per_request(b.server_cpu)
        .zip(t.cpu_per_request(t.server_cpu))
        .map_or_else(String::new, |(b, t)| {
            format!(
                "; server CPU per request {t:.2} vs {b:.2} µs, ratio {:.3}",
                b / t
            )
        });
    let per_round: Vec<String> = t
        .rounds
        .iter()
        .zip(&b.rounds)
        .map(|(t, b)| format!("{:.3}", t / b))
        .collect();
    format!(
        "{ratio:.3} ({:.0} vs {:.0} req/s; per round {}{capacity})",
        t.throughput(),
        b.throughput(),
        per_round.join(" "),
    )
}
