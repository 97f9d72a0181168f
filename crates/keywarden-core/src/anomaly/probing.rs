//! Unknown keys per client address: many guesses from one address is someone probing.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::id::WorkspaceId;
use crate::time::UnixMillis;

/// Most unknown-key times kept per address: the count only needs to reach the threshold.
const MAX_TIMES: usize = 10_000;

#[derive(Debug, Default)]
struct Address {
    /// Times of unknown keys within the window, oldest first.
    times: VecDeque<UnixMillis>,
    last_alert: Option<UnixMillis>,
}

#[derive(Debug)]
pub(super) struct ProbeWindows {
    window_ms: i64,
    addresses: HashMap<(WorkspaceId, IpAddr), Address>,
}

impl ProbeWindows {
    pub(super) fn new(window_ms: i64) -> Self {
        Self {
            window_ms,
            addresses: HashMap::new(),
        }
    }

    /// Records an unknown key from `ip` at `now`; returns how many it sent in the window.
    pub(super) fn record(&mut self, workspace: &WorkspaceId, ip: IpAddr, now: UnixMillis) -> usize {
        let address = self.addresses.entry((workspace.clone(), ip)).or_default();
        let since = now.as_millis() - self.window_ms;
        while address.times.front().is_some_and(|t| t.as_millis() < since) {
            address.times.pop_front();
        }
        if address.times.len() < MAX_TIMES {
            address.times.push_back(now);
        }
        address.times.len()
    }

    /// Whether an alert for `ip` may be raised now (none within `cooldown_ms`); if so, notes
    /// it as raised.
    pub(super) fn alert_due(
        &mut self,
        workspace: &WorkspaceId,
        ip: IpAddr,
        now: UnixMillis,
        cooldown_ms: i64,
    ) -> bool {
        let Some(address) = self.addresses.get_mut(&(workspace.clone(), ip)) else {
            return false;
        };
        if address
            .last_alert
            .is_some_and(|at| now.as_millis() - at.as_millis() < cooldown_ms)
        {
            return false;
        }
        address.last_alert = Some(now);
        true
    }

    /// Drops addresses with nothing in their window and no alert within `cooldown_ms`.
    pub(super) fn forget_before(&mut self, now: UnixMillis, cooldown_ms: i64) {
        let window_start = now.as_millis() - self.window_ms;
        self.addresses.retain(|_, address| {
            address
                .times
                .back()
                .is_some_and(|t| t.as_millis() >= window_start)
                || address
                    .last_alert
                    .is_some_and(|at| now.as_millis() - at.as_millis() < cooldown_ms)
        });
    }
}
