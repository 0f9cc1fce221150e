//! Access-log formats: each line is an exchange already joined, and goes
//! through the same enrichment and sinks as a captured one. One module a
//! format, and here the registry that names them, parses a line in a
//! given format and finds a file's format from its first readable lines.

pub mod alb;
pub mod clf;
pub mod envoy;
pub mod errorlog;
pub mod haproxy;
pub mod json;
pub mod prefix;
mod text;

use crate::exchange::Exchange;
pub use json::JsonFields;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Common or combined log format, with or without a vhost prefix.
    Combined,
    /// Synonym of `combined`: the parser takes both.
    Common,
    /// One JSON object per line, with the `json_log` fields of the config.
    Json,
    /// Kubernetes ingress-nginx's default format.
    IngressNginx,
    /// Traefik's access log, JSON or CLF.
    Traefik,
    /// Caddy's JSON access log.
    Caddy,
    /// Envoy's default text format, or JSON with Istio's keys.
    Envoy,
    /// HAProxy's `option httplog`.
    Haproxy,
    /// AWS Application Load Balancer access logs.
    Alb,
}

/// The formats tried on a file's first lines, the specific before the
/// general (every ingress-nginx line is also a combined one).
const TEXT_ORDER: [LogFormat; 6] = [
    LogFormat::Alb,
    LogFormat::Haproxy,
    LogFormat::Envoy,
    LogFormat::Traefik,
    LogFormat::IngressNginx,
    LogFormat::Combined,
];
const JSON_ORDER: [LogFormat; 4] = [LogFormat::Traefik, LogFormat::Caddy, LogFormat::Envoy, LogFormat::Json];

/// Lines a file may open with that no format reads before its format is
/// taken to be the general one (combined or JSON).
const DETECT_LINES: u32 = 100;

fn is_json(line: &str) -> bool {
    line.trim_start().starts_with('{')
}

impl LogFormat {
    /// The format's name in `--format` and in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Self::Combined => "combined",
            Self::Common => "common",
            Self::Json => "json",
            Self::IngressNginx => "ingress-nginx",
            Self::Traefik => "traefik",
            Self::Caddy => "caddy",
            Self::Envoy => "envoy",
            Self::Haproxy => "haproxy",
            Self::Alb => "alb",
        }
    }

    /// One line in this format; `json` is the config's JSON layout.
    pub fn parse(self, line: &str, json: &JsonFields) -> Result<Exchange, &'static str> {
        match self {
            Self::Combined | Self::Common => clf::parse_combined(line),
            Self::Json => json::parse_json(line, json),
            Self::IngressNginx => clf::parse_ingress_nginx(line),
            Self::Traefik if is_json(line) => json::parse_json(line, json::traefik()),
            Self::Traefik => clf::parse_traefik_clf(line),
            Self::Caddy => json::parse_json(line, json::caddy()),
            Self::Envoy if is_json(line) => json::parse_json(line, json::envoy()),
            Self::Envoy => envoy::parse(line),
            Self::Haproxy => haproxy::parse(line),
            Self::Alb => alb::parse(line),
        }
    }
}

/// A file's format: the one given, or the first that reads one of its
/// first lines.
#[derive(Debug, Default)]
pub struct Detector {
    format: Option<LogFormat>,
    tried: u32,
}

impl Detector {
    pub fn new(forced: Option<LogFormat>) -> Self {
        Self { format: forced, tried: 0 }
    }

    pub fn format(&self) -> Option<LogFormat> {
        self.format
    }

    /// Parses a line, finding the format on the way if it is not known.
    pub fn parse(&mut self, line: &str, json: &JsonFields) -> Result<(LogFormat, Exchange), &'static str> {
        if let Some(f) = self.format {
            return f.parse(line, json).map(|e| (f, e));
        }
        let order: &[LogFormat] = if is_json(line) { &JSON_ORDER } else { &TEXT_ORDER };
        for &f in order {
            if let Ok(e) = f.parse(line, json) {
                self.format = Some(f);
                return Ok((f, e));
            }
        }
        // Why the general format could not read it is what the user can act on.
        let general = *order.last().expect("formats");
        self.tried += 1;
        if self.tried >= DETECT_LINES {
            self.format = Some(general);
        }
        Err(general.parse(line, json).err().unwrap_or("unknown_format"))
    }
}

#[cfg(test)]
mod tests {
    use super::{json::JsonLogFields, *};

    #[test]
    fn detection_takes_the_first_format_that_reads_a_line() {
        let json = JsonFields::new(&JsonLogFields::default()).unwrap();
        let mut d = Detector::new(None);
        assert_eq!(d.parse("garbage", &json).err(), Some("no_timestamp"));
        assert_eq!(d.format(), None, "one bad line does not decide");
        let line = r#"10.0.0.1 - - [22/Nov/2025:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "curl/8" 78 0.002 [default-web-80] [] 10.244.0.5:8080 1 0.002 200 3f1c"#;
        assert_eq!(d.parse(line, &json).map(|(f, _)| f), Ok(LogFormat::IngressNginx));
        // Decided: a plain combined line is not an ingress-nginx one.
        let plain = r#"10.0.0.1 - - [22/Nov/2025:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "curl/8""#;
        assert_eq!(d.parse(plain, &json).err(), Some("no_ingress_nginx_fields"));
        assert_eq!(Detector::new(None).parse(plain, &json).map(|(f, _)| f), Ok(LogFormat::Combined));
        // Forced formats are not second-guessed.
        let mut d = Detector::new(Some(LogFormat::Combined));
        assert_eq!(d.parse(line, &json).map(|(f, _)| f), Ok(LogFormat::Combined));
        // A file nothing reads settles on the general format.
        let mut d = Detector::new(None);
        for _ in 0..DETECT_LINES {
            assert!(d.parse("{}", &json).is_err());
        }
        assert_eq!(d.format(), Some(LogFormat::Json));
    }
}
