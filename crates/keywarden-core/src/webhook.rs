//! Webhooks: which events a workspace can subscribe to, how a delivery is signed, and when a
//! failed delivery is tried again.
//!
//! Signing follows the Standard Webhooks scheme, so receivers can use its libraries: the
//! headers `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`
//! (`v1,` + base64 of HMAC-SHA256 over `"{id}.{timestamp}.{body}"`, keyed with the bytes of
//! the endpoint's secret, which is shown to users as `whsec_` + base64).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::anomaly::AnomalyKind;

/// The secret prefix Standard Webhooks libraries expect.
const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret.
const SECRET_BYTES: usize = 32;

/// The key a webhook endpoint's deliveries are signed with.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be `whsec_` followed by the standard base64 of 24 to 64 bytes")]
pub struct InvalidWebhookSecret;

impl WebhookSecret {
    /// A fresh secret from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        crate::random::fill(&mut bytes);
        Self(bytes)
    }

    /// Parses the `whsec_…` form.
    pub fn parse(text: &str) -> Result<Self, InvalidWebhookSecret> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(InvalidWebhookSecret)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| InvalidWebhookSecret)?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(InvalidWebhookSecret);
        }
        Ok(Self(bytes))
    }

    /// The `whsec_…` form, shown to the endpoint's owner and stored.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// The `webhook-signature` header value for one delivery.
    pub fn sign(&self, message_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(message_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_secs.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// What a webhook endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WebhookEventType {
    KeyCreated,
    KeyUpdated,
    KeyDeleted,
    KeyRerolled,
    KeyExpiringSoon,
    KeyCreditsLow,
    AnomalyRateSpike,
    AnomalyNewClientIps,
    AnomalyUsedAfterRotation,
    AnomalyUnknownKeyProbing,
    /// A key was reported as leaked (a Keywarden extension).
    KeyLeaked,
}

impl WebhookEventType {
    pub const ALL: [Self; 11] = [
        Self::KeyCreated,
        Self::KeyUpdated,
        Self::KeyDeleted,
        Self::KeyRerolled,
        Self::KeyExpiringSoon,
        Self::KeyCreditsLow,
        Self::AnomalyRateSpike,
        Self::AnomalyNewClientIps,
        Self::AnomalyUsedAfterRotation,
        Self::AnomalyUnknownKeyProbing,
        Self::KeyLeaked,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::KeyCreated => "key.created",
            Self::KeyUpdated => "key.updated",
            Self::KeyDeleted => "key.deleted",
            Self::KeyRerolled => "key.rerolled",
            Self::KeyExpiringSoon => "key.expiring_soon",
            Self::KeyCreditsLow => "key.credits_low",
            Self::AnomalyRateSpike => "anomaly.rate_spike",
            Self::AnomalyNewClientIps => "anomaly.new_client_ips",
            Self::AnomalyUsedAfterRotation => "anomaly.used_after_rotation",
            Self::AnomalyUnknownKeyProbing => "anomaly.unknown_key_probing",
            Self::KeyLeaked => "key.leaked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// The event an anomaly is delivered as. Low credits are a property of the key more
    /// than an attack, so they go out as a key event.
    pub const fn of_anomaly(kind: AnomalyKind) -> Self {
        match kind {
            AnomalyKind::RateSpike => Self::AnomalyRateSpike,
            AnomalyKind::NewClientIps => Self::AnomalyNewClientIps,
            AnomalyKind::UsedAfterRotation => Self::AnomalyUsedAfterRotation,
            AnomalyKind::UnknownKeyProbing => Self::AnomalyUnknownKeyProbing,
            AnomalyKind::CreditsLow => Self::KeyCreditsLow,
        }
    }
}

/// When failed deliveries are tried again: exponentially further apart, then given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait after the first failure; each later wait is `factor` times the one before…
    pub first_delay: Duration,
    pub factor: u32,
    /// …but never longer than this.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 s, 30 s, 3 min, 18 min, 108 min, then every 2 h: 12 attempts over about 14 hours.
    fn default() -> Self {
        Self {
            max_attempts: 12,
            first_delay: Duration::from_secs(5),
            factor: 6,
            max_delay: Duration::from_secs(2 * 60 * 60),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `failed + 1` after `failed` failed attempts, or `None` when
    /// the delivery has used all its attempts.
    pub fn delay_after(&self, failed: u32) -> Option<Duration> {
        if failed == 0 || failed >= self.max_attempts {
            return None;
        }
        let mut delay = self.first_delay;
        for _ in 1..failed {
            delay = delay.saturating_mul(self.factor);
            if delay >= self.max_delay {
                return Some(self.max_delay);
            }
        }
        Some(delay.min(self.max_delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_standard_webhooks_reference() {
        // The example of the Standard Webhooks specification's test suite.
        let secret =
            WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let signature = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn any_change_changes_the_signature() {
        let secret = WebhookSecret::generate();
        let base = secret.sign("msg_1", 100, b"{}");
        assert_ne!(base, secret.sign("msg_2", 100, b"{}"));
        assert_ne!(base, secret.sign("msg_1", 101, b"{}"));
        assert_ne!(base, secret.sign("msg_1", 100, b"{ }"));
        assert_ne!(base, WebhookSecret::generate().sign("msg_1", 100, b"{}"));
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let secret = WebhookSecret::generate();
        let shown = secret.expose();
        assert!(shown.starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&shown), Ok(secret));
        for bad in [
            "",
            "whsec_",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_!!!!",
            "whsec_AAAA",
        ] {
            assert_eq!(
                WebhookSecret::parse(bad),
                Err(InvalidWebhookSecret),
                "{bad}"
            );
        }
        assert_eq!(
            format!("{:?}", WebhookSecret::generate()),
            "WebhookSecret(..)"
        );
    }

    #[test]
    fn retries_back_off_then_give_up() {
        let policy = RetryPolicy::default();
        let delays: Vec<_> = (1..=12).map(|n| policy.delay_after(n)).collect();
        assert_eq!(delays[0], Some(Duration::from_secs(5)));
        assert_eq!(delays[1], Some(Duration::from_secs(30)));
        assert_eq!(delays[2], Some(Duration::from_secs(180)));
        assert_eq!(delays[3], Some(Duration::from_secs(1080)));
        assert_eq!(delays[4], Some(Duration::from_secs(6480)));
        assert_eq!(delays[5], Some(Duration::from_secs(7200)));
        assert_eq!(delays[10], Some(Duration::from_secs(7200)));
        assert_eq!(delays[11], None);
        assert_eq!(policy.delay_after(0), None);
    }

    #[test]
    fn event_types_round_trip() {
        for t in WebhookEventType::ALL {
            assert_eq!(WebhookEventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(WebhookEventType::parse("key.exploded"), None);
        assert_eq!(
            WebhookEventType::of_anomaly(AnomalyKind::CreditsLow),
            WebhookEventType::KeyCreditsLow
        );
    }
}
