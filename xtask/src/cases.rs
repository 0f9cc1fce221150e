//! `cargo xtask gen-cases`: writes the inputs of the golden detector cases
//! (`tests/cases/<name>/`) from the actor models in `traffic`. The
//! expected findings are not generated here: `BLESS=1 cargo test --test
//! detection` writes them from rejectwatch's output, and they are
//! reviewed by hand before they are committed.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::{cases_bursts, cases_probes, traffic::*};

#[derive(clap::Args)]
pub struct GenCasesArgs {
    /// Only this case.
    #[arg(long)]
    case: Option<String>,
}

enum Format {
    Log,
    Pcap,
}

struct Case {
    name: &'static str,
    format: Format,
    /// Extra `analyze` arguments (`args` file).
    args: &'static [&'static str],
    build: fn(&mut Rng, &mut Vec<Req>),
}

/// The shared GeoIP tables: documentation and shared address space only.
const COUNTRY_CSV: &str = "start,end,country_code
198.51.100.0,198.51.100.255,US
203.0.113.0,203.0.113.255,DE
192.0.2.0,192.0.2.255,FR
100.64.1.0,100.64.1.255,BR
100.64.2.0,100.64.2.255,JP
100.64.3.0,100.64.3.255,NL
10.0.0.0,10.255.255.255,GB
";
const ASN_CSV: &str = "start,end,asn,org
198.51.100.0,198.51.100.255,64500,Example Cloud US
203.0.113.0,203.0.113.255,64501,Example Hosting DE
192.0.2.0,192.0.2.255,64502,Example Transit FR
100.64.1.0,100.64.1.255,64503,Example Mobile BR
100.64.2.0,100.64.2.255,64504,Example Cloud JP
100.64.3.0,100.64.3.255,64505,Example Cloud NL
10.0.0.0,10.255.255.255,64510,Example Residential GB
";

const EXPORT: &str = "/api/v1/export.csv";

fn background(rng: &mut Rng, hours: u64, out: &mut Vec<Req>) {
    ordinary(rng, T0, hours, 30, out);
}

/// The CSV harvester of the real case: stripped user agent, every ~4
/// minutes, refused every time.
fn harvester(rng: &mut Rng, ip: &str, from: u64, hours: u64, out: &mut Vec<Req>) {
    poller(rng, ip, &no_user_agent, EXPORT, 403, from, from + hours * HOUR, 238, 20, out);
}

/// The CTI connector of the real case: python-requests/2.32.5 polling a
/// TAXII collection every 60 minutes, from seven places in four countries.
fn cti_pollers(rng: &mut Rng, from: u64, until: u64, out: &mut Vec<Req>) {
    let ips =
        ["198.51.100.31", "198.51.100.32", "203.0.113.31", "203.0.113.32", "192.0.2.31", "192.0.2.32", "100.64.1.31"];
    for (i, ip) in ips.iter().enumerate() {
        let h = || library("python-requests/2.32.5");
        poller(rng, ip, &h, TAXII, 403, from + 173 * i as u64, until, HOUR, 15, out);
    }
}

fn spoofers(rng: &mut Rng, from: u64, out: &mut Vec<Req>) {
    for ip in ["100.64.3.7", "100.64.3.8"] {
        let mut t = (from + rng.below(HOUR)) as f64;
        for _ in 0..6 {
            out.push(Req::new(t, ip, "GET", "/api/v1/account", browser(SAFARI_IOS_14), 401));
            out.push(Req::new(t + 3.0, ip, "POST", "/api/v1/login", library("okhttp/3.14.9"), 401));
            t += 300.0 + rng.below(120) as f64;
        }
    }
}

fn env_enumerator(from: u64, out: &mut Vec<Req>) {
    let paths = ["/.env", "/.git/config", "/wp-config.php.bak", "/backup.sql", "/admin/", "/api/.env", "/config.json"];
    for (i, p) in paths.iter().enumerate() {
        out.push(Req::new((from + 2 * i as u64) as f64, "203.0.113.13", "GET", p, library("curl/7.68.0"), 404));
    }
}

fn stuffer(rng: &mut Rng, from: u64, out: &mut Vec<Req>) {
    let mut t = from as f64;
    for i in 0..150 {
        let user = format!("{}{}", rng.pick(&["anna", "ben", "carl", "dina", "erik", "fay"]), i % 40);
        let h = library("python-requests/2.25.1");
        out.push(Req::new(t, "192.0.2.66", "POST", "/api/v1/login", h, 401).user(&user));
        t += 15.0 + rng.below(10) as f64;
    }
}

/// Analysts' dashboards refresh the reports every 10 minutes until a
/// deploy at `deploy` refuses them all (a role lost its permission).
fn analysts(rng: &mut Rng, from: u64, deploy: u64, until: u64, out: &mut Vec<Req>) {
    for a in 0..12 {
        let ip = format!("10.60.0.{}", a + 1);
        let mut t = from + rng.below(600);
        while t < until {
            let status = if t < deploy { 200 } else { 403 };
            out.push(
                Req::new(t as f64, &ip, "GET", "/api/v1/reports", browser(CHROME_WIN), status)
                    .user(&format!("analyst{a}")),
            );
            t += 600 + rng.below(5);
        }
    }
}

/// The disclosure marker of [`seven_actors`]: its long-running poller goes
/// dark after it.
pub const SEVEN_ACTORS_DISCLOSURE: &str = "disclosure=2026-11-05T09:00:00Z";

/// The seven actor models of docs/detection.md's seeds over five days of an
/// ordinary API with `clients` users (the multi-day scenario case; the
/// profile-guided build trains on a larger one).
pub fn seven_actors(rng: &mut Rng, clients: u32, out: &mut Vec<Req>) {
    let days = 5;
    ordinary(rng, T0, days * 24, clients, out);
    // 1. The CTI connector in seven places: a prospect.
    cti_pollers(rng, T0 + 900, T0 + days * DAY, out);
    // 2. The stripped CSV harvester, moving address after a day.
    harvester(rng, "198.51.100.20", T0 + 2 * HOUR, 24, out);
    harvester(rng, "198.51.100.21", T0 + 74 * HOUR, 20, out);
    // 3. iPhone/okhttp spoofers on one cloud ASN.
    spoofers(rng, T0 + 30 * HOUR, out);
    // 4. curl hunting for .env files.
    env_enumerator(T0 + 50 * HOUR, out);
    // 5. A long-running poller that reads the disclosure (one poll after
    // the mark, at 09:20) and goes dark.
    let h = || library("python-httpx/0.27.0");
    poller(rng, "203.0.113.70", &h, "/api/v1/indicators", 401, T0 + 1234, T0 + 81 * HOUR + 1300, HOUR, 20, out);
    // 6. A credential stuffer.
    stuffer(rng, T0 + 60 * HOUR, out);
    // 7. Our own mistake: a deploy that locks the analysts out.
    analysts(rng, T0 + 90 * HOUR, T0 + 100 * HOUR, T0 + 102 * HOUR, out);
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "quiet-busy-api",
            format: Format::Log,
            args: &[],
            build: |rng, out| ordinary(rng, T0, 72, 200, out),
        },
        Case {
            name: "quiet-busy-api-pcap",
            format: Format::Pcap,
            args: &[],
            build: |rng, out| ordinary(rng, T0, 12, 40, out),
        },
        Case {
            name: "single-path",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 24, out);
                harvester(rng, "198.51.100.10", T0, 24, out);
            },
        },
        Case {
            name: "stripped-identity",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 24, out);
                for i in 0..15u64 {
                    let p = format!("/api/v1/{}", ["orders", "account", "reports", "products/7"][i as usize % 4]);
                    out.push(Req::new((T0 + 3600 + i * 200) as f64, "203.0.113.44", "GET", &p, no_user_agent(), 401));
                }
            },
        },
        Case {
            name: "tool-spread",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 72, out);
                cti_pollers(rng, T0 + 600, T0 + 72 * HOUR, out);
            },
        },
        Case {
            name: "convergence",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 72, out);
                for (i, (ip, ua)) in [
                    ("100.64.1.5", "curl/8.5.0"),
                    ("100.64.1.77", "python-requests/2.28.1"),
                    ("100.64.1.140", "Go-http-client/1.1"),
                ]
                .iter()
                .enumerate()
                {
                    for k in 0..4u64 {
                        let t = T0 + i as u64 * 20 * HOUR + k * 700;
                        out.push(Req::new(t as f64, ip, "GET", "/api/v1/billing/invoices", library(ua), 401));
                    }
                }
            },
        },
        Case {
            name: "spoofing-platforms",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 24, out);
                spoofers(rng, T0 + 2 * HOUR, out);
            },
        },
        Case {
            // User agents no browser sends, each from its own address, a few
            // rejected requests each; the ordinary users' real browsers (an
            // iPhone on iOS 14.4 with Safari 14, Chrome 124, Firefox 125)
            // and an iOS 26 Safari, which reports iOS 18_6, stay quiet.
            name: "spoofing-impossible-agents",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 24, out);
                let liars = [
                    ("203.0.113.61", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"),
                    (
                        "203.0.113.62",
                        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/199.0.0.0 Safari/537.36",
                    ),
                    (
                        "203.0.113.63",
                        "Mozilla/5.0 (iPhone; CPU iPhone OS 14_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
                    ),
                ];
                for (i, (ip, ua)) in liars.iter().enumerate() {
                    for k in 0..3u64 {
                        let t = (T0 + HOUR + i as u64 * 700 + k * 200 + rng.below(30)) as f64;
                        out.push(Req::new(t, ip, "GET", "/api/v1/account", browser(ua), 401));
                    }
                }
                let ios26 = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.0 Mobile/15E148 Safari/604.1";
                for k in 0..3u64 {
                    let t = (T0 + 2 * HOUR + k * 300) as f64;
                    out.push(Req::new(t, "198.51.100.64", "GET", "/api/v1/account", browser(ios26), 401));
                }
            },
        },
        Case {
            name: "spoofing-headers",
            format: Format::Pcap,
            args: &[],
            build: |rng, out| {
                ordinary(rng, T0, 6, 15, out);
                for i in 0..6u64 {
                    let t = (T0 + 1800 + i * 120) as f64;
                    out.push(Req::new(t, "203.0.113.50", "GET", "/api/v1/account", script_as_browser(CHROME_WIN), 401));
                }
                let agents = [
                    CHROME_WIN,
                    FIREFOX_LINUX,
                    SAFARI_IOS_14,
                    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
                    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
                ];
                for (i, ua) in agents.iter().enumerate() {
                    let t = (T0 + 7200 + i as u64 * 60) as f64;
                    out.push(Req::new(t, "203.0.113.51", "GET", "/api/v1/orders", browser(ua), 403));
                }
            },
        },
        Case {
            name: "address-rotation",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 96, out);
                harvester(rng, "198.51.100.20", T0, 14, out);
                harvester(rng, "198.51.100.21", T0 + 62 * HOUR, 14, out);
            },
        },
        Case {
            // The seeds' case: a different address on the same cloud ASN hit
            // the same undocumented export two days later, with another user
            // agent and another header order, on the same cadence.
            name: "address-rotation-other-tool",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 96, out);
                let export = "/api/v2/internal/export/customers.csv";
                let a = || library("python-requests/2.28.1");
                poller(rng, "100.64.2.41", &a, export, 403, T0 + 3 * HOUR, T0 + 13 * HOUR, 900, 10, out);
                let b = || library("Go-http-client/1.1");
                poller(rng, "100.64.2.97", &b, export, 403, T0 + 61 * HOUR, T0 + 71 * HOUR, 900, 10, out);
                // A third address elsewhere with yet another tool, on the
                // same export, stays apart: nothing but the target is shared.
                let c = || library("curl/8.5.0");
                poller(rng, "198.51.100.77", &c, export, 403, T0 + 80 * HOUR, T0 + 90 * HOUR, 900, 10, out);
            },
        },
        Case {
            // Two unrelated mobile clients on one carrier retrying a login
            // the API serves to everyone else, days apart, on the same
            // cadence: a popular endpoint links nobody.
            name: "rotation-popular-login",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 96, out);
                let a = || library("okhttp/4.12.0");
                poller(rng, "100.64.1.41", &a, "/api/v1/login", 401, T0 + 3 * HOUR, T0 + 13 * HOUR, 900, 10, out);
                let b = || library("okhttp/4.9.3");
                poller(rng, "100.64.1.97", &b, "/api/v1/login", 401, T0 + 61 * HOUR, T0 + 71 * HOUR, 900, 10, out);
            },
        },
        Case {
            name: "disclosure",
            format: Format::Log,
            args: &["--mark", "disclosure=2026-11-03T12:00:00Z"],
            build: |rng, out| {
                background(rng, 72, out);
                let mark = T0 + 36 * HOUR;
                let h = || library("python-httpx/0.27.0");
                // Reads the changed response once, 20 minutes after the
                // mark, and goes dark...
                poller(rng, "203.0.113.70", &h, "/api/v1/indicators", 401, T0 + 1234, mark + HOUR, HOUR, 20, out);
                // ...as does an honest axios poller on a mobile carrier,
                // after two more polls: threats, whatever they argued for.
                let a = || library("axios/1.7.2");
                poller(rng, "100.64.1.70", &a, "/api/v1/indicators", 401, T0 + 600, mark + 3000, 1800, 20, out);
                // Another carries on at its cadence...
                let g = || library("Go-http-client/1.1");
                poller(rng, "203.0.113.71", &g, "/api/v1/indicators", 401, T0 + 2345, T0 + 72 * HOUR, HOUR, 20, out);
                // ...and one stopped 39 minutes before the mark: it never
                // saw the change, so its silence says nothing about it.
                let o = || library("okhttp/4.12.0");
                poller(rng, "203.0.113.72", &o, "/api/v1/indicators", 401, T0 + 1234, mark - 2000, HOUR, 20, out);
            },
        },
        Case {
            name: "credential-stuffing",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 12, out);
                stuffer(rng, T0 + 3 * HOUR, out);
            },
        },
        Case {
            name: "credential-takeover",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 12, out);
                for i in 0..12u64 {
                    let ip = format!("192.0.2.{}", 100 + i);
                    for k in 0..2u64 {
                        let t = (T0 + 4 * HOUR + i * 130 + k * 40) as f64;
                        out.push(
                            Req::new(t, &ip, "POST", "/api/v1/login", library("python-requests/2.31.0"), 401)
                                .user("ceo"),
                        );
                    }
                }
            },
        },
        Case {
            name: "credential-baseline",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                // 30 hours of logins failing about 5% of the time...
                for h in 0..30u64 {
                    for k in 0..80u64 {
                        let c = rng.below(300);
                        let ip = format!("10.70.{}.{}", c / 200, c % 200 + 1);
                        let status = if rng.below(20) == 0 { 401 } else { 200 };
                        let t = (T0 + h * HOUR + k * 45) as f64;
                        out.push(
                            Req::new(t, &ip, "POST", "/api/v1/login", browser(CHROME_WIN), status)
                                .user(&format!("u{c}")),
                        );
                    }
                }
                // ...then an hour where 60% fail, spread over many addresses.
                for k in 0..200u64 {
                    let fail = rng.below(10) < 6;
                    let (ip, user) = if fail {
                        (format!("100.64.2.{}", k % 250 + 1), format!("victim{k}"))
                    } else {
                        let c = rng.below(300);
                        (format!("10.70.{}.{}", c / 200, c % 200 + 1), format!("u{c}"))
                    };
                    let t = (T0 + 30 * HOUR + k * 18) as f64;
                    let status = if fail { 401 } else { 200 };
                    out.push(Req::new(t, &ip, "POST", "/api/v1/login", browser(CHROME_WIN), status).user(&user));
                }
            },
        },
        Case {
            name: "object-enumeration",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 12, out);
                for i in 0..120u64 {
                    let t = (T0 + 5 * HOUR + i * 9) as f64;
                    let status = if i % 7 == 0 { 200 } else { 403 };
                    let p = format!("/api/v1/orders/{}", 7000 + i);
                    out.push(Req::new(t, "10.0.0.42", "GET", &p, browser(FIREFOX_LINUX), status).user("user0042"));
                }
            },
        },
        Case {
            name: "header-manipulation",
            format: Format::Pcap,
            args: &[],
            build: |rng, out| {
                ordinary(rng, T0, 6, 15, out);
                for i in 0..8u64 {
                    let t = (T0 + HOUR + i * 30) as f64;
                    let fake = format!("{}.{}.{}.{}", 11 + i * 7, 3 + i, 200 - i, 9 + i);
                    out.push(
                        Req::new(t, "203.0.113.90", "POST", "/api/v1/login", library("python-requests/2.31.0"), 429)
                            .header("X-Forwarded-For", &fake),
                    );
                }
            },
        },
        Case {
            name: "injection",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 12, out);
                let probes = [
                    "/api/v1/products?id=1%27%20OR%201%3D1--",
                    "/api/v1/products?id=1%20UNION%20SELECT%20username,password%20FROM%20users",
                    "/api/v1/users?name[$ne]=admin",
                    "/api/v1/files?name=..%2F..%2F..%2Fetc%2Fpasswd",
                    "/api/v1/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
                ];
                for (i, p) in probes.iter().enumerate() {
                    let t = (T0 + 2 * HOUR + i as u64 * 5) as f64;
                    out.push(Req::new(t, "192.0.2.77", "GET", p, library("python-requests/2.31.0"), 400));
                }
            },
        },
        Case {
            name: "unusual-method",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 24, out);
                let t = (T0 + 23 * HOUR) as f64;
                out.push(Req::new(t, "192.0.2.88", "DELETE", "/api/v1/products/123", library("curl/8.5.0"), 405));
                out.push(Req::new(t + 5.0, "192.0.2.88", "PUT", "/api/v1/products/124", library("curl/8.5.0"), 405));
            },
        },
        Case {
            name: "scraping",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 12, out);
                for i in 0..600u64 {
                    let t = T0 as f64 + 4.0 * HOUR as f64 + i as f64 * 0.8;
                    let p = format!("/api/v1/products/{}", 100 + i);
                    let ua = "Mozilla/5.0 (compatible; DataHarvest/1.0)";
                    out.push(Req::new(t, "198.51.100.99", "GET", &p, browser(ua), 200));
                }
            },
        },
        Case {
            name: "sensitive-files",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 12, out);
                env_enumerator(T0 + 3 * HOUR, out);
            },
        },
        Case {
            name: "policy-regression",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 30, out);
                analysts(rng, T0, T0 + 26 * HOUR, T0 + 28 * HOUR, out);
            },
        },
        Case {
            name: "expired-token-loop",
            format: Format::Log,
            args: &[],
            build: |rng, out| {
                background(rng, 12, out);
                let mut t = T0 + 2 * HOUR;
                while t < T0 + 5 * HOUR {
                    let status = if t < T0 + 4 * HOUR { 200 } else { 401 };
                    let step = if status == 200 { 30 } else { 15 };
                    out.push(
                        Req::new(t as f64, "10.50.0.5", "GET", "/api/v1/orders", library("Go-http-client/1.1"), status)
                            .user("svc-sync"),
                    );
                    t += step;
                }
            },
        },
        Case {
            name: "scenario-seven-actors",
            format: Format::Log,
            args: &["--mark", SEVEN_ACTORS_DISCLOSURE],
            build: |rng, out| seven_actors(rng, 150, out),
        },
        // New cases go last: each case's generator is seeded by its place.
        Case { name: "injection-decoded", format: Format::Log, args: &[], build: cases_probes::injection_decoded },
        Case { name: "injection-headers", format: Format::Pcap, args: &[], build: cases_probes::injection_headers },
        Case { name: "product-probes", format: Format::Log, args: &[], build: cases_probes::product_probes },
        Case { name: "hostile-by-construction", format: Format::Log, args: &[], build: cases_probes::hostile },
        Case { name: "quiet-ordinary-clients", format: Format::Log, args: &[], build: cases_probes::quiet_clients },
        Case { name: "burst-scan", format: Format::Log, args: &[], build: cases_bursts::scan },
        Case { name: "burst-login", format: Format::Log, args: &[], build: cases_bursts::login },
        Case { name: "burst-basic-auth", format: Format::Log, args: &[], build: cases_bursts::basic_auth },
        Case { name: "burst-id-walk", format: Format::Log, args: &[], build: cases_bursts::id_walk },
        Case { name: "burst-cache-busting", format: Format::Log, args: &[], build: cases_bursts::cache_busting },
        Case { name: "quiet-bursts", format: Format::Log, args: &[], build: cases_bursts::quiet },
    ]
}

pub fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/cases")
}

pub fn gen_cases(args: GenCasesArgs) -> anyhow::Result<()> {
    let root = cases_dir();
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("geo-country.csv"), COUNTRY_CSV)?;
    std::fs::write(root.join("geo-asn.csv"), ASN_CSV)?;
    for (i, case) in cases().into_iter().enumerate() {
        if args.case.as_deref().is_some_and(|c| c != case.name) {
            continue;
        }
        let dir = root.join(case.name);
        std::fs::create_dir_all(&dir)?;
        let mut rng = Rng::new(0x5eed_0000 + i as u64);
        let mut reqs = Vec::new();
        (case.build)(&mut rng, &mut reqs);
        for old in ["input.log.gz", "input.pcap"] {
            let _ = std::fs::remove_file(dir.join(old));
        }
        match case.format {
            Format::Log => write_log(&mut reqs, &dir.join("input.log.gz"))?,
            Format::Pcap => write_pcap(&mut reqs, &dir.join("input.pcap"))?,
        }
        let config = dir.join("config.toml");
        if !config.exists() {
            std::fs::write(
                &config,
                "# Detector defaults (docs/detection.md); override with [[detect.detector]] tables.\n",
            )
            .context("config.toml")?;
        }
        let args_file = dir.join("args");
        if case.args.is_empty() {
            let _ = std::fs::remove_file(&args_file);
        } else {
            std::fs::write(&args_file, case.args.join("\n") + "\n")?;
        }
        println!("{}: {} requests", case.name, reqs.len());
    }
    Ok(())
}
