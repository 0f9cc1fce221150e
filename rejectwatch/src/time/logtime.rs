//! Timestamps as access logs write them, to Unix nanoseconds, without
//! allocating: `10/Oct/2000:13:55:36 -0700` (common/combined), RFC 3339
//! with any offset, and epoch seconds or milliseconds.

use super::Nanos;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn num(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |a, c| a * 10 + (c - b'0') as i64))
}

fn to_nanos(days: i64, secs_of_day: i64, frac_ns: i64, offset_s: i64) -> Option<Nanos> {
    let t = (days * 86400 + secs_of_day - offset_s) as i128 * 1_000_000_000 + frac_ns as i128;
    u64::try_from(t).ok()
}

fn month(b: &[u8]) -> Option<i64> {
    const M: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    M.iter().position(|m| m.as_slice() == b).map(|i| i as i64 + 1)
}

fn valid(mo: i64, d: i64, h: i64, mi: i64, s: i64) -> bool {
    (1..=12).contains(&mo) && (1..=31).contains(&d) && h < 24 && mi < 60 && s <= 60
}

/// `10/Oct/2000:13:55:36 -0700`.
pub fn clf(s: &str) -> Option<Nanos> {
    let b = s.as_bytes();
    if b.len() != 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b' ' {
        return None;
    }
    let (d, mo, y) = (num(&b[0..2])?, month(&b[3..6])?, num(&b[7..11])?);
    let (h, mi, sec) = (num(&b[12..14])?, num(&b[15..17])?, num(&b[18..20])?);
    if !valid(mo, d, h, mi, sec) {
        return None;
    }
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let off = sign * (num(&b[22..24])? * 3600 + num(&b[24..26])? * 60);
    to_nanos(days_from_civil(y, mo, d), h * 3600 + mi * 60 + sec, 0, off)
}

/// HAProxy's accept date, `06/Feb/2009:12:14:14.655`: the host's local
/// time without its offset, read as UTC (HAProxy hosts mostly run in UTC).
pub fn haproxy(s: &str) -> Option<Nanos> {
    let b = s.as_bytes();
    if b.len() < 22 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b'.' {
        return None;
    }
    let (d, mo, y) = (num(&b[0..2])?, month(&b[3..6])?, num(&b[7..11])?);
    let (h, mi, sec) = (num(&b[12..14])?, num(&b[15..17])?, num(&b[18..20])?);
    if !valid(mo, d, h, mi, sec) || b[14] != b':' || b[17] != b':' {
        return None;
    }
    let frac = &b[21..];
    if frac.len() > 9 {
        return None;
    }
    let ns = num(frac)? * 10i64.pow(9 - frac.len() as u32);
    to_nanos(days_from_civil(y, mo, d), h * 3600 + mi * 60 + sec, ns, 0)
}

/// `Dec  7 14:00:00` or `Dec 07 14:00:00` (syslog, journald): whether
/// `s` starts with one; such stamps carry no year, so it is not read.
pub fn bsd_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 15
        && month(&b[0..3]).is_some()
        && b[3] == b' '
        && (b[4] == b' ' || b[4].is_ascii_digit())
        && b[5].is_ascii_digit()
        && b[6] == b' '
        && num(&b[7..9]).is_some()
        && b[9] == b':'
        && num(&b[10..12]).is_some()
        && b[12] == b':'
        && num(&b[13..15]).is_some()
}

/// RFC 3339 (`2026-11-22T10:00:00.123Z`, `…+02:00`; a space for `T` too).
pub fn rfc3339(s: &str) -> Option<Nanos> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (h, mi, sec) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if !valid(mo, d, h, mi, sec) {
        return None;
    }
    let mut i = 19;
    let mut frac = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                frac = frac * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start).min(9)..9 {
            frac *= 10;
        }
    }
    let off = match &b[i..] {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), hh @ ..] if hh.len() == 5 && hh[2] == b':' => {
            let o = num(&hh[0..2])? * 3600 + num(&hh[3..5])? * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    to_nanos(days_from_civil(y, mo, d), h * 3600 + mi * 60 + sec, frac, off)
}

/// Epoch seconds (possibly fractional) or, past year 33658, milliseconds.
pub fn epoch(v: f64) -> Option<Nanos> {
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    // Checked: a number past what nanoseconds since 1970 hold in a u64
    // (the year 2554) is a bad timestamp, not a wrapped one (fuzzing).
    if v > 1e12 {
        return (v.round() as Nanos).checked_mul(1_000_000);
    }
    // Whole seconds and the fraction apart: a product of the two loses the
    // nanoseconds at today's magnitudes.
    let whole = v.trunc();
    (whole as Nanos).checked_mul(1_000_000_000)?.checked_add(((v - whole) * 1e9).round() as Nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let t = 1_763_805_600_000_000_000u64; // 2025-11-22T10:00:00Z
        assert_eq!(clf("22/Nov/2025:10:00:00 +0000"), Some(t));
        assert_eq!(clf("22/Nov/2025:12:00:00 +0200"), Some(t));
        assert_eq!(clf("22/Nov/2025:03:00:00 -0700"), Some(t));
        assert_eq!(rfc3339("2025-11-22T10:00:00Z"), Some(t));
        assert_eq!(rfc3339("2025-11-22T10:00:00.5Z"), Some(t + 500_000_000));
        assert_eq!(rfc3339("2025-11-22 11:00:00.000000001+01:00"), Some(t + 1));
        assert_eq!(rfc3339("2025-11-22T10:00:00"), Some(t));
        assert_eq!(epoch(1_763_805_600.0), Some(t));
        assert_eq!(epoch(1_763_805_600_000.0), Some(t));
        assert_eq!(clf("2000-01-01"), None);
        for bad in [
            "",
            "22/Foo/2025:10:00:00 +0000",
            "32/Nov/2025:10:00:00 +0000",
            "22/Nov/2025:25:00:00 +0000",
            "22/Nov/2025:10:00:00 0000",
        ] {
            assert_eq!(clf(bad), None, "{bad}");
        }
        for bad in ["2025-13-01T00:00:00Z", "2025-11-22T10:00:00+0200", "2025-11-22T10:00:00.Z", "garbage"] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
        assert_eq!(epoch(-1.0), None);
        assert_eq!(haproxy("22/Nov/2025:10:00:00.5"), Some(t + 500_000_000));
        assert_eq!(haproxy("22/Nov/2025:10:00:00.123456"), Some(t + 123_456_000));
        for bad in ["22/Nov/2025:10:00:00", "22/Nov/2025:10:00:00.", "22/Nov/2025:10:00:00.x", "22/Nov/2025:10-00:00.1"]
        {
            assert_eq!(haproxy(bad), None, "{bad}");
        }
        assert!(bsd_stamp("Dec  7 14:00:00 host") && bsd_stamp("Dec 07 14:00:00"));
        assert!(!bsd_stamp("Dex 07 14:00:00") && !bsd_stamp("Dec 07 14:00") && !bsd_stamp("Dec 07 1a:00:00"));
    }

    #[test]
    fn epochs_too_late_for_nanoseconds_are_bad() {
        // Found by the accesslog fuzz target: these overflowed the product.
        assert_eq!(epoch(4.4e19), None);
        assert_eq!(epoch(1e11), None);
        assert_eq!(epoch(1e18), None);
        assert_eq!(epoch(f64::MAX), None);
        // The last second that fits, and the last millisecond.
        assert_eq!(epoch(18_446_744_073.0), Some(18_446_744_073_000_000_000));
        assert_eq!(epoch(18_446_744_073_709.0), Some(18_446_744_073_709_000_000));
    }
}
