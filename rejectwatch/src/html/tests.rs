//! The report's page as text: what a client wrote is escaped wherever it
//! appears, and the page allows only its own style and script.

use super::*;
use crate::{
    blocklist::{BlocklistConfig, exempt::Exemptions},
    detect::client::ClientKey,
};

const HOSTILE_UA: &str = "<script>alert('ua')</script>";
const HOSTILE_PATH: &str = "/\"><script>alert(1)</script><img src=x onerror=alert(2)>";

fn render(actors: &[&Actor], tally: &Tally) -> String {
    let cfg = BlocklistConfig::default();
    let blocklist = Blocklist::new(&cfg, Exemptions::new(&cfg, &[], &[]));
    let geo = Geo::open(None, None).expect("no geo");
    Report {
        source: "access.log <b>".into(),
        actors: actors.to_vec(),
        blocklist: &blocklist,
        geo: &geo,
        tally,
        findings: 1,
        as_of: 1_790_000_600,
        marks: vec![1_790_000_300],
    }
    .render()
}

#[test]
fn script_in_a_user_agent_or_a_path_is_shown_not_run() {
    let key = ClientKey::new("203.0.113.9".parse().unwrap(), 64);
    let mut threat = Actor::stub("a-1", Class::Threat, vec![key], 1_790_000_000, 1_790_000_600);
    threat.user_agents.note(&[HOSTILE_UA], 256, 8);
    threat.endpoints.note(&[HOSTILE_PATH], 256, 16);
    let mut misconfigured = Actor::stub("a-2", Class::Misconfiguration, vec![key], 1_790_000_000, 1_790_000_600);
    misconfigured.user_agents.note(&[HOSTILE_UA], 256, 8);
    misconfigured.endpoints.note(&[HOSTILE_PATH], 256, 16);
    let mut tally = Tally::default();
    tally.request(1_790_000_000);
    tally.reject(1_790_000_000, HOSTILE_PATH, false);
    tally.finding(1_790_000_000, Class::Threat, "sensitive-files");
    let page = render(&[&threat, &misconfigured], &tally);

    assert_eq!(page.matches("<script").count(), 1, "only the page's own script: {page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(!page.contains("<b>"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(&#39;ua&#39;)&lt;/script&gt;"), "the user agent is shown");
    // In the actor's fold, the misconfigurations and the endpoint table.
    let path = "/&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;";
    assert!(page.matches(path).count() >= 3, "{page}");
}

#[test]
fn the_page_allows_its_own_style_and_script_only() {
    let page = render(&[], &Tally::default());
    let csp = page.split("Content-Security-Policy\" content=\"").nth(1).and_then(|s| s.split('"').next()).unwrap();
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    assert!(csp.contains(&hash(STYLE)) && csp.contains(&hash(SCRIPT)), "{csp}");
    assert!(page.contains(&format!("<script>{SCRIPT}</script>")) && page.contains(&format!("<style>{STYLE}</style>")));
    for external in ["http://", "https://", "src=\"", "@import", "url(http"] {
        assert!(!page.contains(external), "{external} in the page");
    }
    assert!(page.contains("Nothing to act on.") && page.contains("No records with a time."), "{page}");
}

#[test]
fn numbers_read_with_separators() {
    assert_eq!(Num(0).to_string(), "0");
    assert_eq!(Num(1234567).to_string(), "1,234,567");
    assert_eq!(Num(999).to_string(), "999");
}
