//! The golden cases of signal 17, bursts (issue 33): a directory scan at
//! tool speed, a login brute force the application answers 200, a
//! Basic-auth guessing loop, a WordPress-style `?author=` walk and a
//! cache-busting flood, each over an ordinary API; and ordinary bursts
//! that must stay quiet. The tools wear library user agents, not their
//! own, so that the burst is the only thing that gives them away.

use crate::traffic::*;

fn background(rng: &mut Rng, out: &mut Vec<Req>) {
    ordinary(rng, T0, 12, 30, out);
}

/// gobuster with its user agent changed: a wordlist at eight requests a
/// second, nearly all 404.
pub fn scan(rng: &mut Rng, out: &mut Vec<Req>) {
    background(rng, out);
    let words = [
        "images", "css", "js", "blog", "news", "about", "contact", "search", "home", "docs", "download", "media",
        "forum", "shop", "store", "assets", "static", "files", "help", "support", "events", "archive", "old", "new",
        "test", "demo", "dev", "beta", "v2", "legacy", "portal", "members", "services", "products", "careers", "press",
    ];
    let mut t = (T0 + 3 * HOUR) as f64;
    for w in words {
        let status = if matches!(w, "products" | "docs") { 301 } else { 404 };
        out.push(Req::new(t, "203.0.113.120", "GET", &format!("/{w}"), library("Go-http-client/1.1"), status));
        t += 0.125;
    }
}

/// A login hammered with passwords, answered 200 with an error in the
/// body every time: only the rate and the lack of anything else tell.
pub fn login(rng: &mut Rng, out: &mut Vec<Req>) {
    background(rng, out);
    let mut t = (T0 + 4 * HOUR) as f64;
    for _ in 0..40 {
        out.push(Req::new(t, "198.51.100.140", "POST", "/api/v1/login", library("python-requests/2.31.0"), 200));
        t += 2.0 + rng.below(3) as f64;
    }
}

/// hydra-style: a short list of users, each round one password more, on a
/// resource behind Basic auth.
pub fn basic_auth(rng: &mut Rng, out: &mut Vec<Req>) {
    background(rng, out);
    let users = ["admin", "root", "test", "guest", "operator"];
    let mut t = (T0 + 5 * HOUR) as f64;
    for _round in 0..3 {
        for u in users {
            out.push(Req::new(t, "192.0.2.140", "GET", "/api/v1/reports", library("curl/8.5.0"), 401).user(u));
            t += 2.0;
        }
    }
}

/// WordPress user enumeration: `/?author=1..20`, the existing authors
/// redirected to their pages, the rest 404.
pub fn id_walk(rng: &mut Rng, out: &mut Vec<Req>) {
    background(rng, out);
    let mut t = (T0 + 6 * HOUR) as f64;
    for id in 1..=20 {
        let status = if id <= 4 { 301 } else { 404 };
        out.push(Req::new(
            t,
            "100.64.2.140",
            "GET",
            &format!("/?author={id}"),
            library("python-requests/2.31.0"),
            status,
        ));
        t += 1.5;
    }
}

/// One product listing asked for with a fresh random query string twenty
/// times a second, so that no cache in front of the API can answer.
pub fn cache_busting(rng: &mut Rng, out: &mut Vec<Req>) {
    background(rng, out);
    let mut t = (T0 + 7 * HOUR) as f64;
    for _ in 0..200 {
        let target = format!("/api/v1/products?{:08x}", rng.next() as u32);
        out.push(Req::new(t, "100.64.3.140", "GET", &target, library("Go-http-client/1.1"), 200));
        t += 0.05;
    }
}

/// Ordinary bursts that must stay quiet.
pub fn quiet(rng: &mut Rng, out: &mut Vec<Req>) {
    background(rng, out);
    let b = || browser(CHROME_WIN);
    // A single-page app's first load: thirty assets in two seconds, three
    // of them missing.
    let mut t = (T0 + HOUR) as f64;
    for k in 0..30u64 {
        let (p, s) = match k {
            7 | 15 | 23 => (format!("/static/js/chunk-{k}.js.map"), 404),
            _ => (
                format!(
                    "/static/{}/{k}.{}",
                    ["js", "css", "img"][k as usize % 3],
                    ["js", "css", "png"][k as usize % 3]
                ),
                200,
            ),
        };
        out.push(Req::new(t, "10.40.0.10", "GET", &p, b(), s));
        t += 2.0 / 30.0;
    }
    // A user mistyping a password twice, then getting it right.
    let mut t = (T0 + HOUR + 600) as f64;
    for s in [401, 401, 200] {
        out.push(Req::new(t, "10.40.0.11", "POST", "/api/v1/login", b(), s).user("user0011"));
        t += 6.0;
    }
    // A mobile app retrying a 401 three times, then logging in.
    let mut t = (T0 + HOUR + 1200) as f64;
    for _ in 0..3 {
        out.push(Req::new(t, "10.40.0.12", "GET", "/api/v1/orders", library(ANDROID_APP), 401).user("user0012"));
        t += 2.0;
    }
    out.push(Req::new(t, "10.40.0.12", "POST", "/api/v1/login", library(ANDROID_APP), 200).user("user0012"));
    // An office of forty behind one address, all logging in within two
    // minutes at nine (two mistype their password first), each then going
    // about their work.
    let start = T0 + 9 * HOUR;
    for u in 0..40u64 {
        let user = format!("office{u}");
        let mut t = (start + u * 3 + rng.below(3)) as f64;
        if u % 20 == 7 {
            out.push(Req::new(t, "203.0.113.210", "POST", "/api/v1/login", b(), 401).user(&user));
            t += 5.0;
        }
        out.push(Req::new(t, "203.0.113.210", "POST", "/api/v1/login", b(), 200).user(&user));
        for p in ["/api/v1/account", "/api/v1/products", "/api/v1/reports", "/api/v1/cart"] {
            t += 1.0 + rng.below(4) as f64;
            out.push(Req::new(t, "203.0.113.210", "GET", p, b(), 200).user(&user));
        }
    }
    // A paginated listing read by a browser, a page every few seconds.
    let mut t = (T0 + 10 * HOUR) as f64;
    for page in 1..=8 {
        let p = format!("/api/v1/products?page={page}&per_page=50&sort=price");
        out.push(Req::new(t, "10.40.0.13", "GET", &p, b(), 200).user("user0013"));
        t += 7.0 + rng.below(3) as f64;
    }
    // A search box's debounced autocomplete: what is typed, then a postcode.
    let mut t = (T0 + 10 * HOUR + 600) as f64;
    let typed = ["r", "re", "rej", "reje", "rejec", "reject", "rejectw", "rejectwa", "rejectwat", "rejectwatch"];
    let postcode = ["1", "10", "101", "1011", "10115"];
    for q in typed.iter().chain(&postcode) {
        out.push(Req::new(t, "10.40.0.14", "GET", &format!("/api/v1/search?q={q}"), b(), 200).user("user0014"));
        t += 0.3;
    }
    // A dashboard opening twelve saved reports by id at once.
    let mut t = (T0 + 11 * HOUR) as f64;
    for _ in 0..12 {
        let p = format!("/api/v1/reports?id={}", 1000 + rng.below(9000));
        out.push(Req::new(t, "10.40.0.15", "GET", &p, b(), 200).user("user0015"));
        t += 0.2;
    }
}
