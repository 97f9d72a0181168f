//! The client addresses a key has been used from, and the new ones that appeared lately.

use std::collections::VecDeque;
use std::net::IpAddr;

use crate::time::UnixMillis;

/// Most addresses remembered per key; beyond it the least recently seen quarter is forgotten
/// (a key used from thousands of addresses is a public client, and new ones are not news).
const MAX_KNOWN: usize = 1024;

#[derive(Debug, Default)]
pub(super) struct ClientIpHistory {
    /// When each address was last seen; the `latest` address's time may be behind (see
    /// there). Addresses can be chosen by callers (`clientIp`, a trusted proxy's
    /// `X-Forwarded-For`), but the map is seeded per process and bounded by [`MAX_KNOWN`].
    known: foldhash::HashMap<IpAddr, UnixMillis>,
    /// The address of the latest use and when it was last seen, kept beside the map: most
    /// keys are called from one address (or a few, in runs), so most uses only compare with
    /// it and move its time, without a map lookup. Its time reaches `known` when another
    /// address comes, and before the map's times are read.
    latest: Option<(IpAddr, UnixMillis)>,
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
        match &mut self.latest {
            Some((latest, seen)) if *latest == ip => *seen = (*seen).max(now),
            _ => {
                self.settle_latest();
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
                self.latest = Some((ip, now));
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

    /// Writes the latest address's time into the map.
    fn settle_latest(&mut self) {
        if let Some((ip, at)) = self.latest
            && let Some(seen) = self.known.get_mut(&ip)
        {
            *seen = (*seen).max(at);
        }
    }

    /// Called only from [`Self::see`], after the latest address's time was settled and
    /// before the new address becomes the latest.
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

    #[test]
    fn repeated_uses_from_the_latest_address_count_for_eviction() {
        let mut history = ClientIpHistory::default();
        let at = UnixMillis::from_millis;
        // One address used for a long run (all but the first use answered beside the map),
        // then another one, then many with older times (events arrive out of order).
        for t in 0..=5000 {
            history.see(ip(1), at(t), true, 1);
        }
        history.see(ip(2), at(5001), true, 1);
        for n in 0..1100u32 {
            history.see(ip(1000 + n), at(10 + i64::from(n)), true, 1);
        }
        assert!(history.known() <= MAX_KNOWN);
        // Its last use (5000) made it recent: the older arrivals were forgotten first.
        assert!(history.known.contains_key(&ip(1)));
        assert!(history.known.contains_key(&ip(2)));
        assert!(!history.known.contains_key(&ip(1000)));
    }
}
