//! Signal 12, unusual methods: DELETE, PUT, PATCH on an endpoint that is
//! read-only, as declared in the config or as learned (only GET/HEAD have
//! ever succeeded there, `min_successes` times at least).

use std::time::Duration;

use serde::Deserialize;

use super::positive;
use crate::detect::{
    Detector, Obs,
    client::ClientState,
    evidence::{Signal, UNUSUAL_METHOD, emit},
    glob::Globs,
    window::h64,
};

pub const NAME: &str = "unusual-method";

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    pub methods: Vec<String>,
    /// Endpoint templates known to be read-only (`*` globs).
    pub read_only: Vec<String>,
    /// Learn read-only endpoints from traffic.
    pub learn: bool,
    /// Successful reads before an endpoint is learned as read-only.
    pub min_successes: u32,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            methods: ["DELETE", "PUT", "PATCH"].map(String::from).to_vec(),
            read_only: Vec::new(),
            learn: true,
            min_successes: 20,
            cooldown: Duration::from_secs(3600),
        }
    }
}

impl Spec {
    pub fn validate(&self) -> Result<(), String> {
        positive("min_successes", self.min_successes as u64)?;
        if let Some(m) = self.methods.iter().find(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(format!("methods: {m:?} is not an upper-case method name"));
        }
        Ok(())
    }
    pub fn build(&self) -> UnusualMethod {
        UnusualMethod { spec: self.clone(), read_only: Globs::new(&self.read_only) }
    }
}

pub struct UnusualMethod {
    spec: Spec,
    read_only: Globs,
}

impl Detector for UnusualMethod {
    fn observe(&mut self, o: &Obs<'_>, _c: &mut ClientState, out: &mut Vec<Signal>) {
        let m = &*o.ex.method;
        if !self.spec.methods.iter().any(|x| x == m) {
            return;
        }
        let declared = self.read_only.any(o.endpoint);
        let stats = o.ctx.endpoints.get(&o.ep).copied().unwrap_or_default();
        let learned = self.spec.learn && stats.successes >= self.spec.min_successes && stats.write_successes == 0;
        if !declared && !learned {
            return;
        }
        emit(out, || {
            Signal::new(
                NAME,
                UNUSUAL_METHOD,
                o.key.hash32() as u64 ^ o.ep ^ h64(m.as_bytes()),
                vec![o.key],
                format!(
                    "{} sent {m} to {}, which is read-only ({}), answered {}",
                    o.key,
                    o.endpoint,
                    if declared { "declared" } else { "only reads have succeeded there" },
                    o.status()
                ),
            )
            .endpoint(o.endpoint)
            .with("method", m)
            .with("status", o.status())
            .with("read_only", if declared { "declared" } else { "learned" })
            .with("successful_reads", stats.successes)
        });
    }
}
