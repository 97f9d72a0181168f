//! Runs one phase: C connections, each sending its next request as soon as the previous
//! response is read (closed loop), for a fixed time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Barrier;

use crate::cpu::{CpuMeter, MachineCpu, Process};
use crate::phase::{Cursor, Phase, Workload, check};

/// Errors of a run: how many, and the first few distinct messages.
#[derive(Debug, Default, Clone)]
pub struct Errors {
    pub count: u64,
    pub samples: Vec<String>,
}

const MAX_ERROR_SAMPLES: usize = 5;

impl Errors {
    pub fn note(&mut self, message: String) {
        self.count += 1;
        if self.samples.len() < MAX_ERROR_SAMPLES && !self.samples.contains(&message) {
            self.samples.push(message);
        }
    }

    pub fn merge(&mut self, other: &Self) {
        self.count += other.count;
        for s in &other.samples {
            if self.samples.len() < MAX_ERROR_SAMPLES && !self.samples.contains(s) {
                self.samples.push(s.clone());
            }
        }
    }
}

/// Latencies in nanoseconds, 1 ns to 60 s at three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// The outcome of one timed run of a phase.
pub struct PhaseRun {
    /// Responses that were as expected; only these count towards throughput and latency.
    pub ok: u64,
    pub errors: Errors,
    pub latency: Histogram<u64>,
    pub elapsed: Duration,
    /// CPU time the server used during the run, when its pid is known.
    pub server_cpu: Option<Duration>,
    /// CPU time this load generator used during the run.
    pub loadgen_cpu: Option<Duration>,
    /// CPU time of the whole machine during the run.
    pub machine_cpu: Option<MachineCpu>,
}

struct WorkerResult {
    ok: u64,
    errors: Errors,
    latency: Histogram<u64>,
    end: Instant,
}

pub struct RunSettings {
    pub connections: usize,
    pub duration: Duration,
    pub server_pid: Option<u32>,
    /// Main processes of the server's backing services (see `MachineCpu::services`).
    pub services: Vec<u32>,
    pub seed: u64,
}

pub async fn run_phase(workload: &Arc<Workload>, phase: Phase, settings: &RunSettings) -> PhaseRun {
    let workers = settings.connections;
    let barrier = Arc::new(Barrier::new(workers + 1));
    let mut handles = Vec::with_capacity(workers);
    for index in 0..workers {
        let workload = Arc::clone(workload);
        let barrier = Arc::clone(&barrier);
        let cursor = Cursor::new(
            index,
            workers,
            workload.valid_bodies.len(),
            settings.seed.wrapping_add(index as u64),
        );
        let duration = settings.duration;
        handles.push(tokio::spawn(async move {
            worker(&workload, phase, cursor, &barrier, duration).await
        }));
    }
    // Every connection is open before the clock starts.
    barrier.wait().await;
    let start = Instant::now();
    let server_meter = settings
        .server_pid
        .map(|pid| CpuMeter::start(Process::Pid(pid)));
    let loadgen_meter = CpuMeter::start(Process::This);
    let measured: Vec<u32> = [Some(std::process::id()), settings.server_pid]
        .into_iter()
        .flatten()
        .collect();
    let machine_start = MachineCpu::read(&measured, &settings.services);

    let mut run = PhaseRun {
        ok: 0,
        errors: Errors::default(),
        latency: new_histogram(),
        elapsed: Duration::ZERO,
        server_cpu: None,
        loadgen_cpu: None,
        machine_cpu: None,
    };
    let mut end = start;
    for handle in handles {
        match handle.await {
            Ok(result) => {
                run.ok += result.ok;
                run.errors.merge(&result.errors);
                run.latency
                    .add(&result.latency)
                    .expect("histograms with the same bounds");
                end = end.max(result.end);
            }
            Err(e) => run.errors.note(format!("{phase}: worker failed: {e}")),
        }
    }
    run.server_cpu = server_meter.and_then(CpuMeter::stop);
    run.loadgen_cpu = loadgen_meter.stop();
    run.machine_cpu = MachineCpu::read(&measured, &settings.services)
        .zip(machine_start)
        .map(|(end, start)| end.since(start));
    run.elapsed = end.duration_since(start);
    run
}

async fn worker(
    workload: &Workload,
    phase: Phase,
    mut cursor: Cursor,
    barrier: &Barrier,
    duration: Duration,
) -> WorkerResult {
    let mut errors = Errors::default();
    let mut latency = new_histogram();
    let mut ok = 0;
    let connected = workload.target.connect().await;
    barrier.wait().await;
    let start = Instant::now();
    let deadline = start + duration;
    let mut sender = match connected {
        Ok(sender) => Some(sender),
        Err(e) => {
            errors.note(format!("{phase}: {e:#}"));
            None
        }
    };
    let mut now = start;
    while now < deadline {
        let Some(conn) = sender.as_mut() else {
            // Reconnect after a failure, without spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            match workload.target.connect().await {
                Ok(s) => sender = Some(s),
                Err(e) => errors.note(format!("{phase}: {e:#}")),
            }
            now = Instant::now();
            continue;
        };
        let request = workload.request(phase, &mut cursor);
        let sent = Instant::now();
        let result = crate::client::send(conn, request).await;
        now = Instant::now();
        match result {
            Ok((status, body)) => match check(phase, status, &body) {
                Ok(()) => {
                    ok += 1;
                    let nanos =
                        u64::try_from(now.duration_since(sent).as_nanos()).unwrap_or(u64::MAX);
                    latency.saturating_record(nanos);
                }
                Err(message) => errors.note(message),
            },
            Err(e) => {
                errors.note(format!("{phase}: {e:#}"));
                sender = None;
            }
        }
    }
    WorkerResult {
        ok,
        errors,
        latency,
        end: now,
    }
}
