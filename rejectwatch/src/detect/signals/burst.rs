//! Signal 17, bursts: tool speed, measured in seconds beside the daily and
//! hourly volumes of the other signals. Five forms, each from one client:
//! - scan: many distinct paths answered 4xx within seconds (a directory
//!   scan at tool speed; a page's few missing assets stay far below);
//! - login: repeated POSTs to a login path, whatever the status (many
//!   applications answer a failed login 200), when they are most of what
//!   the client sent meanwhile: an office behind one address logs in many
//!   times, but each login comes with the rest of a session;
//! - auth failures: 401s for distinct credentials within a minute. One
//!   credential retried is an expired token (signal 15's loop), not
//!   guesses; logs and hashed identities name the Basic user but not the
//!   password, so one user's passwords guessed in a loop are left to the
//!   login form and to credential-scanning's surge;
//! - id walk: many distinct numeric values of one query parameter on one
//!   endpoint (`?author=1..N`), in sequence, or many more in any order.
//!   Pagination, sorting, free text and timestamps are ordinary: their
//!   names are data (`ordinary_params`);
//! - cache busting: one path with many distinct query strings.
//!
//! Each form keeps its own bounded table, so only the clients doing that
//! thing pay for it (not the shared client table, which every client
//! does). Which endpoints are logins is credential-scanning's
//! `login_endpoints`, one list for both.

use std::time::Duration;

use serde::Deserialize;

use super::{at_most, clip, credential::Logins, nonzero_duration, positive};
use crate::{
    detect::{
        Detector, Obs,
        client::{ClientKey, ClientState},
        evidence::{AUTH_FAILURE_BURST, CACHE_BUSTING, LOGIN_BURST, QUERY_ID_WALK, SCAN_BURST, Signal, emit},
        human,
        keyed::Keyed,
        window::{Distinct, h16, key64, key64_parts},
    },
    time::{Secs, duration_secs},
};

pub const NAME: &str = "burst";
/// Events a sliding window remembers: the most a count threshold may be.
const MAX_RECENT: usize = 32;
/// Distinct credentials remembered for the auth-failure form.
const MAX_CREDENTIALS: usize = 16;
/// Distinct query strings remembered per path.
const MAX_QUERIES: usize = 64;
/// Query parameters read per request: an attacker's hundred parameters
/// must not cost a hundred table touches.
const MAX_PARAMS: usize = 8;
/// Digits in a value read as an id (more would not fit in 64 bits).
const MAX_ID_DIGITS: usize = 18;

/// Query parameters whose numeric values are not ids: pagination (not
/// `p`, which is WordPress's post id), sorting, free text (a search box
/// sends what is typed, a postcode included), and cache busters and clocks
/// (jQuery's `_` counts up by one a request).
const ORDINARY_PARAMS: [&[&str]; 4] = [
    &[
        "page",
        "per_page",
        "page_size",
        "pagesize",
        "size",
        "limit",
        "offset",
        "start",
        "count",
        "cursor",
        "after",
        "before",
        "skip",
        "take",
    ],
    &["sort", "sort_by", "order", "order_by", "dir"],
    &["q", "query", "s", "search", "term", "keyword", "filter"],
    &["_", "t", "ts", "timestamp", "time", "v", "ver", "version", "rand", "nocache", "cb"],
];

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    /// Distinct paths answered 4xx within `scan_window`.
    pub scan_paths: u32,
    #[serde(with = "humantime_serde")]
    pub scan_window: Duration,
    /// POSTs to a login endpoint within `login_window`...
    pub login_posts: u32,
    #[serde(with = "humantime_serde")]
    pub login_window: Duration,
    /// ...making up at least this share of the client's requests since the
    /// first of them (a tool fetching the form before each POST is 0.5).
    pub login_share: f64,
    /// 401s for distinct credentials within `auth_window`.
    pub auth_failures: u32,
    #[serde(with = "humantime_serde")]
    pub auth_window: Duration,
    /// Distinct numeric values of one query parameter on one endpoint
    /// within `walk_window`, with at least `walk_sequential` steps to a
    /// neighbouring value (0: any order)...
    pub walk_ids: u32,
    pub walk_sequential: u32,
    /// ...or this many in any order.
    pub walk_ids_unordered: u32,
    #[serde(with = "humantime_serde")]
    pub walk_window: Duration,
    /// Query parameters whose numeric values are not ids (compared
    /// without case).
    pub ordinary_params: Vec<String>,
    /// Distinct query strings on one path within `flood_window`.
    pub flood_queries: u32,
    #[serde(with = "humantime_serde")]
    pub flood_window: Duration,
    /// Keys per form's table.
    pub max_keys: usize,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            scan_paths: 10,
            scan_window: Duration::from_secs(10),
            login_posts: 10,
            login_window: Duration::from_secs(60),
            login_share: 0.5,
            auth_failures: 5,
            auth_window: Duration::from_secs(60),
            walk_ids: 10,
            walk_sequential: 5,
            walk_ids_unordered: 30,
            walk_window: Duration::from_secs(60),
            ordinary_params: ORDINARY_PARAMS.iter().flat_map(|g| g.iter()).map(|p| p.to_string()).collect(),
            flood_queries: 50,
            flood_window: Duration::from_secs(10),
            max_keys: 100_000,
            cooldown: Duration::from_secs(3600),
        }
    }
}

impl Spec {
    pub fn validate(&self) -> Result<(), String> {
        for (name, d) in [
            ("scan_window", self.scan_window),
            ("login_window", self.login_window),
            ("auth_window", self.auth_window),
            ("walk_window", self.walk_window),
            ("flood_window", self.flood_window),
        ] {
            nonzero_duration(name, d)?;
        }
        for (name, v, max) in [
            ("scan_paths", self.scan_paths, MAX_RECENT),
            ("login_posts", self.login_posts, MAX_RECENT),
            ("auth_failures", self.auth_failures, MAX_CREDENTIALS),
            ("walk_ids", self.walk_ids, MAX_RECENT),
            ("walk_ids_unordered", self.walk_ids_unordered, MAX_RECENT),
            ("flood_queries", self.flood_queries, MAX_QUERIES),
        ] {
            positive(name, v as u64)?;
            at_most(name, v as u64, max as u64)?;
        }
        positive("max_keys", self.max_keys as u64)?;
        if !(self.login_share > 0.0 && self.login_share <= 1.0) {
            return Err(format!("login_share: {} is not in (0, 1]", self.login_share));
        }
        Ok(())
    }

    /// `login_endpoints`: credential-scanning's, configured or default.
    pub fn build(&self, login_endpoints: &[String]) -> Burst {
        Burst {
            spec: self.clone(),
            login_paths: Logins::new(login_endpoints),
            ordinary: self.ordinary_params.iter().map(|p| p.to_ascii_lowercase()).collect(),
            windows: [
                duration_secs(self.scan_window),
                duration_secs(self.login_window),
                duration_secs(self.auth_window),
                duration_secs(self.walk_window),
                duration_secs(self.flood_window),
            ],
            t: Box::new(Tables {
                scans: Keyed::new(self.max_keys, duration_secs(self.scan_window)),
                logins: Keyed::new(self.max_keys, duration_secs(self.login_window)),
                failures: Keyed::new(self.max_keys, duration_secs(self.auth_window)),
                walks: Keyed::new(self.max_keys, duration_secs(self.walk_window)),
                floods: Keyed::new(self.max_keys, duration_secs(self.flood_window)),
            }),
        }
    }
}

/// The forms, in the order of [`Burst::windows`]; also what keeps their
/// cooldowns apart.
#[derive(Clone, Copy)]
enum Form {
    Scan,
    Login,
    Auth,
    Walk,
    Flood,
}

/// A client's last `N` events of one kind, oldest first, each with an
/// item: an exact count over a sliding window of seconds (a fixed window
/// halves a burst that straddles its boundary, and at five or ten events
/// that is the difference).
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
#[serde(bound(serialize = "T: serde::Serialize", deserialize = "T: serde::Deserialize<'de> + Copy + Default"))]
struct Recent<T, const N: usize> {
    #[serde(with = "crate::detect::codec::array")]
    at: [Secs; N],
    #[serde(with = "crate::detect::codec::array")]
    item: [T; N],
    #[serde(deserialize_with = "crate::detect::codec::len_within::<_, N>")]
    len: u8,
}

impl<T: Copy + Default, const N: usize> Default for Recent<T, N> {
    fn default() -> Self {
        Self { at: [0; N], item: [T::default(); N], len: 0 }
    }
}

impl<T: Copy + Default + PartialEq, const N: usize> Recent<T, N> {
    /// Adds `item` at `now` and forgets events `window` seconds old or
    /// older, and with `distinct` an earlier event of the same item (it
    /// counts once, as of now). Returns the events held.
    fn add(&mut self, item: T, now: Secs, window: Secs, distinct: bool) -> usize {
        let mut kept = 0;
        for i in 0..self.len as usize {
            if now.saturating_sub(self.at[i]) < window && !(distinct && self.item[i] == item) {
                (self.at[kept], self.item[kept]) = (self.at[i], self.item[i]);
                kept += 1;
            }
        }
        if kept == N {
            self.at.copy_within(1.., 0);
            self.item.copy_within(1.., 0);
            kept -= 1;
        }
        (self.at[kept], self.item[kept]) = (now, item);
        self.len = (kept + 1) as u8;
        self.len as usize
    }

    fn oldest(&self) -> (Secs, T) {
        (self.at[0], self.item[0])
    }
}

/// One query parameter's numeric values on one endpoint from one client.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Walk {
    last: u64,
    sequential: u16,
    ids: Distinct<u16, MAX_RECENT>,
}

pub struct Burst {
    spec: Spec,
    /// Which endpoints are logins, as credential-scanning tells them.
    login_paths: Logins,
    ordinary: Vec<String>,
    windows: [Secs; 5],
    /// Boxed: five tables inline made every detector as large as this one
    /// in the engine's list.
    t: Box<Tables>,
}

/// [`Tables`] as a snapshot holds them, in their order.
type SavedTables = (
    Saved<ClientKey, Recent<u16, MAX_RECENT>>,
    Saved<ClientKey, Recent<u32, MAX_RECENT>>,
    Saved<ClientKey, Recent<u16, MAX_CREDENTIALS>>,
    Saved<(ClientKey, u64), Walk>,
    Saved<(ClientKey, u64), Distinct<u16, MAX_QUERIES>>,
);

type Saved<K, V> = crate::detect::keyed::Saved<K, V>;

struct Tables {
    /// Distinct 4xx paths (digests).
    scans: Keyed<ClientKey, Recent<u16, MAX_RECENT>>,
    /// Login POSTs, each with the client's request count when it came.
    logins: Keyed<ClientKey, Recent<u32, MAX_RECENT>>,
    /// 401s, by credential (digest).
    failures: Keyed<ClientKey, Recent<u16, MAX_CREDENTIALS>>,
    /// By client, and endpoint and parameter name.
    walks: Keyed<(ClientKey, u64), Walk>,
    /// Distinct query strings, by client and path.
    floods: Keyed<(ClientKey, u64), Distinct<u16, MAX_QUERIES>>,
}

impl Burst {
    fn window(&self, f: Form) -> Secs {
        self.windows[f as usize]
    }

    fn cooling_key(f: Form, o: &Obs<'_>, extra: u64) -> u64 {
        key64_parts(&[&[f as u8], &o.key.hash32().to_le_bytes(), &extra.to_le_bytes()])
    }

    fn scan(&mut self, o: &Obs<'_>, out: &mut Vec<Signal>) {
        let w = self.window(Form::Scan);
        let path = o.ex.path();
        let n = self.t.scans.touch(o.key, o.now, Recent::default).add(h16(key64(path.as_bytes())), o.now, w, true);
        let key = Self::cooling_key(Form::Scan, o, 0);
        if n < self.spec.scan_paths as usize || o.cooling(key) {
            return;
        }
        emit(out, || {
            Signal::new(
                NAME,
                SCAN_BURST,
                key,
                vec![o.key],
                format!("{} was refused on {n} distinct paths within {}", o.key, human(w)),
            )
            .endpoint(o.endpoint)
            .with("form", "scan")
            .with("distinct_paths", n)
            .with("window_seconds", w)
            .with("last_path", clip(path, 64))
            .with("last_status", o.status())
        });
    }

    fn login(&mut self, o: &Obs<'_>, c: &ClientState, out: &mut Vec<Signal>) {
        let w = self.window(Form::Login);
        let r = self.t.logins.touch(o.key, o.now, Recent::default);
        let n = r.add(c.requests, o.now, w, false);
        if n < self.spec.login_posts as usize {
            return;
        }
        let sent = c.requests.wrapping_sub(r.oldest().1).saturating_add(1).max(n as u32);
        let key = Self::cooling_key(Form::Login, o, o.ep);
        if (n as f64) < self.spec.login_share * sent as f64 || o.cooling(key) {
            return;
        }
        emit(out, || {
            Signal::new(
                NAME,
                LOGIN_BURST,
                key,
                vec![o.key],
                format!("{} sent {n} POSTs to {} within {} (of {sent} requests)", o.key, o.endpoint, human(w)),
            )
            .endpoint(o.endpoint)
            .with("form", "login")
            .with("login_posts", n)
            .with("requests", sent)
            .with("window_seconds", w)
            .with("last_status", o.status())
        });
    }

    fn auth(&mut self, o: &Obs<'_>, out: &mut Vec<Signal>) {
        let Some(id) = o.ex.identity else { return };
        let w = self.window(Form::Auth);
        let n = self.t.failures.touch(o.key, o.now, Recent::default).add(h16(id.0), o.now, w, true);
        let key = Self::cooling_key(Form::Auth, o, 0);
        if n < self.spec.auth_failures as usize || o.cooling(key) {
            return;
        }
        emit(out, || {
            Signal::new(
                NAME,
                AUTH_FAILURE_BURST,
                key,
                vec![o.key],
                format!("{} failed authentication with {n} different credentials within {}", o.key, human(w)),
            )
            .endpoint(o.endpoint)
            .with("form", "auth_failures")
            .with("credentials", n)
            .with("window_seconds", w)
            .with("identity_kind", o.ex.identity_kind.unwrap_or("unknown"))
        });
    }

    fn query(&mut self, o: &Obs<'_>, query: &str, out: &mut Vec<Signal>) {
        let path = o.ex.path();
        let fw = self.window(Form::Flood);
        let q = h16(key64(query.as_bytes()));
        let n = self.t.floods.touch((o.key, key64(path.as_bytes())), o.now, Distinct::default).add(q, o.now, fw);
        let key = Self::cooling_key(Form::Flood, o, key64(path.as_bytes()));
        if n >= self.spec.flood_queries as usize && !o.cooling(key) {
            emit(out, || {
                Signal::new(
                    NAME,
                    CACHE_BUSTING,
                    key,
                    vec![o.key],
                    format!("{} sent {n} distinct query strings to {} within {}", o.key, clip(path, 64), human(fw)),
                )
                .endpoint(o.endpoint)
                .with("form", "cache_busting")
                .with("distinct_queries", n)
                .with("window_seconds", fw)
            });
        }
        for pair in query.split('&').take(MAX_PARAMS) {
            let Some((name, value)) = pair.split_once('=') else { continue };
            if value.is_empty() || value.len() > MAX_ID_DIGITS || !value.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if self.ordinary.iter().any(|p| p.eq_ignore_ascii_case(name)) {
                continue;
            }
            let Ok(id) = value.parse::<u64>() else { continue };
            self.walk(o, name, id, out);
        }
    }

    fn walk(&mut self, o: &Obs<'_>, name: &str, id: u64, out: &mut Vec<Signal>) {
        let w = self.window(Form::Walk);
        let param = key64_parts(&[o.endpoint.as_bytes(), name.as_bytes()]);
        let s = self.t.walks.touch((o.key, param), o.now, Walk::default);
        if !s.ids.is_empty() && o.now.saturating_sub(s.ids.started()) >= w {
            *s = Walk::default();
        }
        if !s.ids.is_empty() && id.abs_diff(s.last) == 1 {
            s.sequential = s.sequential.saturating_add(1);
        }
        s.last = id;
        let n = s.ids.add(h16(key64(&id.to_le_bytes())), o.now, w);
        let walked = n >= self.spec.walk_ids as usize && s.sequential as u32 >= self.spec.walk_sequential;
        let key = Self::cooling_key(Form::Walk, o, param);
        if !(walked || n >= self.spec.walk_ids_unordered as usize) || o.cooling(key) {
            return;
        }
        let sequential = s.sequential;
        emit(out, || {
            Signal::new(
                NAME,
                QUERY_ID_WALK,
                key,
                vec![o.key],
                format!(
                    "{} walked {n} distinct values of `{}` on {} within {} ({sequential} in sequence)",
                    o.key,
                    clip(name, 32),
                    o.endpoint,
                    human(w)
                ),
            )
            .endpoint(o.endpoint)
            .with("form", "id_walk")
            .with("parameter", clip(name, 32))
            .with("distinct_ids", n)
            .with("sequential_steps", sequential)
            .with("last_id", id)
            .with("window_seconds", w)
        });
    }
}

impl Detector for Burst {
    fn observe(&mut self, o: &Obs<'_>, c: &mut ClientState, out: &mut Vec<Signal>) {
        let status = o.status();
        if (400..500).contains(&status) {
            self.scan(o, out);
        }
        if status == 401 {
            self.auth(o, out);
        }
        if &*o.ex.method == "POST" && self.login_paths.is_login(o.ep, o.endpoint) {
            self.login(o, c, out);
        }
        let target = o.ex.target();
        if let Some(q) = memchr::memchr(b'?', target.as_bytes()).map(|i| &target[i + 1..])
            && !q.is_empty()
        {
            self.query(o, q, out);
        }
    }

    fn sweep(&mut self, now: Secs) {
        self.t.scans.sweep(now);
        self.t.logins.sweep(now);
        self.t.failures.sweep(now);
        self.t.walks.sweep(now);
        self.t.floods.sweep(now);
    }

    fn keys(&self) -> usize {
        self.t.scans.len() + self.t.logins.len() + self.t.failures.len() + self.t.walks.len() + self.t.floods.len()
    }

    fn save(&self) -> Result<Vec<u8>, crate::detect::codec::Error> {
        let t = &*self.t;
        crate::detect::codec::encode(&(&t.scans, &t.logins, &t.failures, &t.walks, &t.floods))
    }

    fn restore(&mut self, saved: &[u8]) -> Result<(), crate::detect::codec::Error> {
        let (scans, logins, failures, walks, floods): SavedTables = crate::detect::codec::decode(saved)?;
        let t = &mut *self.t;
        t.scans.restore(scans);
        t.logins.restore(logins);
        t.failures.restore(failures);
        t.walks.restore(walks);
        t.floods.restore(floods);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_counts_a_sliding_window_exactly() {
        let mut r = Recent::<u16, 4>::default();
        assert_eq!(r.add(1, 100, 10, true), 1);
        assert_eq!(r.add(2, 105, 10, true), 2);
        assert_eq!(r.add(1, 109, 10, true), 2, "an item seen again counts once");
        // 100 has gone: its item came again at 109.
        assert_eq!(r.add(3, 114, 10, true), 3);
        // 105 is 10 s old: out of a 10 s window.
        assert_eq!(r.add(4, 115, 10, true), 3);
        for (i, t) in (5..9).zip(116..) {
            r.add(i, t, 10, true);
        }
        assert_eq!(r.len, 4, "capped at N, oldest dropped");
        let mut c = Recent::<u32, 8>::default();
        assert_eq!(c.add(7, 0, 60, false), 1);
        assert_eq!(c.add(7, 1, 60, false), 2, "counted, not deduplicated");
        assert_eq!(c.oldest(), (0, 7));
    }
}
