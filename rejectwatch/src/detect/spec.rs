//! The `[detect]` section of the config: engine limits, the reject
//! statuses, cadence rules, and one typed spec per detector (`[[detect.detector]]`
//! tables tagged by `kind`). Every detector runs with docs/detection.md's
//! defaults unless a table overrides it or `disabled` names it.

use std::{sync::Arc, time::Duration};

use serde::Deserialize;

use super::{
    cadence::CadenceRules,
    knowledge::{Knowledge, ListFile},
    signals::{
        self, burst, convergence, credential, disclosure, enumeration, header_bypass, hostile, injection, policy,
        rotation, scraping, sensitive, single_path, spoofing, stripped, tool_spread, unusual_method,
    },
    window::Secs,
};

/// One `[[detect.detector]]` table, by its `kind`.
#[derive(Clone, Debug, PartialEq)]
pub enum DetectorSpec {
    SinglePath(single_path::Spec),
    ToolSpread(tool_spread::Spec),
    Convergence(convergence::Spec),
    Spoofing(spoofing::Spec),
    Stripped(stripped::Spec),
    Rotation(rotation::Spec),
    Disclosure(disclosure::Spec),
    Credential(credential::Spec),
    Enumeration(enumeration::Spec),
    HeaderBypass(header_bypass::Spec),
    Injection(injection::Spec),
    UnusualMethod(unusual_method::Spec),
    Scraping(scraping::Spec),
    Sensitive(sensitive::Spec),
    Hostile(hostile::Spec),
    Policy(policy::Spec),
    Burst(burst::Spec),
}

/// By hand rather than serde's `tag = "kind"`: that buffers the table
/// before choosing the spec, and a bad value then came out as "line 4:
/// invalid value: string \"5 parsecs\", expected a duration", naming
/// neither the field nor the detector. Read as a TOML table first, the
/// spec's error knows its key: "detect.detector scraping: window: ...".
impl<'de> Deserialize<'de> for DetectorSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use DetectorSpec::*;
        use serde::de::Error as _;
        let mut table = toml::Table::deserialize(d)?;
        let kind = match table.remove("kind") {
            Some(toml::Value::String(k)) => k,
            Some(other) => return Err(D::Error::custom(format!("detect.detector kind: {other} is not a string"))),
            None => return Err(D::Error::custom("detect.detector: missing field `kind`")),
        };
        let body = toml::Value::Table(table);
        fn spec<T: serde::de::DeserializeOwned, E: serde::de::Error>(kind: &str, body: toml::Value) -> Result<T, E> {
            T::deserialize(body).map_err(|e| E::custom(format!("detect.detector {kind}: {}", keyed_message(&e))))
        }
        let k = kind.as_str();
        Ok(match k {
            single_path::NAME => SinglePath(spec(k, body)?),
            tool_spread::NAME => ToolSpread(spec(k, body)?),
            convergence::NAME => Convergence(spec(k, body)?),
            spoofing::NAME => Spoofing(spec(k, body)?),
            stripped::NAME => Stripped(spec(k, body)?),
            rotation::NAME => Rotation(spec(k, body)?),
            disclosure::NAME => Disclosure(spec(k, body)?),
            credential::NAME => Credential(spec(k, body)?),
            enumeration::NAME => Enumeration(spec(k, body)?),
            header_bypass::NAME => HeaderBypass(spec(k, body)?),
            injection::NAME => Injection(spec(k, body)?),
            unusual_method::NAME => UnusualMethod(spec(k, body)?),
            scraping::NAME => Scraping(spec(k, body)?),
            sensitive::NAME => Sensitive(spec(k, body)?),
            hostile::NAME => Hostile(spec(k, body)?),
            policy::NAME => Policy(spec(k, body)?),
            burst::NAME => Burst(spec(k, body)?),
            other => {
                let known =
                    Self::all_defaults().iter().map(|d| format!("`{}`", d.name())).collect::<Vec<_>>().join(", ");
                return Err(D::Error::custom(format!(
                    "detect.detector kind: unknown `{other}`, expected one of {known}"
                )));
            }
        })
    }
}

/// A TOML value error as `key: message`: the key is only in the error's
/// text, as a last line "in `key`".
fn keyed_message(e: &toml::de::Error) -> String {
    let text = e.to_string();
    let key = text.lines().rev().find_map(|l| l.trim().strip_prefix("in `")?.strip_suffix('`'));
    let message = e.message().replace('\n', " ");
    match key {
        Some(k) => crate::config::keyed(k, &message),
        None => message,
    }
}

impl DetectorSpec {
    /// Every detector with its defaults, in evaluation order.
    pub fn all_defaults() -> Vec<DetectorSpec> {
        use DetectorSpec::*;
        vec![
            SinglePath(Default::default()),
            ToolSpread(Default::default()),
            Convergence(Default::default()),
            Spoofing(Default::default()),
            Stripped(Default::default()),
            Rotation(Default::default()),
            Disclosure(Default::default()),
            Credential(Default::default()),
            Enumeration(Default::default()),
            HeaderBypass(Default::default()),
            Injection(Default::default()),
            UnusualMethod(Default::default()),
            Scraping(Default::default()),
            Sensitive(Default::default()),
            Hostile(Default::default()),
            Policy(Default::default()),
            Burst(Default::default()),
        ]
    }

    pub fn name(&self) -> &'static str {
        use DetectorSpec::*;
        match self {
            SinglePath(_) => single_path::NAME,
            ToolSpread(_) => tool_spread::NAME,
            Convergence(_) => convergence::NAME,
            Spoofing(_) => spoofing::NAME,
            Stripped(_) => stripped::NAME,
            Rotation(_) => rotation::NAME,
            Disclosure(_) => disclosure::NAME,
            Credential(_) => credential::NAME,
            Enumeration(_) => enumeration::NAME,
            HeaderBypass(_) => header_bypass::NAME,
            Injection(_) => injection::NAME,
            UnusualMethod(_) => unusual_method::NAME,
            Scraping(_) => scraping::NAME,
            Sensitive(_) => sensitive::NAME,
            Hostile(_) => hostile::NAME,
            Policy(_) => policy::NAME,
            Burst(_) => burst::NAME,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        use DetectorSpec::*;
        match self {
            SinglePath(s) => s.validate(),
            ToolSpread(s) => s.validate(),
            Convergence(s) => s.validate(),
            Spoofing(s) => s.validate(),
            Stripped(s) => s.validate(),
            Rotation(s) => s.validate(),
            Disclosure(s) => s.validate(),
            Credential(s) => s.validate(),
            Enumeration(s) => s.validate(),
            HeaderBypass(s) => s.validate(),
            Injection(s) => s.validate(),
            UnusualMethod(s) => s.validate(),
            Scraping(s) => s.validate(),
            Sensitive(s) => s.validate(),
            Hostile(s) => s.validate(),
            Policy(s) => s.validate(),
            Burst(s) => s.validate(),
        }
    }

    /// The detector and its cooldown; `None` for disclosure, which the
    /// engine drives from marks rather than exchanges.
    fn build(&self, k: &Knowledge, login_endpoints: &[String]) -> Option<(Secs, signals::Any)> {
        use DetectorSpec::*;
        let s = signals::secs;
        Some(match self {
            SinglePath(x) => (s(x.cooldown), x.build().into()),
            ToolSpread(x) => (s(x.cooldown), x.build().into()),
            Convergence(x) => (s(x.cooldown), x.build().into()),
            Spoofing(x) => (s(x.cooldown), x.build().into()),
            Stripped(x) => (s(x.cooldown), x.build().into()),
            Rotation(x) => (s(x.cooldown), x.build().into()),
            Disclosure(_) => return None,
            Credential(x) => (s(x.cooldown), x.build().into()),
            Enumeration(x) => (s(x.cooldown), x.build().into()),
            HeaderBypass(x) => (s(x.cooldown), x.build().into()),
            Injection(x) => (s(x.cooldown), x.build(k).into()),
            UnusualMethod(x) => (s(x.cooldown), x.build().into()),
            Scraping(x) => (s(x.cooldown), x.build().into()),
            Sensitive(x) => (s(x.cooldown), x.build(k).into()),
            Hostile(x) => (s(x.cooldown), x.build().into()),
            Policy(x) => (s(x.cooldown), x.build().into()),
            Burst(x) => (s(x.cooldown), x.build(login_endpoints).into()),
        })
    }
}

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
            burst_gap: signals::secs(self.burst_gap),
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
        for default in DetectorSpec::all_defaults() {
            let name = default.name();
            if self.disabled.iter().any(|d| d == name) {
                continue;
            }
            let spec = self.detector.iter().find(|d| d.name() == name).cloned().unwrap_or(default);
            match &spec {
                DetectorSpec::Disclosure(d) => disc = Some(d.build()),
                _ => {
                    let (cooldown, det) = spec.build(&self.knowledge, &login_endpoints).expect("not disclosure");
                    out.push((name, cooldown, det));
                }
            }
        }
        (out, disc)
    }
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
        assert_eq!(s.cooldown, single_path::Spec::default().cooldown);
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
