//! Time, in one place. The core counts in record time: [`Nanos`] since the
//! Unix epoch as records and log lines carry it, and whole [`Secs`] where
//! detectors and the blocklist keep it per key. Reading time from text
//! (access logs' stamps, RFC 3339) is [`logtime`]; the wall clock, read only
//! at the edges (sources, sinks, the command line), is [`clock`].

pub mod clock;
pub mod logtime;

use std::time::Duration;

/// Nanoseconds since the Unix epoch, as carried by records. The core takes
/// its notion of "now" from these, never from the wall clock.
pub type Nanos = u64;

/// Record time in whole seconds since the Unix epoch (fits until 2106).
pub type Secs = u32;

/// An instant in whole seconds: rounded down, and past 2106 held there.
pub fn secs(ts: Nanos) -> Secs {
    (ts / 1_000_000_000).min(Secs::MAX as u64) as Secs
}

/// A configured duration in whole seconds, at least one (a zero window or
/// lifetime would mean "never"; configs refuse it where it matters) and at
/// most what [`Secs`] holds.
pub fn duration_secs(d: Duration) -> Secs {
    d.as_secs().clamp(1, Secs::MAX as u64) as Secs
}

/// RFC 3339 in UTC with nanoseconds, e.g. `2026-11-22T02:18:35.123456789Z`.
pub fn format_ts(ts: Nanos) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_nanos(ts);
    humantime::format_rfc3339_nanos(t).to_string()
}

/// Serializes a [`Nanos`] as [`format_ts`] writes it (`serialize_with`).
pub fn serialize_ts<S: serde::Serializer>(ts: &Nanos, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_ts(*ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_clamping_rule() {
        assert_eq!(secs(1_999_999_999), 1);
        assert_eq!(secs(u64::MAX), Secs::MAX);
        assert_eq!(duration_secs(Duration::from_millis(1500)), 1);
        assert_eq!(duration_secs(Duration::ZERO), 1);
        assert_eq!(duration_secs(Duration::from_secs(u64::MAX)), Secs::MAX);
        assert_eq!(format_ts(1_700_000_000_000_000_001), "2023-11-14T22:13:20.000000001Z");
    }
}
