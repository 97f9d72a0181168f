//! A run's results as JSON (`--summary-json`), so that runs against different backends can
//! be put side by side afterwards (`keywarden-bench-compare`) without parsing the table.

use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::health::Backends;
use crate::phase::Phase;
use crate::report::PhaseTotal;

/// One run of the load generator against one server.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunSummary {
    /// `host:port` of the server.
    pub server: String,
    /// What the server reported at the start, if it has `/v2/health`.
    pub backends: Option<Backends>,
    /// Limit calls the server decided without its shared limiter during the run (from
    /// `/v2/health`); anything but 0 means the run did not measure the shared limiter alone.
    pub fallback_calls: Option<u64>,
    pub connections: usize,
    pub rounds: usize,
    pub duration_secs: f64,
    /// Failed requests of every phase, warm-up included; any makes the run invalid.
    pub errors: u64,
    pub phases: Vec<PhaseSummary>,
}

/// One phase, summed over its rounds; the figures of the load generator's table.
#[derive(Debug, Serialize, Deserialize)]
pub struct PhaseSummary {
    pub phase: String,
    pub requests: u64,
    pub throughput: f64,
    /// Throughput / liveness throughput, when liveness ran.
    pub vs_liveness: Option<f64>,
    /// Throughput of each round.
    pub rounds: Vec<f64>,
    /// Each round's throughput / liveness throughput in the same round.
    pub rounds_vs_liveness: Vec<f64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Server CPU time per request.
    pub server_us: Option<f64>,
    /// Liveness `server_us` / this phase's.
    pub server_capacity: Option<f64>,
    /// CPU time of the backing services (PostgreSQL, Redis) per request, when named.
    pub service_us: Option<f64>,
    pub server_cores: Option<f64>,
    pub loadgen_cores: Option<f64>,
    pub service_cores: Option<f64>,
    pub other_cores: Option<f64>,
    /// Runs discarded and repeated because other load disturbed them.
    pub repeats: u32,
    /// Runs kept although disturbed.
    pub disturbed: u32,
    pub errors: u64,
}

impl PhaseSummary {
    /// `total` against `liveness` of the same run; `services`: whether the backing services'
    /// CPU time was measured (their processes were named).
    pub fn of(total: &PhaseTotal, liveness: Option<&PhaseTotal>, services: bool) -> Self {
        let service_cpu = total.service_cpu().filter(|_| services);
        let ms = |q: f64| total.quantile(q).as_secs_f64() * 1e3;
        let live_rps = liveness.map(PhaseTotal::throughput).filter(|&t| t > 0.0);
        let server_us = total.cpu_per_request(total.server_cpu);
        let live_us = liveness.and_then(|l| l.cpu_per_request(l.server_cpu));
        Self {
            phase: total.phase.name().to_owned(),
            requests: total.ok,
            throughput: total.throughput(),
            vs_liveness: live_rps.map(|l| total.throughput() / l),
            rounds: total.rounds.clone(),
            rounds_vs_liveness: liveness.map_or_else(Vec::new, |l| {
                total
                    .rounds
                    .iter()
                    .zip(&l.rounds)
                    .map(|(t, l)| t / l)
                    .collect()
            }),
            p50_ms: ms(0.50),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            server_us,
            server_capacity: live_us.zip(server_us).map(|(l, s)| l / s),
            service_us: total.cpu_per_request(service_cpu),
            server_cores: total.cores(total.server_cpu),
            loadgen_cores: total.cores(total.loadgen_cpu),
            service_cores: total.cores(service_cpu),
            other_cores: total.cores(total.other_cpu()),
            repeats: total.discarded,
            disturbed: total.disturbed,
            errors: total.errors.count,
        }
    }
}

impl RunSummary {
    /// The phase summaries of `totals`, each against the liveness of the same run.
    pub fn phases_of(totals: &[PhaseTotal], services: bool) -> Vec<PhaseSummary> {
        let liveness = totals.iter().find(|t| t.phase == Phase::Liveness);
        totals
            .iter()
            .map(|t| PhaseSummary::of(t, liveness, services))
            .collect()
    }

    pub fn phase(&self, phase: Phase) -> Option<&PhaseSummary> {
        self.phases.iter().find(|p| p.phase == phase.name())
    }

    /// What the run measured: the backends' label, or the server's address.
    pub fn label(&self) -> String {
        self.backends
            .as_ref()
            .map_or_else(|| self.server.clone(), Backends::label)
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("could not write {}", path.display()))
    }

    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a summary", path.display()))
    }
}
