//! What both backends share about storing verification events: table names and how values
//! are written (the batches' own encoding is in `usage_batch`).

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::net::IpAddr;

use keywarden_core::usage::{Granularity, VerificationEvent};

/// The workspaces that have stored events, found by skipping through the batches'
/// (workspace_id, last_time) index one workspace at a time (there is no index on time alone).
pub(crate) const WORKSPACES_WITH_EVENTS: &str = "WITH RECURSIVE w(id) AS (\
     SELECT min(workspace_id) FROM analytics_event_batches \
     UNION ALL SELECT (SELECT min(workspace_id) FROM analytics_event_batches \
     WHERE workspace_id > w.id) FROM w WHERE w.id IS NOT NULL) \
     SELECT id FROM w WHERE id IS NOT NULL";

/// The rollup table of each granularity.
pub(crate) const fn rollup_table(granularity: Granularity) -> &'static str {
    match granularity {
        Granularity::Minute => "analytics_verifications_per_minute",
        Granularity::Hour => "analytics_verifications_per_hour",
        Granularity::Day => "analytics_verifications_per_day",
        Granularity::Month => "analytics_verifications_per_month",
    }
}

/// The tags as stored: a JSON array of the strings, in the order given. Most requests have
/// none, and their `[]` is not built each time.
pub(crate) fn encode_tags(event: &VerificationEvent) -> Cow<'static, str> {
    if event.tags.is_empty() {
        return Cow::Borrowed("[]");
    }
    // A list of strings always serializes.
    Cow::Owned(serde_json::to_string(&event.tags).unwrap_or_else(|_| "[]".to_owned()))
}

/// An IP address in text, in a buffer long enough for any IPv6 form.
pub(crate) struct IpText {
    buf: [u8; 45],
    len: usize,
}

impl IpText {
    pub(crate) fn of(ip: IpAddr) -> Self {
        let mut text = Self {
            buf: [0; 45],
            len: 0,
        };
        match ip {
            // The common case, written digit by digit: `Display` goes through the formatting
            // machinery for each octet.
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push(b'.');
                    }
                    if octet >= 100 {
                        text.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        text.push(b'0' + octet / 10 % 10);
                    }
                    text.push(b'0' + octet % 10);
                }
            }
            // Never longer than the buffer, so the write cannot fail.
            IpAddr::V6(v6) => {
                let _ = write!(text, "{v6}");
            }
        }
        text
    }

    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits, dots, colons and hex letters are ever written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn addresses_read_as_their_display_form() {
        let samples: Vec<IpAddr> = vec![
            Ipv4Addr::new(0, 0, 0, 0).into(),
            Ipv4Addr::new(1, 20, 100, 255).into(),
            Ipv4Addr::new(192, 168, 10, 9).into(),
            Ipv4Addr::new(255, 255, 255, 255).into(),
            Ipv6Addr::LOCALHOST.into(),
            "2001:db8::8a2e:370:7334".parse().unwrap(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
            "::ffff:255.255.255.255".parse().unwrap(),
        ];
        for ip in samples {
            assert_eq!(IpText::of(ip).as_str(), ip.to_string());
        }
        for n in 0..=u8::MAX {
            let ip = IpAddr::from([n, n / 3, 255 - n, 7]);
            assert_eq!(IpText::of(ip).as_str(), ip.to_string());
        }
    }
}
