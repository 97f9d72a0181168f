//! The client addresses a key has been used from, and the new ones that appeared lately.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::time::UnixMillis;

/// Most addresses remembered per key; beyond it the least recently seen quarter is forgotten
/// (a key used from thousands of addresses is a public client, and new ones are not news).
const MAX_KNOWN: usize = 1024;

#[derive(Debug, Default)]
pub(super) struct ClientIpHistory {
    known: HashMap<IpAddr, UnixMillis>,
    /// Addresses first seen after warm-up, oldest first.
    arrivals: VecDeque<(UnixMillis, IpAddr)>,
}

impl ClientIpHistory {
    /// Records a use from `ip` at `now`; returns how many new addresses appeared within
    /// `window_ms` before `now`. While `learning`, new addresses are remembered but not
    /// counted as news.
    pub(super) fn see(
        &mut self,
        ip: IpAddr,
        now: UnixMillis,
        learning: bool,
        window_ms: i64,
    ) -> usize {
        match self.known.get_mut(&ip) {
            Some(seen) => *seen = (*seen).max(now),
            None => {
                if self.known.len() >= MAX_KNOWN {
                    self.forget_least_recent();
                }
                self.known.insert(ip, now);
                if !learning {
                    self.arrivals.push_back((now, ip));
                }
            }
        }
        let since = now.as_millis() - window_ms;
        while self
            .arrivals
            .front()
            .is_some_and(|(at, _)| at.as_millis() < since)
        {
            self.arrivals.pop_front();
        }
        self.arrivals.len()
    }

    fn forget_least_recent(&mut self) {
        let mut seen: Vec<i64> = self.known.values().map(|t| t.as_millis()).collect();
        let cut = seen.len() / 4;
        let (_, cutoff, _) = seen.select_nth_unstable(cut);
        let cutoff = *cutoff;
        self.known.retain(|_, t| t.as_millis() > cutoff);
    }

    /// Up to `n` of the newest addresses that appeared within the window.
    pub(super) fn recent_new(&self, now: UnixMillis, window_ms: i64, n: usize) -> Vec<IpAddr> {
        let since = now.as_millis() - window_ms;
        self.arrivals
            .iter()
            .rev()
            .filter(|(at, _)| at.as_millis() >= since)
            .take(n)
            .map(|(_, ip)| *ip)
            .collect()
    }

    pub(super) fn known(&self) -> usize {
        self.known.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn only_addresses_new_after_learning_count() {
        let mut history = ClientIpHistory::default();
        let t = UnixMillis::from_millis(1_000_000);
        assert_eq!(history.see(ip(1), t, true, 60_000), 0);
        assert_eq!(history.see(ip(1), t, false, 60_000), 0);
        assert_eq!(history.see(ip(2), t, false, 60_000), 1);
        assert_eq!(history.see(ip(2), t, false, 60_000), 1);
        assert_eq!(history.see(ip(3), t, false, 60_000), 2);
        // A minute and a bit later both have left the window.
        let later = t.plus_millis(61_000);
        assert_eq!(history.see(ip(1), later, false, 60_000), 0);
        assert_eq!(history.known(), 3);
    }

    #[test]
    fn memory_is_bounded() {
        let mut history = ClientIpHistory::default();
        for n in 0..5000u32 {
            history.see(ip(n), UnixMillis::from_millis(i64::from(n)), true, 1);
        }
        assert!(history.known() <= MAX_KNOWN);
        // The most recent address is still known.
        assert!(history.known.contains_key(&ip(4999)));
    }
}
