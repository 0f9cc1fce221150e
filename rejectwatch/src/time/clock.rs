//! The wall clock, for the edges only: the live source maps the kernel's
//! CLOCK_MONOTONIC record stamps to Unix-epoch time, so live records carry
//! wall-clock time like capture files do (the offset is taken once at
//! start: record order and spacing stay those of the kernel), and the
//! command line and the API stamp what an operator does now. The core never
//! calls this module.

use super::Nanos;

fn clock_ns(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid clock id and out-pointer.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The wall clock now, in Unix nanoseconds (0 before 1970).
pub fn wall_now() -> Nanos {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as Nanos)
}

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    offset: i128,
}

impl Clock {
    pub fn new() -> Self {
        let mono = clock_ns(libc::CLOCK_MONOTONIC) as i128;
        let real = clock_ns(libc::CLOCK_REALTIME) as i128;
        Self { offset: real - mono }
    }

    /// Wall-clock nanoseconds for a `bpf_ktime_get_ns()` value.
    pub fn to_wall(&self, mono_ns: u64) -> Nanos {
        (mono_ns as i128 + self.offset).max(0) as Nanos
    }

    /// The source's "now", on the records' time line: what the live loop
    /// hands the core when no record arrives, so expiry still happens.
    pub fn now(&self) -> Nanos {
        self.to_wall(clock_ns(libc::CLOCK_MONOTONIC))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
