//! One module per signal of docs/detection.md. Each holds its typed config
//! (`Spec`: serde, humantime durations, unknown fields refused, the
//! defaults docs/detection.md gives), its validation, and the detector it
//! builds. Client-keyed signals keep their per-client part in the shared
//! client table (`State`); the others keep their own bounded tables.

pub mod burst;
pub mod convergence;
pub mod credential;
pub mod disclosure;
pub mod enumeration;
pub mod header_bypass;
pub mod hostile;
pub mod injection;
pub mod policy;
pub mod rotation;
pub mod scraping;
pub mod sensitive;
pub mod single_path;
pub mod spoofing;
pub mod stripped;
pub mod tool_spread;
pub mod unusual_method;

use std::time::Duration;

use super::{Detector, Obs, client::ClientState, evidence::Signal, window::Secs};

/// [`Any`]: one variant a detector, and `Detector` by a match over them.
macro_rules! any_detector {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// A built detector of any kind. A match rather than a `Box<dyn
        /// Detector>`: every exchange goes to all sixteen and most return
        /// at their first test, which dispatched statically is inlined into
        /// the engine's loop instead of costing an indirect call apiece.
        pub enum Any {
            $($variant($ty)),*
        }

        impl Detector for Any {
            #[inline]
            fn observe(&mut self, o: &Obs<'_>, c: &mut ClientState, out: &mut Vec<Signal>) {
                match self {
                    $(Any::$variant(d) => d.observe(o, c, out)),*
                }
            }

            fn sweep(&mut self, now: Secs) {
                match self {
                    $(Any::$variant(d) => d.sweep(now)),*
                }
            }

            fn keys(&self) -> usize {
                match self {
                    $(Any::$variant(d) => d.keys()),*
                }
            }

            fn save(&self) -> Result<Vec<u8>, super::snapshot::Error> {
                match self {
                    $(Any::$variant(d) => d.save()),*
                }
            }

            fn restore(&mut self, saved: &[u8]) -> Result<(), super::snapshot::Error> {
                match self {
                    $(Any::$variant(d) => d.restore(saved)),*
                }
            }
        }

        $(
            impl From<$ty> for Any {
                fn from(d: $ty) -> Self {
                    Any::$variant(d)
                }
            }
        )*
    };
}

any_detector! {
    SinglePath(single_path::SinglePath),
    ToolSpread(tool_spread::ToolSpread),
    Convergence(convergence::Convergence),
    Spoofing(spoofing::Spoofing),
    Stripped(stripped::Stripped),
    Rotation(rotation::Rotation),
    Credential(credential::Credential),
    Enumeration(enumeration::Enumeration),
    HeaderBypass(header_bypass::HeaderBypass),
    Injection(injection::Injection),
    UnusualMethod(unusual_method::UnusualMethod),
    Scraping(scraping::Scraping),
    Sensitive(sensitive::Sensitive),
    Hostile(hostile::Hostile),
    Policy(policy::Policy),
    Burst(burst::Burst),
}

pub fn secs(d: Duration) -> Secs {
    d.as_secs().clamp(1, u32::MAX as u64) as Secs
}

/// Validation helpers: one-line messages naming the field.
pub fn positive(name: &str, v: u64) -> Result<(), String> {
    if v == 0 { Err(format!("{name}: must be at least 1")) } else { Ok(()) }
}

pub fn at_most(name: &str, v: u64, max: u64) -> Result<(), String> {
    if v > max { Err(format!("{name}: {v} is more than the maximum {max}")) } else { Ok(()) }
}

pub fn nonzero_duration(name: &str, d: Duration) -> Result<(), String> {
    if d.as_secs() == 0 { Err(format!("{name}: must be at least 1s")) } else { Ok(()) }
}

/// The first `n` characters of attacker-controlled text, for a summary.
pub fn clip(s: &str, n: usize) -> String {
    // Nearly every path is short printable ASCII, copied as it is: no
    // more bytes than `n` is no more characters, and none is a control.
    if s.len() <= n && s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n).filter(|c| !c.is_control()).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clip_keeps_short_text_and_cuts_long_text_by_characters() {
        assert_eq!(clip("/.env", 10), "/.env");
        assert_eq!(clip("/abcdef", 3), "/ab…");
        assert_eq!(clip("/a\u{7f}b\tc", 10), "/abc");
        assert_eq!(clip("/ünïcode", 4), "/ünï…");
        assert_eq!(clip("/ünï", 4), "/ünï");
        assert_eq!(clip("", 4), "");
    }
}
