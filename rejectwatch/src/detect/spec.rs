//! The `[detect]` section of the config: engine limits, the reject
//! statuses, cadence rules, and one typed spec per detector (`[[detect.detector]]`
//! tables tagged by `kind`). Every detector runs with docs/detection.md's
//! defaults unless a table overrides it or `disabled` names it.

use std::{sync::Arc, time::Duration};

use serde::Deserialize;

pub use super::signals::DetectorSpec;
use super::{
    cadence::CadenceRules,
    knowledge::{Knowledge, ListFile},
    signals::{self, credential, disclosure},
};
use crate::time::Secs;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CadenceSpec {
    /// A request after this much silence starts a new poll.
    #[serde(with = "humantime_serde")]
    pub burst_gap: Duration,
    /// Intervals needed before a period is estimated.
    pub min_intervals: u32,
    /// Median absolute deviation allowed, as a fraction of the period.
    pub tolerance: f64,
}

impl Default for CadenceSpec {
    fn default() -> Self {
        Self { burst_gap: Duration::from_secs(30), min_intervals: 4, tolerance: 0.1 }
    }
}

impl CadenceSpec {
    pub fn rules(&self) -> CadenceRules {
        CadenceRules {
            burst_gap: crate::time::duration_secs(self.burst_gap),
            min_intervals: self.min_intervals as usize,
            tolerance: self.tolerance,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Statuses that make up the reject pile.
    pub reject_statuses: Vec<u16>,
    /// Clients tracked at once (least recently seen dropped first).
    pub max_clients: usize,
    /// A client idle this long is forgotten.
    #[serde(with = "humantime_serde")]
    pub client_idle: Duration,
    pub max_endpoints: usize,
    pub max_actors: usize,
    /// Endpoint templates that are the API (`*` globs); empty: learned
    /// from where requests succeed.
    pub documented_endpoints: Vec<String>,
    /// Detectors (by kind) not to run.
    pub disabled: Vec<String>,
    pub cadence: CadenceSpec,
    /// Overrides of detector defaults, one table per kind.
    pub detector: Vec<DetectorSpec>,
    /// Files of knowledge added to the built-in data (payload tokens,
    /// probe and exploit paths, scanner names).
    pub lists: Vec<ListFile>,
    /// The built-in data and the lists, read by [`DetectConfig::load_lists`].
    #[serde(skip)]
    pub knowledge: Arc<Knowledge>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            reject_statuses: vec![401, 403, 404, 405, 410, 429],
            max_clients: 1_000_000,
            client_idle: Duration::from_secs(72 * 3600),
            max_endpoints: 100_000,
            max_actors: 100_000,
            documented_endpoints: Vec::new(),
            disabled: Vec::new(),
            cadence: CadenceSpec::default(),
            detector: Vec::new(),
            lists: Vec::new(),
            knowledge: Knowledge::builtin(),
        }
    }
}

impl DetectConfig {
    pub fn validate(&self) -> Result<(), String> {
        let p = "detect";
        if let Some(s) = self.reject_statuses.iter().find(|s| !(100..=999).contains(*s)) {
            return Err(format!("{p}.reject_statuses: {s} is not an HTTP status"));
        }
        for (name, v) in
            [("max_clients", self.max_clients), ("max_endpoints", self.max_endpoints), ("max_actors", self.max_actors)]
        {
            if v == 0 {
                return Err(format!("{p}.{name}: must be at least 1"));
            }
        }
        if self.client_idle.as_secs() == 0 {
            return Err(format!("{p}.client_idle: must be at least 1s"));
        }
        let c = &self.cadence;
        if c.burst_gap.as_secs() == 0 || c.min_intervals < 2 || !(0.0..1.0).contains(&c.tolerance) {
            return Err(format!(
                "{p}.cadence: burst_gap must be at least 1s, min_intervals at least 2, tolerance in [0, 1)"
            ));
        }
        let names: Vec<&str> = DetectorSpec::all_defaults().iter().map(|d| d.name()).collect();
        if let Some(d) = self.disabled.iter().find(|d| !names.contains(&d.as_str())) {
            return Err(format!("{p}.disabled: unknown detector {d:?} (known: {})", names.join(", ")));
        }
        let mut seen = Vec::new();
        for d in &self.detector {
            if seen.contains(&d.name()) {
                return Err(format!("{p}.detector: kind {:?} given twice", d.name()));
            }
            seen.push(d.name());
            d.validate().map_err(|e| format!("{p}.detector[kind={:?}].{e}", d.name()))?;
        }
        Ok(())
    }

    /// Reads the files `lists` names: at start, never on an exchange's path.
    pub fn load_lists(&mut self) -> Result<(), String> {
        if !self.lists.is_empty() {
            self.knowledge = Arc::new(Knowledge::load(&self.lists)?);
        }
        Ok(())
    }

    /// The enabled detectors (name, cooldown, detector) and disclosure.
    #[allow(clippy::type_complexity)]
    pub fn build(&self) -> (Vec<(&'static str, Secs, signals::Any)>, Option<disclosure::Disclosure>) {
        let mut out = Vec::new();
        let mut disc = None;
        // One notion of a login for every detector: credential-scanning's.
        let login_endpoints = self
            .detector
            .iter()
            .find_map(|d| match d {
                DetectorSpec::Credential(c) => Some(c.login_endpoints.clone()),
                _ => None,
            })
            .unwrap_or_else(|| credential::Spec::default().login_endpoints);
        let env = signals::Env { knowledge: &self.knowledge, login_endpoints: &login_endpoints };
        for default in DetectorSpec::all_defaults() {
            let name = default.name();
            if self.disabled.iter().any(|d| d == name) {
                continue;
            }
            let spec = self.detector.iter().find(|d| d.name() == name).cloned().unwrap_or(default);
            if let Some(d) = spec.build_marks() {
                disc = Some(d);
            } else if let Some((cooldown, det)) = spec.build(&env) {
                out.push((name, cooldown, det));
            }
        }
        (out, disc)
    }
}

/// Each detector's settings as a hash (of their debug text: every field,
/// defaults included), by name, disclosure's among them.
pub fn fingerprints(cfg: &DetectConfig) -> Vec<(&'static str, u64)> {
    DetectorSpec::all_defaults()
        .into_iter()
        .filter(|d| !cfg.disabled.iter().any(|x| x == d.name()))
        .map(|default| {
            let spec = cfg.detector.iter().find(|d| d.name() == default.name()).unwrap_or(&default);
            (default.name(), super::window::h64(format!("{spec:?}").as_bytes()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DetectConfig, String> {
        let c: DetectConfig = toml::from_str(text).map_err(|e| e.message().to_string())?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn every_kind_parses_to_itself() {
        for d in DetectorSpec::all_defaults() {
            let k = d.name();
            let c = parse(&format!("[[detector]]\nkind = \"{k}\"")).unwrap_or_else(|e| panic!("{k}: {e}"));
            assert_eq!(c.detector[0], d);
        }
    }

    #[test]
    fn defaults_build_every_detector() {
        let c = parse("").unwrap();
        let (d, disc) = c.build();
        assert_eq!(d.len(), 16);
        assert!(disc.is_some());
    }

    #[test]
    fn typed_overrides_and_errors() {
        let c = parse(
            r#"
            disabled = ["scraping"]
            [[detector]]
            kind = "single-path"
            window = "12h"
            min_requests = 300
            "#,
        )
        .unwrap();
        let DetectorSpec::SinglePath(s) = &c.detector[0] else { panic!("{:?}", c.detector) };
        assert_eq!((s.window, s.min_requests), (Duration::from_secs(12 * 3600), 300));
        assert_eq!(s.cooldown, signals::single_path::Spec::default().cooldown);
        assert_eq!(c.build().0.len(), 15);

        for (text, needle) in [
            ("[[detector]]\nkind = \"single-path\"\nwindw = \"1h\"", "windw"),
            ("[[detector]]\nkind = \"telepathy\"", "telepathy"),
            (
                "[[detector]]\nkind = \"single-path\"\nwindow = \"soon\"",
                "single-path: window: invalid value: string \"soon\"",
            ),
            ("[[detector]]\nkind = \"unusual-method\"\nread_only = [1]", "unusual-method: read_only: invalid type"),
            ("[[detector]]\nkind = 5", "kind: 5 is not a string"),
            ("[[detector]]\nkind = \"single-path\"\nmin_requests = 0", "single-path\"].min_requests"),
            ("[[detector]]\nkind = \"scraping\"\n[[detector]]\nkind = \"scraping\"", "twice"),
            ("disabled = [\"nope\"]", "nope"),
            ("reject_statuses = [4040]", "4040"),
            ("[[detector]]\nkind = \"user-agent-spoofing\"\nmax_user_agents = 99", "max_user_agents"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
