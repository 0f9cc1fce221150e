//! Comparisons of short ASCII texts (header names, methods) a word at a
//! time. Every exchange compares a dozen names against the ones the core
//! looks for; the standard library's case-insensitive comparison lowers
//! and compares one byte at a time (~13 instructions a byte: 186 for the
//! `Content-Length` of a one-header response), and its exact one calls
//! `memcmp` for a handful of bytes.

/// `b` in every byte of a word.
const fn splat(b: u8) -> u64 {
    0x0101_0101_0101_0101 * b as u64
}

/// ASCII upper-case letters of a word of bytes lowered, every other byte
/// as it is. Each byte's sums stay below 0x100, so no carry crosses bytes.
#[inline(always)]
fn lower8(x: u64) -> u64 {
    let low7 = x & splat(0x7f);
    let at_least_a = low7 + splat(0x80 - b'A');
    let past_z = low7 + splat(0x80 - b'Z' - 1);
    let upper = at_least_a & !past_z & !x & splat(0x80);
    x | (upper >> 2)
}

/// The word at `at` (little-endian); `at + 8 <= b.len()`.
#[inline(always)]
fn word(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"))
}

/// The four bytes at `at`, widened; `at + 4 <= b.len()`.
#[inline(always)]
fn half(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes(b[at..at + 4].try_into().expect("four bytes")))
}

/// Compares `a` and `b`, of equal length, a word at a time after `f`:
/// whole words, then the last word overlapping the one before (or two
/// overlapping half words under eight bytes).
#[inline(always)]
fn eq_by(a: &[u8], b: &[u8], f: impl Fn(u64) -> u64) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1..=3 => a.iter().zip(b).all(|(x, y)| f(u64::from(*x)) == f(u64::from(*y))),
        4..=7 => f(half(a, 0)) == f(half(b, 0)) && f(half(a, n - 4)) == f(half(b, n - 4)),
        _ => {
            let mut at = 0;
            while at + 8 < n {
                if f(word(a, at)) != f(word(b, at)) {
                    return false;
                }
                at += 8;
            }
            f(word(a, n - 8)) == f(word(b, n - 8))
        }
    }
}

/// `a == b` ignoring ASCII case, as `eq_ignore_ascii_case` decides it.
#[inline]
pub fn eq_ignore_case(a: &str, b: &str) -> bool {
    eq_by(a.as_bytes(), b.as_bytes(), lower8)
}

/// `a == b`, without a call to `memcmp` for a short text.
#[inline]
pub fn eq(a: &str, b: &str) -> bool {
    eq_by(a.as_bytes(), b.as_bytes(), |w| w)
}

/// The bit a text of `len` bytes sets in a set of lengths kept as one
/// word (bit 63: 63 bytes or more): a name whose length's bit is not in
/// the set of the names looked for is passed over without a comparison.
pub const fn length_bit(len: usize) -> u64 {
    1 << if len < 63 { len } else { 63 }
}

/// `s.trim()`, returning at once when both ends are visible ASCII (nearly
/// every user agent and header value): `str::trim` decodes a char at each
/// end before it knows.
#[inline]
pub fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(a), Some(z)) if a.is_ascii_graphic() && z.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_standard_library_on_every_byte_and_length() {
        // Every byte against every case-variant position, at lengths that
        // take each path (bytewise, half words, whole and overlapping words).
        let base = b"content-length-transfer-encoding";
        for n in 0..=base.len() {
            for at in 0..n {
                for byte in 0..=255u8 {
                    let mut a = base[..n].to_vec();
                    a[at] = byte;
                    let b = &base[..n];
                    let (a, b) = (String::from_utf8_lossy(&a).into_owned(), std::str::from_utf8(b).unwrap());
                    if a.len() != n {
                        continue; // not one byte of UTF-8
                    }
                    assert_eq!(eq_ignore_case(&a, b), a.eq_ignore_ascii_case(b), "{a:?} {b:?}");
                    assert_eq!(eq(&a, b), a == b, "{a:?} {b:?}");
                }
            }
        }
    }

    #[test]
    fn every_byte_pair_lowers_as_ascii_does() {
        for x in 0..=255u8 {
            for y in 0..=255u8 {
                // The byte at two places among fixed neighbours, both letters' edges.
                let w = |b: u8| u64::from(b) << 16 | u64::from(b) << 48 | 0x7b40_0000_4100_005a;
                assert_eq!(lower8(w(x)) == lower8(w(y)), x.eq_ignore_ascii_case(&y), "{x:#x} {y:#x}");
            }
        }
        assert_eq!(lower8(u64::from_le_bytes(*b"AZaz@[`{")), u64::from_le_bytes(*b"azaz@[`{"));
    }

    #[test]
    fn long_names_share_the_last_bit() {
        assert_eq!(length_bit(0), 1);
        assert_eq!(length_bit(13), 1 << 13);
        assert_eq!((length_bit(63), length_bit(64), length_bit(usize::MAX)), (1 << 63, 1 << 63, 1 << 63));
    }

    #[test]
    fn trims_as_str_does() {
        for t in ["", " ", "a", " a", "a ", "\u{a0}a", "a\u{2003}", "curl/8", "\tx\n", "é", " é ", "\u{a0}"] {
            assert_eq!(trim(t), t.trim(), "{t:?}");
        }
    }

    #[test]
    fn lengths_differ() {
        assert!(!eq_ignore_case("Host", "host:"));
        assert!(!eq("", "a"));
        assert!(eq_ignore_case("X-FORWARDED-FOR", "x-forwarded-for"));
        assert!(!eq_ignore_case("X-FORWARDED-FOX", "x-forwarded-for"));
    }
}
