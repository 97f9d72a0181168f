//! Anomaly detection over the stream of verifications: a key that behaves unlike itself is
//! often a leaked key.
//!
//! The [`Detector`] learns, per key, a baseline of its call rate and of the client addresses it
//! is used from, and watches client addresses for bursts of unknown keys. It is fed every
//! verification outcome after the fact (off the hot path) and answers the anomalies that
//! outcome reveals. It is pure: time comes from the observations, so tests replay traffic
//! patterns minute by minute.
//!
//! Rules (thresholds in [`AnomalySettings`]):
//! - **rate spike**: a key's calls in the current minute exceed `rate_factor` × its learned
//!   per-minute rate, and at least `rate_min_calls`, once the key has `warmup_minutes` of
//!   history;
//! - **new client IPs**: after warm-up, `new_ip_threshold` addresses the key was never used
//!   from appear within `new_ip_window_ms`;
//! - **used after rotation**: a key replaced by a reroll is presented after its grace period
//!   ended (whoever holds it did not get the new key: often a copy that leaked);
//! - **unknown-key probing**: one client address presents `probe_threshold` unknown keys
//!   within `probe_window_ms`;
//! - **credits low**: a spend takes a key's balance to or below its low mark (a fraction of
//!   its refill amount, else an absolute number); raised on the crossing, not on every call.
//!
//! Each rule raises at most one anomaly per key (or address) per `cooldown_ms`, so a sustained
//! attack is one alert, not thousands.

mod client_ips;
mod probing;
mod rate;
mod record;

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::id::{KeyId, WorkspaceId};
use crate::time::UnixMillis;
use crate::verify::VerifyCode;

use client_ips::ClientIpHistory;
use probing::ProbeWindows;
use rate::RateBaseline;
pub use record::{AnomalyFilter, RecordedAnomaly};

const MINUTE_MS: i64 = 60_000;

/// What an anomaly is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    RateSpike,
    NewClientIps,
    UsedAfterRotation,
    UnknownKeyProbing,
    CreditsLow,
}

impl AnomalyKind {
    pub const ALL: [Self; 5] = [
        Self::RateSpike,
        Self::NewClientIps,
        Self::UsedAfterRotation,
        Self::UnknownKeyProbing,
        Self::CreditsLow,
    ];

    /// Its place in [`Self::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RateSpike => "rate_spike",
            Self::NewClientIps => "new_client_ips",
            Self::UsedAfterRotation => "used_after_rotation",
            Self::UnknownKeyProbing => "unknown_key_probing",
            Self::CreditsLow => "credits_low",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// How urgent the kind is: the ones that suggest a leaked key are critical.
    pub const fn severity(self) -> Severity {
        match self {
            Self::UsedAfterRotation | Self::NewClientIps => Severity::Critical,
            Self::RateSpike | Self::UnknownKeyProbing => Severity::Warning,
            Self::CreditsLow => Severity::Info,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Info, Self::Warning, Self::Critical]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One detected anomaly, with the numbers that made the rule fire.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub severity: Severity,
    pub workspace_id: WorkspaceId,
    /// The key it is about; absent for probing with unknown keys.
    pub key_id: Option<KeyId>,
    /// The client address it is about, for probing.
    pub client_ip: Option<IpAddr>,
    pub time: UnixMillis,
    /// What the rule saw (counts, thresholds, baselines, sample addresses).
    pub evidence: Map<String, Value>,
}

/// A key's balance as one verification left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditsAfter {
    /// The balance after this verification.
    pub remaining: i64,
    /// What this verification spent.
    pub spent: i64,
    /// The amount a refill sets the balance to, if the key refills.
    pub refill_amount: Option<i64>,
}

/// One verification outcome, as the detector needs it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub time: UnixMillis,
    /// The workspace of the root key that asked (for unknown keys there is no other).
    pub workspace_id: &'a WorkspaceId,
    /// The key, when it exists; `None` for an unknown key.
    pub key_id: Option<&'a KeyId>,
    pub outcome: VerifyCode,
    pub client_ip: Option<IpAddr>,
    pub credits: Option<CreditsAfter>,
    /// The key was replaced by a reroll and its grace period has ended.
    pub replaced: bool,
}

/// Thresholds of the rules. The defaults alert on changes of an order of magnitude, not on
/// ordinary daily swings.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalySettings {
    /// Minutes of history a key needs before rate and address rules apply to it.
    pub warmup_minutes: u32,
    /// A minute with more than this many times the learned rate is a spike…
    pub rate_factor: f64,
    /// …and at least this many calls (so a key going from 1 to 12 calls is not).
    pub rate_min_calls: u64,
    /// New addresses within the window that make an alert.
    pub new_ip_threshold: u32,
    pub new_ip_window_ms: i64,
    /// Unknown keys from one address within the window that make an alert.
    pub probe_threshold: u32,
    pub probe_window_ms: i64,
    /// A balance at or below this fraction of the refill amount is low…
    pub credits_low_fraction: f64,
    /// …or, for keys without a refill, at or below this many credits.
    pub credits_low_absolute: i64,
    /// The quiet time after an alert of one kind for one key or address.
    pub cooldown_ms: i64,
    /// State of keys and addresses not seen for this long is forgotten.
    pub idle_ms: i64,
}

impl Default for AnomalySettings {
    fn default() -> Self {
        Self {
            warmup_minutes: 30,
            rate_factor: 10.0,
            rate_min_calls: 100,
            new_ip_threshold: 20,
            new_ip_window_ms: 10 * MINUTE_MS,
            probe_threshold: 50,
            probe_window_ms: MINUTE_MS,
            credits_low_fraction: 0.1,
            credits_low_absolute: 10,
            cooldown_ms: 15 * MINUTE_MS,
            idle_ms: 7 * 24 * 60 * MINUTE_MS,
        }
    }
}

/// Why settings are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("anomaly setting `{0}` must be positive")]
pub struct InvalidAnomalySettings(pub &'static str);

impl AnomalySettings {
    pub fn validate(&self) -> Result<(), InvalidAnomalySettings> {
        let checks = [
            (
                "rate_factor",
                self.rate_factor > 1.0 && self.rate_factor.is_finite(),
            ),
            ("rate_min_calls", self.rate_min_calls > 0),
            ("new_ip_threshold", self.new_ip_threshold > 0),
            ("new_ip_window_ms", self.new_ip_window_ms > 0),
            ("probe_threshold", self.probe_threshold > 0),
            ("probe_window_ms", self.probe_window_ms > 0),
            (
                "credits_low_fraction",
                self.credits_low_fraction > 0.0 && self.credits_low_fraction < 1.0,
            ),
            ("cooldown_ms", self.cooldown_ms > 0),
            ("idle_ms", self.idle_ms > 0),
        ];
        match checks.into_iter().find(|(_, ok)| !ok) {
            Some((name, _)) => Err(InvalidAnomalySettings(name)),
            None => Ok(()),
        }
    }
}

/// What the detector remembers about one key.
#[derive(Debug)]
struct KeyState {
    workspace_id: WorkspaceId,
    rate: RateBaseline,
    client_ips: ClientIpHistory,
    last_seen: UnixMillis,
    /// When each kind (by its place in [`AnomalyKind::ALL`]) last fired for this key: a few
    /// words inline rather than a map per key.
    last_alert: [Option<UnixMillis>; AnomalyKind::ALL.len()],
}

/// Learns per-key baselines from observations and raises anomalies.
#[derive(Debug)]
pub struct Detector {
    settings: AnomalySettings,
    /// Keyed by ids this server generated, which a client cannot choose to collide: hashed
    /// with foldhash, several times cheaper per observation than SipHash.
    keys: foldhash::HashMap<KeyId, KeyState>,
    probes: ProbeWindows,
}

impl Detector {
    pub fn new(settings: AnomalySettings) -> Self {
        Self {
            probes: ProbeWindows::new(settings.probe_window_ms),
            settings,
            keys: foldhash::HashMap::default(),
        }
    }

    pub fn settings(&self) -> &AnomalySettings {
        &self.settings
    }

    /// Learns from one verification; returns the anomalies it reveals.
    pub fn observe(&mut self, o: &Observation<'_>) -> Vec<Anomaly> {
        let mut found = Vec::new();
        let Some(key_id) = o.key_id else {
            self.observe_unknown_key(o, &mut found);
            return found;
        };
        let settings = &self.settings;
        let state = self.keys.entry(key_id.clone()).or_insert_with(|| KeyState {
            workspace_id: o.workspace_id.clone(),
            rate: RateBaseline::new(o.time),
            client_ips: ClientIpHistory::default(),
            last_seen: o.time,
            last_alert: [None; AnomalyKind::ALL.len()],
        });
        state.last_seen = state.last_seen.max(o.time);
        let warmed_up = state.rate.minutes_observed() >= i64::from(settings.warmup_minutes);
        let raise = |state: &mut KeyState, kind: AnomalyKind, evidence: Value| {
            let last = &mut state.last_alert[kind.index()];
            if last.is_some_and(|at| o.time.as_millis() - at.as_millis() < settings.cooldown_ms) {
                return None;
            }
            *last = Some(o.time);
            Some(Anomaly {
                kind,
                severity: kind.severity(),
                workspace_id: state.workspace_id.clone(),
                key_id: Some(key_id.clone()),
                client_ip: o.client_ip,
                time: o.time,
                evidence: match evidence {
                    Value::Object(map) => map,
                    _ => Map::new(),
                },
            })
        };

        if o.replaced {
            found.extend(raise(
                state,
                AnomalyKind::UsedAfterRotation,
                json!({ "outcome": o.outcome.as_str() }),
            ));
        }

        let this_minute = state.rate.count(o.time);
        let baseline = state.rate.per_minute();
        let spike_at = (baseline * settings.rate_factor).max(settings.rate_min_calls as f64);
        if warmed_up && this_minute as f64 > spike_at {
            found.extend(raise(
                state,
                AnomalyKind::RateSpike,
                json!({
                    "callsThisMinute": this_minute,
                    "baselinePerMinute": round2(baseline),
                    "threshold": round2(spike_at),
                }),
            ));
        }

        if let Some(ip) = o.client_ip {
            let window = settings.new_ip_window_ms;
            let new_recently = state.client_ips.see(ip, o.time, !warmed_up, window);
            if warmed_up && new_recently >= settings.new_ip_threshold as usize {
                let sample = state.client_ips.recent_new(o.time, window, 5);
                found.extend(raise(
                    state,
                    AnomalyKind::NewClientIps,
                    json!({
                        "newAddresses": new_recently,
                        "windowMs": window,
                        "knownAddresses": state.client_ips.known(),
                        "sample": sample.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    }),
                ));
            }
        }

        if let Some(credits) = o.credits
            && credits.spent > 0
        {
            let low_mark = match credits.refill_amount {
                Some(amount) => (amount as f64 * settings.credits_low_fraction).floor() as i64,
                None => settings.credits_low_absolute,
            };
            let before = credits.remaining.saturating_add(credits.spent);
            if credits.remaining <= low_mark && before > low_mark {
                found.extend(raise(
                    state,
                    AnomalyKind::CreditsLow,
                    json!({ "remaining": credits.remaining, "lowMark": low_mark }),
                ));
            }
        }
        found
    }

    fn observe_unknown_key(&mut self, o: &Observation<'_>, found: &mut Vec<Anomaly>) {
        let Some(ip) = o.client_ip else {
            return;
        };
        let count = self.probes.record(o.workspace_id, ip, o.time);
        if count < self.settings.probe_threshold as usize {
            return;
        }
        if self
            .probes
            .alert_due(o.workspace_id, ip, o.time, self.settings.cooldown_ms)
        {
            found.push(Anomaly {
                kind: AnomalyKind::UnknownKeyProbing,
                severity: AnomalyKind::UnknownKeyProbing.severity(),
                workspace_id: o.workspace_id.clone(),
                key_id: None,
                client_ip: Some(ip),
                time: o.time,
                evidence: match json!({
                    "unknownKeys": count,
                    "windowMs": self.settings.probe_window_ms,
                }) {
                    Value::Object(map) => map,
                    _ => Map::new(),
                },
            });
        }
    }

    /// Forgets keys and addresses idle for longer than `idle_ms`, so memory follows the
    /// active keys; returns how many keys were dropped.
    pub fn forget_idle(&mut self, now: UnixMillis) -> usize {
        let idle = self.settings.idle_ms;
        let before = self.keys.len();
        self.keys
            .retain(|_, state| now.as_millis() - state.last_seen.as_millis() < idle);
        self.probes.forget_before(now, self.settings.cooldown_ms);
        before - self.keys.len()
    }

    /// Forgets one key (deleted: its id will not come back).
    pub fn forget_key(&mut self, key: &KeyId) {
        self.keys.remove(key);
    }

    pub fn tracked_keys(&self) -> usize {
        self.keys.len()
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests;
