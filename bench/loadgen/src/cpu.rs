//! CPU time: of a process, from `/proc/<pid>/task/*/schedstat` (nanoseconds on the CPU, per
//! thread), and of the machine, of the backing services (PostgreSQL, Redis) and of other
//! processes, from `/proc/stat` and `/proc/*/stat`.

use std::collections::HashMap;
use std::time::Duration;

/// Which process to read.
#[derive(Debug, Clone, Copy)]
pub enum Process {
    This,
    Pid(u32),
}

impl Process {
    /// CPU time of each live thread, by thread id, or `None` when `/proc` cannot tell.
    fn thread_times(self) -> Option<HashMap<u32, u64>> {
        let dir = match self {
            Self::This => "/proc/self/task".to_owned(),
            Self::Pid(pid) => format!("/proc/{pid}/task"),
        };
        let mut times = HashMap::new();
        for entry in std::fs::read_dir(dir).ok()? {
            let Ok(entry) = entry else { continue };
            let Some(tid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            // A thread may exit between listing and reading; skip it.
            let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) else {
                continue;
            };
            if let Some(ns) = text.split_whitespace().next().and_then(|f| f.parse().ok()) {
                times.insert(tid, ns);
            }
        }
        Some(times)
    }
}

/// Reads a process's CPU time before and after a span, thread by thread: a thread that exits
/// in between (such as an idle blocking-pool thread of the server) must not subtract the time
/// it used before the span. Time used in the span by threads that exited before its end is
/// missed; such threads were idle long enough to be retired.
pub struct CpuMeter {
    process: Process,
    start: Option<HashMap<u32, u64>>,
}

impl CpuMeter {
    pub fn start(process: Process) -> Self {
        Self {
            process,
            start: process.thread_times(),
        }
    }

    pub fn stop(self) -> Option<Duration> {
        let end = self.process.thread_times()?;
        let start = self.start?;
        let used = end
            .iter()
            .map(|(tid, &ns)| ns.saturating_sub(start.get(tid).copied().unwrap_or(0)))
            .sum();
        Some(Duration::from_nanos(used))
    }
}

/// CPU time of the whole machine: busy and stolen by the hypervisor (from the `cpu` line of
/// `/proc/stat`), and used by the services and by other processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    /// User, nice, system, irq and softirq time of every CPU.
    pub busy: Duration,
    pub steal: Duration,
    /// User and system time of every user-space process but the excluded ones and the
    /// services, including children they reaped (so processes that end in between still
    /// count). Kernel threads are left out: they mostly do work for the measured processes
    /// (network, disk).
    pub others: Duration,
    /// The same for the server's backing services: the given processes and their
    /// descendants (PostgreSQL serves each connection in a child of the postmaster).
    pub services: Duration,
}

/// `/proc` counts in USER_HZ, which is 100 on Linux.
const USER_HZ: u64 = 100;
/// `PF_KTHREAD` in the flags of `/proc/<pid>/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 1000 / USER_HZ)
}

impl MachineCpu {
    /// Reads the counters; `exclude` are the processes being measured, `services` the
    /// main processes of the server's backing services.
    pub fn read(exclude: &[u32], services: &[u32]) -> Option<Self> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let line = text.lines().find(|l| l.starts_with("cpu "))?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
        // already in user and nice.
        let ticks =
            |range: std::ops::Range<usize>| fields.get(range).map(|f| f.iter().sum::<u64>());
        let busy = ticks(0..3)? + ticks(5..7)?;
        let steal = ticks(7..8)?;
        let processes = process_ticks(exclude, services)?;
        Some(Self {
            busy: ticks_to_duration(busy),
            steal: ticks_to_duration(steal),
            others: ticks_to_duration(processes.others),
            services: ticks_to_duration(processes.services),
        })
    }

    pub fn since(self, earlier: Self) -> Self {
        Self {
            busy: self.busy.saturating_sub(earlier.busy),
            steal: self.steal.saturating_sub(earlier.steal),
            others: self.others.saturating_sub(earlier.others),
            services: self.services.saturating_sub(earlier.services),
        }
    }
}

/// Clock ticks of user-space processes, split into services and the rest.
struct ProcessTicks {
    others: u64,
    services: u64,
}

fn process_ticks(exclude: &[u32], services: &[u32]) -> Option<ProcessTicks> {
    // (pid, parent pid, ticks used) of every user-space process.
    let mut processes = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // Processes may end while being listed.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name is in parentheses and may contain spaces; fields follow the last
        // `)`, starting with the state (field 3 of proc(5)).
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        if field(9).is_some_and(|flags| flags & PF_KTHREAD != 0) {
            continue;
        }
        let parent = field(4).and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
        // utime, stime, cutime, cstime.
        let used = (14..=17).filter_map(field).sum::<u64>();
        processes.push((pid, parent, used));
    }
    let parents: HashMap<u32, u32> = processes
        .iter()
        .map(|&(pid, parent, _)| (pid, parent))
        .collect();
    let serves = |mut pid: u32| {
        // Bounded, in case a pid was reused while listing and made a cycle.
        for _ in 0..64 {
            if services.contains(&pid) {
                return true;
            }
            match parents.get(&pid) {
                Some(&parent) if parent > 1 => pid = parent,
                _ => return false,
            }
        }
        false
    };
    let mut ticks = ProcessTicks {
        others: 0,
        services: 0,
    };
    for &(pid, _, used) in &processes {
        if exclude.contains(&pid) {
            continue;
        }
        if !services.is_empty() && serves(pid) {
            ticks.services += used;
        } else {
            ticks.others += used;
        }
    }
    Some(ticks)
}
