//! Generated traffic for the golden detector cases, the multi-day scenario
//! and the detector benchmark: actor models (the seeds of docs/detection.md)
//! and an ordinary API's users, written as combined access logs (gzip) or
//! as pcap captures (for what only packets carry: header order, forwarding
//! headers, credentials). Deterministic: a seeded generator, fixed times.

use std::{
    borrow::Cow,
    io::{BufWriter, Write as _},
    net::IpAddr,
    path::Path,
    time::Duration,
};

use anyhow::Context as _;
use etherparse::PacketBuilder;
use pcap_file::{
    DataLink,
    pcap::{PcapHeader, PcapPacket, PcapWriter},
};

/// 2026-11-02T00:00:00Z, the start of every generated timeline.
pub const T0: u64 = 1_793_577_600;
pub const HOUR: u64 = 3600;
pub const DAY: u64 = 86_400;

#[derive(Clone, Debug)]
pub struct Req {
    /// Milliseconds since the Unix epoch.
    pub ms: u64,
    pub ip: IpAddr,
    pub method: String,
    pub target: String,
    /// Request headers after Host, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The HTTP Basic user the log names (`-` when none).
    pub user: Option<String>,
    pub status: u16,
    /// The whole request line as logged, when it is not `METHOD TARGET
    /// HTTP/1.1` (malformed lines; logs only).
    pub line: Option<String>,
}

impl Req {
    pub fn new(secs: f64, ip: &str, method: &str, target: &str, headers: Headers, status: u16) -> Self {
        Self {
            ms: (secs * 1000.0) as u64,
            ip: ip.parse().expect("address"),
            method: method.into(),
            target: target.into(),
            headers: headers.0,
            user: None,
            status,
            line: None,
        }
    }

    /// Logs `line` as the request line instead of method, target and
    /// version (as nginx escapes it: `\x16\x03`).
    pub fn line(mut self, line: &str) -> Self {
        self.line = Some(line.into());
        self
    }

    pub fn user(mut self, u: &str) -> Self {
        self.user = Some(u.into());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn user_agent(&self) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("user-agent")).map(|(_, v)| v.as_str())
    }
}

/// A client's header set, in its own order.
pub struct Headers(pub Vec<(String, String)>);

fn hv(pairs: &[(&str, &str)]) -> Headers {
    Headers(pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(n, v)| (n.to_string(), v.to_string())).collect())
}

/// What a real browser sends.
pub fn browser(ua: &str) -> Headers {
    hv(&[
        ("User-Agent", ua),
        ("Accept", "application/json, text/plain, */*"),
        ("Accept-Language", "en-US,en;q=0.9"),
        ("Accept-Encoding", "gzip, deflate, br"),
        ("Connection", "keep-alive"),
    ])
}

/// python-requests' order (and most libraries': few headers, no language).
pub fn library(ua: &str) -> Headers {
    hv(&[("User-Agent", ua), ("Accept-Encoding", "gzip, deflate"), ("Accept", "*/*"), ("Connection", "keep-alive")])
}

/// A script wearing a browser's user agent: the library's headers.
pub fn script_as_browser(ua: &str) -> Headers {
    hv(&[("User-Agent", ua), ("Accept-Encoding", "gzip, deflate"), ("Connection", "keep-alive")])
}

pub fn no_user_agent() -> Headers {
    hv(&[("Accept", "*/*"), ("Connection", "close")])
}

pub const SAFARI_IOS_14: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 14_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.0.3 Mobile/15E148 Safari/604.1";
pub const CHROME_WIN: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
pub const FIREFOX_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
pub const ANDROID_APP: &str = "ShopApp/5.2.1 (Android 14; Pixel 8) okhttp/4.12.0";

/// xorshift64*: small, seeded, the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

/// An ordinary, busy, well-behaved API: `clients` registered users on
/// browsers and the mobile app, each active a few times a day, using the
/// documented endpoints and succeeding; the occasional expired session
/// (one 401, then a login), a mistyped id (404), a registered TAXII
/// customer polling with success.
pub fn ordinary(rng: &mut Rng, from: u64, hours: u64, clients: u32, out: &mut Vec<Req>) {
    for c in 0..clients {
        // 250 hosts a /24 (never .0, never past .250), 256 /24s a /16.
        let ip = format!("10.{}.{}.{}", 20 + c / 64_000, (c / 250) % 256, c % 250 + 1);
        let user = format!("user{c:04}");
        let ua = *rng.pick(&[CHROME_WIN, FIREFOX_LINUX, SAFARI_IOS_14, ANDROID_APP, CHROME_WIN]);
        let headers = || if ua == ANDROID_APP { library(ua) } else { browser(ua) };
        let sessions = 1 + rng.below(2 * hours.div_ceil(24).max(1));
        for _ in 0..sessions {
            let mut t = (from + rng.below(hours * HOUR)) as f64;
            if rng.below(20) == 0 {
                out.push(Req::new(t, &ip, "GET", "/api/v1/orders", headers(), 401).user(&user));
                t += 2.0;
                out.push(Req::new(t, &ip, "POST", "/api/v1/login", headers(), 200).user(&user));
                t += 1.0;
            }
            for _ in 0..(3 + rng.below(8)) {
                let (m, target, status) = match rng.below(10) {
                    0..=2 => ("GET", "/api/v1/products".to_string(), 200),
                    3..=4 => ("GET", format!("/api/v1/products/{}", 100 + rng.below(400)), 200),
                    5 => ("GET", format!("/api/v1/products/{}", 90_000 + rng.below(100)), 404),
                    6 => ("GET", format!("/api/v1/orders/{}", 5000 + c as u64 * 10 + rng.below(3)), 200),
                    7 => ("POST", "/api/v1/cart".to_string(), 201),
                    8 => ("GET", "/api/v1/reports".to_string(), 200),
                    _ => ("GET", "/api/v1/account".to_string(), 200),
                };
                out.push(Req::new(t, &ip, m, &target, headers(), status).user(&user));
                t += 1.0 + rng.below(60) as f64;
            }
        }
    }
    // Two registered TAXII customers poll every 30 minutes, successfully.
    for (i, ip) in ["10.9.0.1", "10.9.0.2"].iter().enumerate() {
        let mut t = (from + 600 * i as u64) as f64;
        while t < (from + hours * HOUR) as f64 {
            out.push(Req::new(t, ip, "GET", TAXII, library("python-requests/2.31.0"), 200).user(&format!("taxii{i}")));
            t += 1800.0 + rng.below(20) as f64;
        }
    }
}

pub const TAXII: &str = "/taxii2/root/collections/0b6a2f4e-1c3d-4e5f-8a9b-0c1d2e3f4a5b/objects/";

/// A poller: one request per `period`, with `jitter` seconds of noise.
#[allow(clippy::too_many_arguments)]
pub fn poller(
    rng: &mut Rng,
    ip: &str,
    headers: &dyn Fn() -> Headers,
    target: &str,
    status: u16,
    from: u64,
    until: u64,
    period: u64,
    jitter: u64,
    out: &mut Vec<Req>,
) {
    let mut t = from;
    while t < until {
        out.push(Req::new(t as f64 + rng.below(jitter.max(1)) as f64, ip, "GET", target, headers(), status));
        t += period;
    }
}

fn sorted(reqs: &mut [Req]) {
    reqs.sort_by(|a, b| (a.ms, a.ip, &a.target).cmp(&(b.ms, b.ip, &b.target)));
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Civil date from days since the epoch (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub fn clf_time(secs: u64) -> String {
    let (y, m, d) = civil((secs / DAY) as i64);
    let s = secs % DAY;
    format!("{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000", MONTHS[m as usize - 1], s / 3600, (s / 60) % 60, s % 60)
}

/// One combined-log line.
pub fn combined_line(r: &Req) -> String {
    let ua = r.user_agent().unwrap_or("-");
    let line = r.line.clone().unwrap_or_else(|| format!("{} {} HTTP/1.1", r.method, r.target));
    format!(
        "{} - {} [{}] \"{}\" {} {} \"-\" \"{}\"",
        r.ip,
        r.user.as_deref().unwrap_or("-"),
        clf_time(r.ms / 1000),
        line,
        r.status,
        100 + r.target.len(),
        ua.replace('"', "\\\"")
    )
}

/// A gzip'd combined log, in time order.
pub fn write_log(reqs: &mut [Req], path: &Path) -> anyhow::Result<()> {
    sorted(reqs);
    let f = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut w = BufWriter::new(flate2::write::GzEncoder::new(f, flate2::Compression::best()));
    for r in reqs.iter() {
        writeln!(w, "{}", combined_line(r))?;
    }
    w.into_inner().map_err(|e| e.into_error())?.finish()?;
    Ok(())
}

/// A pcap: each exchange its own connection (request segment, then the
/// response 5 ms later), to a server at 192.168.100.1:80.
pub fn write_pcap(reqs: &mut [Req], path: &Path) -> anyhow::Result<()> {
    sorted(reqs);
    let f = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let header = PcapHeader { datalink: DataLink::ETHERNET, ..Default::default() };
    let mut w = PcapWriter::with_header(BufWriter::new(f), header)?;
    let mut packets: Vec<(u64, Vec<u8>)> = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        let port = 20_000 + (i % 40_000) as u16;
        let mut head = format!("{} {} HTTP/1.1\r\nHost: api.example.com\r\n", r.method, r.target);
        for (n, v) in &r.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(u) = &r.user {
            use base64::Engine as _;
            let cred = base64::engine::general_purpose::STANDARD.encode(format!("{u}:secret"));
            head.push_str(&format!("Authorization: Basic {cred}\r\n"));
        }
        head.push_str("\r\n");
        let resp = format!("HTTP/1.1 {} X\r\nContent-Length: 0\r\n\r\n", r.status);
        let server: IpAddr = "192.168.100.1".parse().expect("address");
        packets.push((r.ms * 1000, frame(r.ip, port, server, 80, 1000, head.as_bytes())?));
        packets.push((r.ms * 1000 + 5000, frame(server, 80, r.ip, port, 5000, resp.as_bytes())?));
    }
    packets.sort_by_key(|(t, _)| *t);
    for (us, data) in &packets {
        w.write_packet(&PcapPacket {
            timestamp: Duration::from_micros(*us),
            orig_len: data.len() as u32,
            data: Cow::Borrowed(data),
        })?;
    }
    Ok(())
}

fn frame(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, seq: u32, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let mut out = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            eth.ipv4(s.octets(), d.octets(), 64).tcp(sport, dport, seq, 64240).ack(1).psh().write(&mut out, payload)?
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            eth.ipv6(s.octets(), d.octets(), 64).tcp(sport, dport, seq, 64240).ack(1).psh().write(&mut out, payload)?
        }
        _ => anyhow::bail!("mixed address families"),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_times() {
        assert_eq!(clf_time(T0), "02/Nov/2026:00:00:00 +0000");
        assert_eq!(clf_time(1_763_805_600), "22/Nov/2025:10:00:00 +0000");
    }
}
