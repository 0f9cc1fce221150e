//! Prefetch hints: asking for cache lines a few steps before they are
//! read, so that a batch's cache misses overlap instead of following one
//! another (the client table's walks in `detect::keyed`, the GeoIP tables'
//! in `enrich::geo`). A hint never faults and changes no result; off
//! x86-64 it is nothing.

/// The start of every 64-byte cache line that `len` bytes at `addr` touch.
pub(crate) fn lines(addr: usize, len: usize) -> std::iter::StepBy<std::ops::Range<usize>> {
    (addr & !63..addr + len).step_by(64)
}

/// A prefetch hint for every cache line the `T` at `p` spans. Every line,
/// counted from the line `p` starts in: a slot of the client table is 176
/// bytes, so stepping 64 bytes from `p` fetched three lines where half the
/// slots lie across four, and the one left out held the key that
/// `Keyed::touch` compares first.
#[inline(always)]
pub fn read<T>(p: *const T) {
    if !p.is_null() {
        for at in lines(p.addr(), size_of::<T>()) {
            line(p.with_addr(at).cast());
        }
    }
}

/// A prefetch hint for the cache line at `p`.
#[inline(always)]
pub(crate) fn line(p: *const i8) {
    // SAFETY: a prefetch is a hint; it never faults, whatever the address,
    // and reads nothing the program sees.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefetch_covers_every_line_an_object_spans() {
        for addr in (4096..4096 + 128).step_by(8) {
            for len in [1, 17, 64, 88, 176, 192] {
                let got: Vec<usize> = lines(addr, len).collect();
                let want: Vec<usize> = (addr / 64..=(addr + len - 1) / 64).map(|l| l * 64).collect();
                assert_eq!(got, want, "{len} bytes at {addr}");
            }
        }
        assert_eq!(lines(4096 + 32, 176).count(), 4);
    }
}
