//! One module per signal of docs/detection.md. Each holds its typed config
//! (`Spec`: serde, humantime durations, unknown fields refused, the
//! defaults docs/detection.md gives), its validation, and the detector it
//! builds. Client-keyed signals keep their per-client part in the shared
//! client row (`client.rs`); the others keep their own bounded tables.
//! The registry below lists every detector once: a new one is its module
//! and one line there.

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

use serde::Deserialize;

use super::{Detector, Obs, client::ClientState, evidence::Signal, knowledge::Knowledge};
use crate::time::Secs;

/// The registry: every detector once, in evaluation order. From it come
/// [`DetectorSpec`] (its config table, read by `kind`), [`Any`] (the built
/// detector) and everything that goes from one to the other by kind.
/// A line is `Variant(module::Detector)`, with `with ...` naming what its
/// spec's `build` takes from [`Env`] beyond the spec itself. The one
/// detector driven by marks comes first and is built apart.
macro_rules! registry {
    (
        driven_by_marks: $mvariant:ident($mmodule:ident::$mty:ident);
        $($variant:ident($module:ident::$ty:ident) $(with $($arg:ident),+)?;)*
    ) => {
        /// One `[[detect.detector]]` table, by its `kind`.
        #[derive(Clone, Debug, PartialEq)]
        pub enum DetectorSpec {
            $($variant($module::Spec),)*
            $mvariant($mmodule::Spec),
        }

        impl DetectorSpec {
            /// Every detector with its defaults, in evaluation order.
            pub fn all_defaults() -> Vec<DetectorSpec> {
                vec![$(Self::$variant(Default::default()),)* Self::$mvariant(Default::default())]
            }

            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $module::NAME,)*
                    Self::$mvariant(_) => $mmodule::NAME,
                }
            }

            pub fn validate(&self) -> Result<(), String> {
                match self {
                    $(Self::$variant(s) => s.validate(),)*
                    Self::$mvariant(s) => s.validate(),
                }
            }

            /// The spec of kind `kind` read from its table; `None` for a
            /// kind no detector has.
            fn read<E: serde::de::Error>(kind: &str, body: toml::Value) -> Option<Result<Self, E>> {
                Some(match kind {
                    $($module::NAME => read_table(kind, body).map(Self::$variant),)*
                    $mmodule::NAME => read_table(kind, body).map(Self::$mvariant),
                    _ => return None,
                })
            }

            /// The detector and its cooldown; `None` for the one the
            /// engine drives from marks rather than exchanges.
            pub fn build(&self, env: &Env<'_>) -> Option<(Secs, Any)> {
                match self {
                    $(Self::$variant(x) => Some((crate::time::duration_secs(x.cooldown), Any::$variant(x.build($($(env.$arg),+)?)))),)*
                    Self::$mvariant(_) => None,
                }
            }

            /// The detector driven by marks, when this spec is its.
            pub fn build_marks(&self) -> Option<$mmodule::$mty> {
                match self {
                    Self::$mvariant(x) => Some(x.build()),
                    _ => None,
                }
            }
        }

        /// A built detector of any kind. A match rather than a `Box<dyn
        /// Detector>`: every exchange goes to all of them and most return
        /// at their first test, which dispatched statically is inlined into
        /// the engine's loop instead of costing an indirect call apiece.
        pub enum Any {
            $($variant($module::$ty)),*
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

            fn save(&self) -> Result<Vec<u8>, super::codec::Error> {
                match self {
                    $(Any::$variant(d) => d.save()),*
                }
            }

            fn restore(&mut self, saved: &[u8]) -> Result<(), super::codec::Error> {
                match self {
                    $(Any::$variant(d) => d.restore(saved)),*
                }
            }
        }
    };
}

registry! {
    // Judges what clients do after a disclosure mark, not each exchange.
    driven_by_marks: Disclosure(disclosure::Disclosure);
    SinglePath(single_path::SinglePath);
    ToolSpread(tool_spread::ToolSpread);
    Convergence(convergence::Convergence);
    Spoofing(spoofing::Spoofing);
    Stripped(stripped::Stripped);
    Rotation(rotation::Rotation);
    Credential(credential::Credential);
    Enumeration(enumeration::Enumeration);
    HeaderBypass(header_bypass::HeaderBypass);
    Injection(injection::Injection) with knowledge;
    UnusualMethod(unusual_method::UnusualMethod);
    Scraping(scraping::Scraping);
    Sensitive(sensitive::Sensitive) with knowledge;
    Hostile(hostile::Hostile);
    Policy(policy::Policy);
    Burst(burst::Burst) with login_endpoints;
}

/// What a spec's `build` may take beyond the spec itself.
pub struct Env<'a> {
    pub knowledge: &'a Knowledge,
    /// One notion of a login for every detector: credential-scanning's.
    pub login_endpoints: &'a [String],
}

/// By hand rather than serde's `tag = "kind"`: that buffers the table
/// before choosing the spec, and a bad value then came out as "line 4:
/// invalid value: string \"5 parsecs\", expected a duration", naming
/// neither the field nor the detector. Read as a TOML table first, the
/// spec's error knows its key: "detect.detector scraping: window: ...".
impl<'de> Deserialize<'de> for DetectorSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut table = toml::Table::deserialize(d)?;
        let kind = match table.remove("kind") {
            Some(toml::Value::String(k)) => k,
            Some(other) => return Err(D::Error::custom(format!("detect.detector kind: {other} is not a string"))),
            None => return Err(D::Error::custom("detect.detector: missing field `kind`")),
        };
        Self::read(&kind, toml::Value::Table(table)).unwrap_or_else(|| {
            let known = Self::all_defaults().iter().map(|d| format!("`{}`", d.name())).collect::<Vec<_>>().join(", ");
            Err(D::Error::custom(format!("detect.detector kind: unknown `{kind}`, expected one of {known}")))
        })
    }
}

fn read_table<T: serde::de::DeserializeOwned, E: serde::de::Error>(kind: &str, body: toml::Value) -> Result<T, E> {
    T::deserialize(body).map_err(|e| E::custom(format!("detect.detector {kind}: {}", keyed_message(&e))))
}

/// A TOML value error as `key: message`: the key is only in the error's
/// text, as a last line "in `key`".
fn keyed_message(e: &toml::de::Error) -> String {
    let text = e.to_string();
    let key = text.lines().rev().find_map(|l| l.trim().strip_prefix("in `")?.strip_suffix('`'));
    let message = e.message().replace('\n', " ");
    match key {
        Some(k) => crate::config::value::keyed(k, &message),
        None => message,
    }
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
