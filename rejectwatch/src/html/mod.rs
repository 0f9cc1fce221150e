//! The HTML report (`analyze --report`, the daemon's `GET /report`): one
//! self-contained page an analyst reads instead of the JSON. The verdict
//! first, then requests and rejects over time with the findings marked,
//! the actors (sortable, filterable by classification), the prospects to
//! contact, the misconfigurations to fix and the endpoints rejected most.
//!
//! Gateways are often offline, so the page loads nothing: its style and
//! script are inline, the chart is inline SVG, and a Content Security
//! Policy allows those two blocks by hash and nothing else, so that text a
//! client wrote can neither run nor fetch anything even if it got past the
//! escaping. Everything shown is bounded: the roster and its lists are
//! capped already, the chart and endpoint list are [`crate::tally`]'s, and
//! the actor table stops at [`MAX_ACTOR_ROWS`].

mod actors;
mod escape;
mod sections;
mod timeline;

use std::{fmt, path::Path};

use anyhow::Context as _;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

pub use self::escape::Esc;
use crate::{
    blocklist::Blocklist,
    detect::{actors::Actor, evidence::Class},
    enrich::geo::Geo,
    state::write_atomically,
    tally::Tally,
    time::Secs,
};

const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

/// Actors past this many are counted, not listed: a page of tens of
/// thousands of rows is one no browser (or person) reads.
pub const MAX_ACTOR_ROWS: usize = 500;

/// What a report is made of.
pub struct Report<'a> {
    /// What was read ("access.log, access.log.1", or the live interfaces).
    pub source: String,
    pub actors: Vec<&'a Actor>,
    pub blocklist: &'a Blocklist,
    pub geo: &'a Geo,
    pub tally: &'a Tally,
    pub findings: u64,
    /// The newest record's time: the report is as of then.
    pub as_of: Secs,
    /// Disclosure markers, drawn on the timeline.
    pub marks: Vec<Secs>,
}

impl Report<'_> {
    fn count(&self, c: Class) -> usize {
        self.actors.iter().filter(|a| a.class == c).count()
    }

    pub fn render(&self) -> String {
        let mut o = String::with_capacity(64 * 1024);
        self.page(&mut o).expect("a String takes any write");
        o
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let page = self.render();
        write_atomically(path, |w| w.write_all(page.as_bytes()))
            .with_context(|| format!("--report: cannot write {}", path.display()))
    }

    fn page(&self, o: &mut String) -> fmt::Result {
        use fmt::Write as _;
        let csp = format!(
            "default-src 'none'; style-src '{}'; script-src '{}'; img-src data:; base-uri 'none'; form-action 'none'",
            hash(STYLE),
            hash(SCRIPT)
        );
        write!(
            o,
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
             <meta name=\"generator\" content=\"rejectwatch {version}\">\n\
             <title>rejectwatch: {source}</title>\n<style>{STYLE}</style>\n<script>{SCRIPT}</script>\n</head>\n<body>\n",
            version = env!("CARGO_PKG_VERSION"),
            source = Esc(&self.source),
        )?;
        self.header(o)?;
        o.push_str("<main>\n");
        sections::verdict(o, self)?;
        timeline::section(o, &self.tally.timeline, &self.marks)?;
        actors::section(o, self)?;
        sections::prospects(o, self)?;
        sections::misconfigurations(o, self)?;
        sections::endpoints(o, self.tally)?;
        o.push_str("</main>\n");
        write!(
            o,
            "<footer>rejectwatch {} · as of the newest record, {} · this page loads nothing from anywhere</footer>\n\
             </body>\n</html>\n",
            env!("CARGO_PKG_VERSION"),
            When(self.as_of)
        )
    }

    fn header(&self, o: &mut String) -> fmt::Result {
        use fmt::Write as _;
        let tl = &self.tally.timeline;
        let span = match tl.iter().next() {
            Some((first, _)) => format!("{} to {}", When(first), When(tl.end().min(self.as_of.max(first)))),
            None => "no timed records".into(),
        };
        write!(
            o,
            "<header>\n<h1><span class=\"brand\">rejectwatch</span> reject pile report</h1>\n\
             <p class=\"source\"><span class=\"mono\">{}</span> · {span}</p>\n<nav>",
            Esc(&self.source),
        )?;
        for (id, name) in [
            ("verdict", "Verdict"),
            ("timeline", "Timeline"),
            ("actors", "Actors"),
            ("prospects", "Prospects"),
            ("misconfigurations", "Misconfigurations"),
            ("endpoints", "Endpoints"),
        ] {
            write!(o, "<a href=\"#{id}\">{name}</a>")?;
        }
        o.push_str("</nav>\n</header>\n");
        Ok(())
    }
}

/// `'sha256-…'` of an inline block, for the Content Security Policy.
fn hash(block: &str) -> String {
    format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(block.as_bytes())))
}

/// A record time as a `<time>` element: minutes shown, seconds on hover.
struct When(Secs);

impl When {
    fn rfc3339(&self) -> String {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.0.into());
        humantime::format_rfc3339_seconds(t).to_string()
    }

    /// The time as text, for SVG titles and labels: `2026-11-05 09:00`.
    fn plain(&self) -> String {
        let full = self.rfc3339();
        full.get(..16).unwrap_or(&full).replace('T', " ")
    }
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = self.rfc3339();
        write!(f, "<time datetime=\"{full}\" title=\"{full}\">{}</time>", self.plain())
    }
}

/// `12,345`.
struct Num(u64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.to_string();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                f.write_str(",")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// The classification as a badge: a shape and a word as well as a colour,
/// so that it reads in grey and to the colour-blind.
struct Badge(Class);

impl Badge {
    fn shape(c: Class) -> &'static str {
        match c {
            Class::Threat => "▲",
            Class::Prospect => "◆",
            Class::Misconfiguration => "■",
            Class::Unknown => "●",
        }
    }
}

impl fmt::Display for Badge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0.as_str();
        write!(f, "<span class=\"badge {c}\"><span aria-hidden=\"true\">{}</span> {c}</span>", Self::shape(self.0))
    }
}

/// Order of classifications wherever they are listed: what needs acting
/// on first.
fn rank(c: Class) -> u8 {
    match c {
        Class::Threat => 0,
        Class::Misconfiguration => 1,
        Class::Prospect => 2,
        Class::Unknown => 3,
    }
}

#[cfg(test)]
mod tests;
