//! Each rule against a scripted traffic pattern that should trigger it, and steady traffic
//! that should not.

use std::net::IpAddr;

use super::*;

const T0: i64 = 1_800_000_000_000;

fn ip(n: u32) -> IpAddr {
    IpAddr::from((0x0a00_0000 + n).to_be_bytes())
}

fn minute(m: i64) -> UnixMillis {
    UnixMillis::from_millis(T0 + m * MINUTE_MS)
}

struct Traffic {
    detector: Detector,
    workspace: WorkspaceId,
    key: KeyId,
    found: Vec<Anomaly>,
}

impl Traffic {
    fn new() -> Self {
        Self::with(AnomalySettings::default())
    }

    fn with(settings: AnomalySettings) -> Self {
        Self {
            detector: Detector::new(settings),
            workspace: WorkspaceId::parse("ws_anomaly1").expect("id"),
            key: KeyId::parse("key_anomaly1").expect("id"),
            found: Vec::new(),
        }
    }

    fn call(&mut self, at: UnixMillis, from: IpAddr) {
        self.call_with(at, from, None, false);
    }

    fn call_with(
        &mut self,
        at: UnixMillis,
        from: IpAddr,
        credits: Option<CreditsAfter>,
        replaced: bool,
    ) {
        let observation = Observation {
            time: at,
            workspace_id: &self.workspace,
            key_id: Some(&self.key),
            outcome: if replaced {
                VerifyCode::Expired
            } else {
                VerifyCode::Valid
            },
            client_ip: Some(from),
            credits,
            replaced,
        };
        self.found.extend(self.detector.observe(&observation));
    }

    fn unknown(&mut self, at: UnixMillis, from: IpAddr) {
        let observation = Observation {
            time: at,
            workspace_id: &self.workspace,
            key_id: None,
            outcome: VerifyCode::NotFound,
            client_ip: Some(from),
            credits: None,
            replaced: false,
        };
        self.found.extend(self.detector.observe(&observation));
    }

    /// An hour of ordinary use: 10 to 40 calls a minute from a pool of ten addresses.
    fn steady_hour(&mut self, from_minute: i64) {
        for m in from_minute..from_minute + 60 {
            let calls = 10 + (m * 7).rem_euclid(31);
            for c in 0..calls {
                let at = minute(m).plus_millis(c * 1000);
                self.call(at, ip(u32::try_from(c % 10).expect("small")));
            }
        }
    }

    fn kinds(&self) -> Vec<AnomalyKind> {
        self.found.iter().map(|a| a.kind).collect()
    }
}

#[test]
fn steady_traffic_raises_nothing() {
    let mut traffic = Traffic::new();
    for hour in 0..6 {
        traffic.steady_hour(hour * 60);
    }
    assert_eq!(traffic.kinds(), Vec::<AnomalyKind>::new());
}

#[test]
fn a_rate_jump_far_above_the_baseline_is_one_alert() {
    let mut traffic = Traffic::new();
    traffic.steady_hour(0);
    for c in 0..2_000 {
        traffic.call(minute(60).plus_millis(c * 20), ip(1));
    }
    assert_eq!(traffic.kinds(), vec![AnomalyKind::RateSpike]);
    let alert = &traffic.found[0];
    assert_eq!(alert.severity, Severity::Warning);
    assert_eq!(alert.key_id.as_ref(), Some(&traffic.key));
    let calls = alert.evidence["callsThisMinute"].as_u64().expect("count");
    let threshold = alert.evidence["threshold"].as_f64().expect("threshold");
    assert!(calls as f64 > threshold && threshold >= 100.0, "{alert:?}");
    // The next minute is as busy, but within the cooldown: still one alert.
    for c in 0..2_000 {
        traffic.call(minute(61).plus_millis(c * 20), ip(1));
    }
    assert_eq!(traffic.found.len(), 1);
}

#[test]
fn no_rate_alert_before_the_key_has_a_history() {
    let mut traffic = Traffic::new();
    for c in 0..5_000 {
        traffic.call(minute(0).plus_millis(c * 10), ip(1));
    }
    assert!(traffic.found.is_empty(), "{:?}", traffic.kinds());
}

#[test]
fn a_burst_below_the_minimum_is_not_a_spike() {
    let mut traffic = Traffic::new();
    for m in 0..60 {
        traffic.call(minute(m), ip(1));
    }
    // Fifty times its rate, but only 50 calls.
    for c in 0..50 {
        traffic.call(minute(60).plus_millis(c * 100), ip(1));
    }
    assert!(traffic.found.is_empty(), "{:?}", traffic.kinds());
}

#[test]
fn many_new_addresses_at_once_are_critical() {
    let mut traffic = Traffic::new();
    traffic.steady_hour(0);
    // 25 addresses never seen before, within five minutes.
    for n in 0..25 {
        traffic.call(
            minute(60 + n / 5).plus_millis(n * 100),
            ip(1000 + u32::try_from(n).expect("small")),
        );
    }
    assert_eq!(traffic.kinds(), vec![AnomalyKind::NewClientIps]);
    let alert = &traffic.found[0];
    assert_eq!(alert.severity, Severity::Critical);
    assert_eq!(alert.evidence["newAddresses"], 20);
    assert_eq!(alert.evidence["sample"].as_array().map(Vec::len), Some(5));
}

#[test]
fn new_addresses_trickling_in_are_not_news() {
    let mut traffic = Traffic::new();
    traffic.steady_hour(0);
    // One new address every ten minutes for a day.
    for n in 0..144 {
        traffic.call(minute(60 + i64::from(n) * 10), ip(2000 + n));
    }
    assert!(traffic.found.is_empty(), "{:?}", traffic.kinds());
}

#[test]
fn a_replaced_key_used_after_its_grace_is_critical() {
    let mut traffic = Traffic::new();
    traffic.call(minute(0), ip(1));
    traffic.call_with(minute(5), ip(7), None, true);
    assert_eq!(traffic.kinds(), vec![AnomalyKind::UsedAfterRotation]);
    assert_eq!(traffic.found[0].severity, Severity::Critical);
    assert_eq!(traffic.found[0].evidence["outcome"], "EXPIRED");
    assert_eq!(traffic.found[0].client_ip, Some(ip(7)));
}

#[test]
fn one_address_probing_unknown_keys_is_one_alert() {
    let mut traffic = Traffic::new();
    for n in 0..120 {
        traffic.unknown(minute(0).plus_millis(n * 400), ip(66));
    }
    assert_eq!(traffic.kinds(), vec![AnomalyKind::UnknownKeyProbing]);
    let alert = &traffic.found[0];
    assert_eq!(alert.key_id, None);
    assert_eq!(alert.client_ip, Some(ip(66)));
    assert_eq!(alert.evidence["unknownKeys"], 50);
}

#[test]
fn occasional_typos_are_not_probing() {
    let mut traffic = Traffic::new();
    // Two unknown keys a minute from each of ten addresses, for an hour.
    for m in 0..60 {
        for a in 0..10 {
            traffic.unknown(minute(m).plus_millis(i64::from(a) * 1000), ip(a));
            traffic.unknown(minute(m).plus_millis(30_000), ip(a));
        }
    }
    assert!(traffic.found.is_empty(), "{:?}", traffic.kinds());
}

#[test]
fn credits_low_fires_on_the_crossing_only() {
    let mut traffic = Traffic::new();
    let spend = |remaining| CreditsAfter {
        remaining,
        spent: 1,
        refill_amount: Some(1000),
    };
    for remaining in (0..200).rev() {
        traffic.call_with(minute(0), ip(1), Some(spend(remaining)), false);
    }
    assert_eq!(traffic.kinds(), vec![AnomalyKind::CreditsLow]);
    assert_eq!(traffic.found[0].evidence["remaining"], 100);
    assert_eq!(traffic.found[0].evidence["lowMark"], 100);
    assert_eq!(traffic.found[0].severity, Severity::Info);
}

#[test]
fn credits_low_without_refill_uses_the_absolute_mark() {
    let mut traffic = Traffic::new();
    let spend = |remaining| CreditsAfter {
        remaining,
        spent: 5,
        refill_amount: None,
    };
    traffic.call_with(minute(0), ip(1), Some(spend(20)), false);
    assert!(traffic.found.is_empty());
    traffic.call_with(minute(0), ip(1), Some(spend(12)), false);
    assert!(traffic.found.is_empty());
    traffic.call_with(minute(0), ip(1), Some(spend(7)), false);
    assert_eq!(traffic.kinds(), vec![AnomalyKind::CreditsLow]);
    // Reading the balance (cost 0) below the mark is not a crossing.
    traffic.call_with(
        minute(30),
        ip(1),
        Some(CreditsAfter {
            remaining: 7,
            spent: 0,
            refill_amount: None,
        }),
        false,
    );
    assert_eq!(traffic.found.len(), 1);
}

#[test]
fn idle_keys_are_forgotten() {
    let mut traffic = Traffic::with(AnomalySettings {
        idle_ms: 60 * MINUTE_MS,
        ..AnomalySettings::default()
    });
    traffic.call(minute(0), ip(1));
    traffic.unknown(minute(0), ip(2));
    assert_eq!(traffic.detector.tracked_keys(), 1);
    assert_eq!(traffic.detector.forget_idle(minute(30)), 0);
    assert_eq!(traffic.detector.forget_idle(minute(61)), 1);
    assert_eq!(traffic.detector.tracked_keys(), 0);
}

#[test]
fn settings_are_checked() {
    assert_eq!(AnomalySettings::default().validate(), Ok(()));
    let bad = AnomalySettings {
        rate_factor: 0.5,
        ..AnomalySettings::default()
    };
    assert_eq!(bad.validate(), Err(InvalidAnomalySettings("rate_factor")));
}

#[test]
fn kinds_round_trip_through_their_names() {
    for kind in AnomalyKind::ALL {
        assert_eq!(AnomalyKind::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(AnomalyKind::parse("nope"), None);
}

#[test]
fn kinds_know_their_place_in_the_list() {
    for (i, kind) in AnomalyKind::ALL.into_iter().enumerate() {
        assert_eq!(kind.index(), i, "{kind:?}");
    }
}
