//! The live daemon's HTTP API, beside `/metrics`: the actor roster,
//! recent findings, the prospects, disclosure markers, the HTML report of
//! everything since the start (`/report`), the threat actors as a STIX
//! bundle, what XDP enforces, and the blocklist as threat-feed URLs
//! (`/blocklist.txt`, `.nft`, `.ipset`) for firewalls that poll one and as
//! CrowdSec decisions (`/v1/…`, see [`crate::decisions`]) for CrowdSec's
//! bouncers. Everything but `/metrics` and `/v1/…` wants the bearer token
//! when one is configured; a token is required to listen beyond loopback,
//! since the roster names addresses and the API takes markers. `/v1/…`
//! wants a bouncer key (`X-Api-Key`), as CrowdSec's API does.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Query, RawQuery, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    blocklist::format::{Format, Render},
    decisions::{self, Decisions, Filter, Target},
    detect::evidence::Class,
    metrics::Metrics,
    pipeline::Pipeline,
    report::{Prospect, RosterEntry},
    state::marks::Mark,
    time::{Nanos, Secs, format_ts, logtime},
};

/// `[api]` in the config file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Bearer token for `/api/…` and `/blocklist.*`; required when
    /// `--listen` is not a loopback address.
    pub token: Option<String>,
    /// The token read from a file instead (one line), so it stays out of
    /// the config.
    pub token_file: Option<PathBuf>,
    /// Findings kept for `/api/v1/findings`.
    pub findings_kept: usize,
    /// Keys CrowdSec bouncers send (`X-Api-Key`) for the decisions API
    /// (`/v1/decisions…`); none: that API refuses everyone. One per
    /// bouncer: each key has its own place in the stream.
    pub bouncer_keys: Vec<String>,
    /// Connections served at once; more are answered 503 and closed
    /// (`rejectwatch_api_refused_connections_total`), so a flood of idle
    /// connections cannot take every socket and task.
    pub max_connections: usize,
    /// Bytes of a request's start line and headers; more: 431.
    pub max_header_bytes: usize,
    /// Bytes of a request body (the only bodies taken are markers and
    /// bouncers' usage reports, a few hundred bytes); more: 413.
    pub max_body_bytes: usize,
    /// Time for a request's head to arrive, from the connection's start or
    /// the end of its previous request: a client dribbling a head
    /// (slowloris) or idling on a kept-alive connection is closed after it.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Time for the rest of a request (its body and the answer): 408 after.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            token: None,
            token_file: None,
            findings_kept: 10_000,
            bouncer_keys: Vec::new(),
            max_connections: 256,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Shorter tokens are guessable over a network.
const MIN_TOKEN: usize = 16;
/// The smallest head limit: hyper's read buffer cannot be smaller, and
/// a bouncer's or a browser's ordinary head fits.
const MIN_HEADER_BYTES: usize = 8192;
/// The smallest body limit: a marker with the longest note kept.
const MIN_BODY_BYTES: usize = 4096;

impl ApiConfig {
    /// What the listener allows each client.
    pub fn limits(&self) -> crate::listener::Limits {
        crate::listener::Limits {
            max_connections: self.max_connections,
            max_header_bytes: self.max_header_bytes,
            max_body_bytes: self.max_body_bytes,
            header_timeout: self.header_timeout,
            request_timeout: self.request_timeout,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.token.is_some() && self.token_file.is_some() {
            return Err("api.token_file: give either api.token or api.token_file, not both".into());
        }
        if let Some(t) = &self.token
            && t.trim().len() < MIN_TOKEN
        {
            return Err(format!("api.token: shorter than {MIN_TOKEN} characters"));
        }
        if self.max_connections == 0 {
            return Err("api.max_connections: must be at least 1".into());
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(format!("api.max_header_bytes: must be at least {MIN_HEADER_BYTES}"));
        }
        if self.max_body_bytes < MIN_BODY_BYTES {
            return Err(format!(
                "api.max_body_bytes: must be at least {MIN_BODY_BYTES} (a marker's note is up to 1000 characters)"
            ));
        }
        for (name, d) in [("api.header_timeout", self.header_timeout), ("api.request_timeout", self.request_timeout)] {
            if d.is_zero() {
                return Err(format!("{name}: must be longer than zero"));
            }
        }
        for (i, k) in self.bouncer_keys.iter().enumerate() {
            if k.trim().len() < MIN_TOKEN {
                return Err(format!("api.bouncer_keys: key {} is shorter than {MIN_TOKEN} characters", i + 1));
            }
            if self.bouncer_keys[..i].iter().any(|o| o.trim() == k.trim()) {
                return Err(format!(
                    "api.bouncer_keys: key {} is given twice (one key per bouncer: each pulls its own stream)",
                    i + 1
                ));
            }
        }
        Ok(())
    }

    /// The token, read from `token_file` if that is where it is.
    pub fn resolve_token(&self) -> anyhow::Result<Option<String>> {
        let t = match (&self.token, &self.token_file) {
            (Some(t), _) => t.trim().to_string(),
            (None, Some(p)) => std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("api.token_file: cannot read {}: {e}", p.display()))?
                .trim()
                .to_string(),
            (None, None) => return Ok(None),
        };
        if t.len() < MIN_TOKEN {
            anyhow::bail!("api.token_file: the token is shorter than {MIN_TOKEN} characters");
        }
        Ok(Some(t))
    }
}

#[derive(Clone)]
pub struct Api {
    pub pipeline: Arc<Mutex<Pipeline>>,
    pub metrics: Arc<Mutex<Metrics>>,
    pub token: Option<Arc<str>>,
    pub state_dir: PathBuf,
    /// `api.bouncer_keys`.
    pub bouncers: Arc<[String]>,
    pub decisions: Arc<Mutex<Decisions>>,
    pub stix: crate::stix::StixConfig,
}

/// Refuses a non-loopback listener without a token, in one line that
/// says what to do.
pub fn check_exposure(listen: SocketAddr, token: &Option<String>) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() && token.is_none() {
        anyhow::bail!(
            "--listen {listen}: not a loopback address, so the API needs a bearer token: set api.token or \
             api.token_file in the config"
        );
    }
    Ok(())
}

pub fn router(api: Api) -> Router {
    let protected = Router::new()
        .route("/api/v1/actors", get(actors))
        .route("/api/v1/findings", get(findings))
        .route("/api/v1/prospects", get(prospects))
        .route("/api/v1/marks", get(list_marks).post(add_mark))
        .route("/api/v1/enforced", get(enforced))
        .route("/report", get(report))
        .route("/api/v1/stix", get(stix))
        .route("/blocklist.txt", get(|s| blocklist(s, Format::Txt)))
        .route("/blocklist.nft", get(|s| blocklist(s, Format::Nft)))
        .route("/blocklist.ipset", get(|s| blocklist(s, Format::Ipset)))
        .route_layer(middleware::from_fn_with_state(api.clone(), authorize));
    // CrowdSec's paths; `get` answers HEAD too, but a HEAD of the stream
    // must not move the bouncer's place in it.
    let bouncers = Router::new()
        .route("/v1/decisions", get(live_decisions))
        .route("/v1/decisions/stream", get(stream_decisions).head(stream_head))
        .route("/v1/usage-metrics", post(usage_metrics))
        .layer(DefaultBodyLimit::max(USAGE_METRICS_MAX));
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .merge(protected)
        .merge(bouncers)
        .with_state(api)
}

/// The largest usage-metrics report taken (they are a few kilobytes).
const USAGE_METRICS_MAX: usize = 64 * 1024;

/// What `GET /` lists: the listen address opened in a browser or with
/// curl says where everything is, as exporters' landing pages do, rather
/// than an empty 404.
const ENDPOINTS: &str = "\
GET  /metrics                            Prometheus metrics
GET  /api/v1/actors[?classification=C]   the actor roster (C: threat, prospect, misconfiguration, unknown)
GET  /api/v1/findings[?since=T][&limit=N] recent findings, oldest first (T: RFC 3339 or a duration back, 1h)
GET  /api/v1/prospects                   prospects to contact
GET  /api/v1/marks                       disclosure markers
POST /api/v1/marks                       add one: {\"kind\":\"disclosure\",\"at\":\"RFC 3339\",\"note\":\"...\"}
GET  /report                             the HTML report since the start: verdict, timeline, actors, prospects
GET  /api/v1/stix                        the threat actors as a STIX 2.1 bundle
GET  /blocklist.txt, .nft, .ipset        the blocklist as a feed
GET  /api/v1/enforced                    what XDP drops now (--enforce xdp)
GET  /v1/decisions/stream?startup=B      the blocklist as CrowdSec decisions, for bouncers (X-Api-Key)
GET  /v1/decisions?ip=A|range=N          CrowdSec live mode: the decisions about an address or network
";

async fn index(State(api): State<Api>) -> impl IntoResponse {
    let auth = if api.token.is_some() {
        "Everything but /metrics and this page wants `Authorization: Bearer <api.token>`.\n"
    } else {
        ""
    };
    let body = format!("rejectwatch {}\n\n{ENDPOINTS}{auth}", env!("CARGO_PKG_VERSION"));
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body)
}

use crate::listener::error;

async fn authorize(State(api): State<Api>, req: Request, next: Next) -> Response {
    if let Some(token) = &api.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same_secret(given.as_bytes(), token.as_bytes()) {
            let mut r = error(StatusCode::UNAUTHORIZED, "a bearer token is required");
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(req).await
}

/// Whether a secret sent equals the one configured, in time that says
/// nothing about either: the digests are compared in constant time, so
/// not even the length of the configured one shows (comparing the bytes
/// themselves returns at once on a length mismatch).
fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    use sha2::Digest as _;
    use subtle::ConstantTimeEq as _;
    bool::from(sha2::Sha256::digest(given).as_slice().ct_eq(sha2::Sha256::digest(secret).as_slice()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn enforced(State(api): State<Api>) -> impl IntoResponse {
    let nets = lock(&api.pipeline).enforced();
    Json(json!({ "enforced": nets.iter().map(ToString::to_string).collect::<Vec<_>>(), "count": nets.len() }))
}

async fn metrics(State(api): State<Api>) -> impl IntoResponse {
    let body = lock(&api.metrics).encode();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActorQuery {
    classification: Option<String>,
}

/// The query string as axum's `Query` would read it, so the handlers'
/// parsing is a pure function of the request's bytes (and fuzzed as one).
fn query<T: serde::de::DeserializeOwned>(raw: Option<&str>) -> Result<T, String> {
    serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|e| format!("Failed to deserialize query string: {e}"))
}

/// `GET /api/v1/actors`' query: the class asked for, if any.
#[doc(hidden)]
pub fn actors_query(raw: Option<&str>) -> Result<Option<Class>, String> {
    let q: ActorQuery = query(raw)?;
    match q.classification.as_deref().map(Class::parse) {
        None => Ok(None),
        Some(Some(c)) => Ok(Some(c)),
        Some(None) => Err("classification: one of threat, prospect, misconfiguration, unknown".into()),
    }
}

async fn actors(State(api): State<Api>, RawQuery(q): RawQuery) -> Response {
    let want = match actors_query(q.as_deref()) {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let p = lock(&api.pipeline);
    let list: Vec<RosterEntry> = p
        .detect
        .roster()
        .actors()
        .into_iter()
        .filter(|a| want.is_none_or(|c| a.class == c))
        .map(|a| RosterEntry::of(a, &p.blocklist))
        .collect();
    Json(list).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingQuery {
    /// RFC 3339 time, or a duration back from the newest record (`1h`).
    since: Option<String>,
    /// Read as text, so that a bad one is named in the answer.
    limit: Option<String>,
}

/// `GET /api/v1/findings`' query: (since, limit), with `now` the newest
/// record's time.
#[doc(hidden)]
pub fn findings_query(raw: Option<&str>, now: Nanos) -> Result<(Nanos, usize), String> {
    let q: FindingQuery = query(raw)?;
    let since = match q.since.as_deref() {
        None => 0,
        Some(s) => match logtime::rfc3339(s) {
            Some(t) => t,
            // A duration longer than the epoch's age reaches back to it.
            None => match humantime::parse_duration(s) {
                Ok(d) => now.saturating_sub(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
                Err(_) => return Err("since: an RFC 3339 time or a duration such as 1h".into()),
            },
        },
    };
    let limit = match q.limit.as_deref() {
        None => 1000,
        Some(n) => n.parse().map_err(|_| format!("limit: {n:?} is not a whole number of findings"))?,
    };
    Ok((since, limit))
}

async fn findings(State(api): State<Api>, RawQuery(q): RawQuery) -> Response {
    let p = lock(&api.pipeline);
    let (since, limit) = match findings_query(q.as_deref(), (p.now() as u64).saturating_mul(1_000_000_000)) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let recent = p.sinks.recent_findings();
    let mut out: Vec<_> = recent.iter().rev().filter(|f| f.ts >= since).take(limit).collect();
    out.reverse();
    Json(out).into_response()
}

async fn prospects(State(api): State<Api>) -> Response {
    let p = lock(&api.pipeline);
    let list: Vec<Prospect> = p
        .detect
        .roster()
        .actors()
        .into_iter()
        .filter(|a| a.class == Class::Prospect)
        .map(|a| Prospect::of(a, p.enricher.geo()))
        .collect();
    Json(list).into_response()
}

/// The page `analyze --report` writes, of everything since the start.
async fn report(State(api): State<Api>) -> Response {
    // Read before the pipeline is locked: the daemon waits while it is.
    let marks = crate::state::marks::load(&api.state_dir).unwrap_or_default();
    let p = lock(&api.pipeline);
    let page = crate::html::Report {
        source: "live".into(),
        actors: p.detect.roster().actors(),
        blocklist: &p.blocklist,
        geo: p.enricher.geo(),
        tally: &p.sinks.tally,
        findings: p.sinks.findings_written,
        as_of: p.detect.now(),
        marks: marks.iter().map(|m| crate::time::secs(m.at)).collect(),
    }
    .render();
    // The page carries its own policy; a browser must not guess its type.
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")], page)
        .into_response()
}

async fn list_marks(State(api): State<Api>) -> Response {
    match crate::state::marks::load(&api.state_dir) {
        Ok(m) => Json(m).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMark {
    kind: String,
    /// RFC 3339; default now.
    at: Option<String>,
    note: Option<String>,
}

/// `POST /api/v1/marks`' JSON body as the marker to record; `now` is its
/// time when the body names none.
#[doc(hidden)]
pub fn new_mark(body: &[u8], now: Nanos) -> Result<Mark, String> {
    let Json(m) = Json::<NewMark>::from_bytes(body).map_err(|e| e.body_text())?;
    if m.kind != crate::state::marks::DISCLOSURE {
        return Err("kind: the only marker kind is `disclosure`".into());
    }
    let at = match m.at.as_deref() {
        None => now,
        Some(s) => logtime::rfc3339(s).ok_or("at: not an RFC 3339 time")?,
    };
    let note = m.note.map(|n| n.chars().take(1000).collect());
    Ok(Mark { kind: m.kind, at, note })
}

/// Whether the request says its body is JSON (`application/json` or a
/// `+json` type), as axum's `Json` extractor asks.
fn json_body(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Records the marker in the state directory, where the daemon (this one,
/// within a second) picks it up, exactly as `rejectwatch mark` does.
async fn add_mark(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    if !json_body(&headers) {
        return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Expected request with `Content-Type: application/json`");
    }
    let mark = match new_mark(&body, crate::time::clock::wall_now()) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let at = mark.at;
    match crate::state::marks::record(&api.state_dir, &mark) {
        Ok(()) => {
            log::info!("disclosure marked at {} over the API", format_ts(at));
            (StatusCode::CREATED, Json(mark)).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

async fn blocklist(State(api): State<Api>, f: Format) -> Response {
    let p = lock(&api.pipeline);
    let entries = p.blocklist.entries();
    let body = Render { entries: &entries, now: p.now(), nft_rule: p.nft_rule() }.to_string(f);
    ([(header::CONTENT_TYPE, f.content_type())], body).into_response()
}

async fn stix(State(api): State<Api>) -> Response {
    let p = lock(&api.pipeline);
    let actors = p.detect.roster().actors();
    Json(crate::stix::bundle(&actors, &p.blocklist, &api.stix)).into_response()
}

/// The index of the bouncer key the request carries, if it carries one.
/// Every key is compared, in constant time, so the time taken says
/// nothing about which one (nearly) matched.
fn bouncer(api: &Api, headers: &HeaderMap) -> Option<usize> {
    let given = headers.get("x-api-key").map_or(&b""[..], |v| v.as_bytes());
    let mut found = None;
    for (i, k) in api.bouncers.iter().enumerate() {
        if same_secret(given, k.as_bytes()) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

/// CrowdSec's answer to a request without a valid key.
fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, Json(json!({ "message": "access forbidden" }))).into_response()
}

/// The decisions brought up to date with the blocklist, and the record
/// time they are as of.
fn synced(api: &Api) -> (std::sync::MutexGuard<'_, Decisions>, Secs) {
    let p = lock(&api.pipeline);
    let entries = p.blocklist.entries();
    let now = p.now();
    let mut d = lock(&api.decisions);
    // Only entries new to the decisions need their actor's scenario.
    let mut names = None;
    d.sync(&entries, now, |actor| {
        let names = names.get_or_insert_with(|| decisions::scenarios(p.detect.roster().iter()));
        names.get(actor).cloned().unwrap_or_else(|| format!("{}/threat", decisions::ORIGIN))
    });
    (d, now)
}

/// The query parameters bouncers send; others (newer bouncers' flags
/// about CrowdSec's community lists) are ignored.
#[derive(Deserialize)]
struct StreamQuery {
    startup: Option<String>,
    scopes: Option<String>,
    origins: Option<String>,
    scenarios_containing: Option<String>,
    scenarios_not_containing: Option<String>,
}

async fn stream_decisions(State(api): State<Api>, headers: HeaderMap, Query(q): Query<StreamQuery>) -> Response {
    let Some(key) = bouncer(&api, &headers) else { return forbidden() };
    let filter = Filter {
        scopes: Filter::list(q.scopes.as_deref()),
        origins: Filter::list(q.origins.as_deref()),
        containing: Filter::list(q.scenarios_containing.as_deref()),
        not_containing: Filter::list(q.scenarios_not_containing.as_deref()),
    };
    let (mut d, now) = synced(&api);
    let (new, deleted) = d.pull(key, q.startup.as_deref() == Some("true"), &filter);
    drop(d);
    // Empty lists as `[]`, as CrowdSec's stream writes them: bouncers in
    // other languages iterate over them without a null check.
    let json = |ds: Vec<decisions::Decision>| ds.iter().map(|x| x.json(now)).collect::<Vec<_>>();
    Json(json!({ "new": json(new), "deleted": json(deleted) })).into_response()
}

async fn stream_head(State(api): State<Api>, headers: HeaderMap) -> Response {
    match bouncer(&api, &headers) {
        Some(_) => StatusCode::OK.into_response(),
        None => forbidden(),
    }
}

#[derive(Deserialize)]
struct LiveQuery {
    ip: Option<String>,
    range: Option<String>,
    scope: Option<String>,
    value: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    contains: Option<String>,
    origins: Option<String>,
    scenarios_containing: Option<String>,
    scenarios_not_containing: Option<String>,
}

/// CrowdSec's live mode: the decisions about one address or network,
/// `null` when there are none (as CrowdSec answers).
async fn live_decisions(State(api): State<Api>, headers: HeaderMap, Query(q): Query<LiveQuery>) -> Response {
    if bouncer(&api, &headers).is_none() {
        return forbidden();
    }
    let bad = |what: &str, v: &str| {
        (StatusCode::BAD_REQUEST, Json(json!({ "message": format!("{what}: {v:?} is not valid") }))).into_response()
    };
    let net = |v: &str| crate::config::value::parse_net(v).ok();
    let covering = q.contains.as_deref() != Some("false");
    let range = |n| if covering { Target::Covering(n) } else { Target::Within(n) };
    let scope = q.scope.as_deref().map(str::to_ascii_lowercase);
    let target = match (&q.ip, &q.range, &q.value) {
        (Some(ip), _, _) => match ip.parse::<std::net::IpAddr>() {
            Ok(a) => Target::Covering(a.into()),
            Err(_) => return bad("ip", ip),
        },
        (None, Some(r), _) => match net(r) {
            Some(n) => range(n),
            None => return bad("range", r),
        },
        (None, None, Some(v)) => match (scope.as_deref(), net(v)) {
            (Some("range"), Some(n)) => range(n),
            (Some("ip") | None, Some(n)) if n.prefix_len() == n.max_prefix_len() => Target::Covering(n),
            (Some(s), _) if s != "ip" && s != "range" => return Json(Value::Null).into_response(),
            _ => return bad("value", v),
        },
        (None, None, None) => Target::All,
    };
    if q.kind.as_deref().is_some_and(|k| !k.eq_ignore_ascii_case("ban")) {
        return Json(Value::Null).into_response();
    }
    let filter = Filter {
        scopes: Filter::list(scope.as_deref()),
        origins: Filter::list(q.origins.as_deref()),
        containing: Filter::list(q.scenarios_containing.as_deref()),
        not_containing: Filter::list(q.scenarios_not_containing.as_deref()),
    };
    let (d, now) = synced(&api);
    let found: Vec<_> = d.matching(target, &filter).into_iter().map(|x| x.json(now)).collect();
    if found.is_empty() { Json(Value::Null).into_response() } else { Json(found).into_response() }
}

/// Newer bouncers report what they blocked; taken and not kept (the
/// daemon's own metrics say what it listed).
async fn usage_metrics(State(api): State<Api>, headers: HeaderMap, _body: Bytes) -> Response {
    match bouncer(&api, &headers) {
        Some(_) => StatusCode::CREATED.into_response(),
        None => forbidden(),
    }
}

/// Binds `addr` now (so a taken port fails at start) and serves in the
/// background, within `limits` (see [`crate::listener`]).
pub async fn serve(addr: SocketAddr, api: Api, limits: &ApiConfig) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("--listen: cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let refused = lock(&api.metrics).api_refused.clone();
    let app = router(api);
    tokio::spawn(crate::listener::serve(listener, app, limits.limits(), refused));
    Ok(local)
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;
    use crate::{
        blocklist::{Blocklist, BlocklistConfig, exempt::Exemptions, output::Outputs},
        config::Config,
        detect::{Engine, actors::Actor, client::ClientKey},
        enrich::{Enricher, geo::Geo},
        sink::Sinks,
    };

    const KEY: &str = "bouncer-key-0123456789abcdef";

    #[test]
    fn bouncer_keys_are_checked_in_the_config() {
        for (keys, needle) in [
            (r#"["short"]"#, "api.bouncer_keys: key 1 is shorter than 16"),
            (r#"["0123456789abcdef0", "0123456789abcdef0"]"#, "api.bouncer_keys: key 2 is given twice"),
        ] {
            let e = Config::parse(&format!("[api]\nbouncer_keys = {keys}\n")).unwrap_err();
            assert!(e.contains(needle) && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn limits_are_checked_in_the_config() {
        for (line, needle) in [
            ("max_connections = 0", "api.max_connections: must be at least 1"),
            ("max_header_bytes = 100", "api.max_header_bytes: must be at least 8192"),
            ("max_body_bytes = 10", "api.max_body_bytes: must be at least 4096"),
            ("header_timeout = \"0s\"", "api.header_timeout: must be longer than zero"),
            ("request_timeout = \"soon\"", "request_timeout"),
        ] {
            let e = Config::parse(&format!("[api]\n{line}\n")).unwrap_err();
            assert!(e.contains(needle) && !e.contains('\n'), "{e}");
        }
        let c = Config::parse("[api]\nmax_connections = 8\nrequest_timeout = \"5s\"\n").unwrap();
        assert_eq!((c.api.max_connections, c.api.request_timeout), (8, Duration::from_secs(5)));
    }

    /// A daemon's API over a blocklist holding one threat's address.
    async fn served() -> SocketAddr {
        let cfg = Config::default();
        let enricher = Enricher::with_parts(&cfg, Geo::open(None, None).expect("no geo"), [7; 32]).expect("enricher");
        let metrics = Arc::new(Mutex::new(Metrics::new()));
        let sinks = Sinks::new(metrics.clone(), None);
        let b = BlocklistConfig::default();
        let mut blocklist = Blocklist::new(&b, Exemptions::new(&b, &[], &[]));
        let key = ClientKey::new("203.0.113.7".parse().unwrap(), 64);
        blocklist.update([&Actor::stub("a-1", Class::Threat, vec![key], 1000, 1000)], 1000);
        let outputs = Outputs::new(&[], None, false).expect("no files");
        let mut p = Pipeline::new(enricher, Engine::new(&cfg.detect, cfg.ipv6_prefix), sinks)
            .with_blocklist(&b, blocklist, outputs);
        p.tick(1000);
        let api = Api {
            pipeline: Arc::new(Mutex::new(p)),
            metrics,
            token: None,
            state_dir: std::env::temp_dir(),
            bouncers: vec![KEY.to_string()].into(),
            decisions: Default::default(),
            stix: Default::default(),
        };
        serve("127.0.0.1:0".parse().unwrap(), api, &ApiConfig::default()).await.expect("serve")
    }

    async fn request(addr: SocketAddr, method: &str, path: &str, key: Option<&str>, body: usize) -> (u16, String) {
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Length: {body}\r\n{}\r\n",
            key.map(|k| format!("X-Api-Key: {k}\r\n")).unwrap_or_default()
        );
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            s.write_all(head.as_bytes()).expect("send");
            // An over-long body may be refused before it is all sent.
            let _ = s.write_all(&vec![b'x'; body]);
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            let status = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            (status, buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
        })
        .await
        .expect("request")
    }

    #[tokio::test]
    async fn the_decisions_api_over_http() {
        let addr = served().await;
        let stream = "/v1/decisions/stream";
        assert_eq!(request(addr, "GET", stream, None, 0).await.0, 403);
        assert_eq!(request(addr, "GET", stream, Some("wrong-key-0123456789abcdef"), 0).await.0, 403);
        // A HEAD checks the key and leaves the bouncer's place in the stream.
        assert_eq!(request(addr, "HEAD", stream, Some(KEY), 0).await.0, 200);
        assert_eq!(request(addr, "HEAD", stream, None, 0).await.0, 403);
        let (status, body) = request(addr, "GET", stream, Some(KEY), 0).await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["new"][0]["value"], "203.0.113.7", "{body}");
        assert_eq!(v["new"][0]["duration"], "4h0m0s", "{body}");
        assert_eq!(v["new"][0]["scenario"], "rejectwatch/threat", "an actor with no evidence: {body}");
        let (_, body) = request(addr, "GET", stream, Some(KEY), 0).await;
        assert_eq!(body, r#"{"deleted":[],"new":[]}"#);
        let (_, body) = request(addr, "GET", &format!("{stream}?startup=true&scopes=ip"), Some(KEY), 0).await;
        assert!(body.contains("203.0.113.7"), "{body}");
        // Asking for ranges only: nothing new, and the address it held is
        // no longer among what it asks for.
        let (_, body) = request(addr, "GET", &format!("{stream}?startup=true&scopes=range"), Some(KEY), 0).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!((v["new"].clone(), v["deleted"][0]["value"].clone()), (json!([]), json!("203.0.113.7")), "{body}");
        // Live mode.
        let (status, body) = request(addr, "GET", "/v1/decisions?ip=203.0.113.7", Some(KEY), 0).await;
        assert!(status == 200 && body.contains("\"Ip\""), "{body}");
        let (status, body) = request(addr, "GET", "/v1/decisions?ip=203.0.113.8", Some(KEY), 0).await;
        assert_eq!((status, body.as_str()), (200, "null"));
        let (status, body) = request(addr, "GET", "/v1/decisions?scope=ip&value=203.0.113.7", Some(KEY), 0).await;
        assert!(status == 200 && body.contains("203.0.113.7"), "{body}");
        assert_eq!(request(addr, "GET", "/v1/decisions?ip=bogus", Some(KEY), 0).await.0, 400);
        assert_eq!(request(addr, "GET", "/v1/decisions?ip=203.0.113.7", None, 0).await.0, 403);
        // Usage metrics: taken, within a limit.
        assert_eq!(request(addr, "POST", "/v1/usage-metrics", Some(KEY), 100).await.0, 201);
        assert_eq!(request(addr, "POST", "/v1/usage-metrics", Some(KEY), USAGE_METRICS_MAX + 1).await.0, 413);
        assert_eq!(request(addr, "POST", "/v1/usage-metrics", None, 100).await.0, 403);
    }

    #[test]
    fn actor_queries() {
        assert_eq!(actors_query(None), Ok(None));
        assert_eq!(actors_query(Some("classification=threat")), Ok(Some(Class::Threat)));
        assert!(actors_query(Some("classification=nope")).unwrap_err().starts_with("classification:"));
        assert!(actors_query(Some("colour=red")).unwrap_err().contains("unknown field"));
    }

    #[test]
    fn finding_queries() {
        let now = 10 * 3600 * 1_000_000_000;
        assert_eq!(findings_query(None, now), Ok((0, 1000)));
        assert_eq!(findings_query(Some("since=1h&limit=5"), now), Ok((9 * 3600 * 1_000_000_000, 5)));
        assert_eq!(findings_query(Some("since=1970-01-01T00:00:01Z"), now), Ok((1_000_000_000, 1000)));
        assert!(findings_query(Some("since=yesterday"), now).is_err());
        assert!(findings_query(Some("limit=-1"), now).unwrap_err().starts_with("limit: \"-1\""));
        // Longer ago than u64 nanoseconds reach: since the epoch, not a
        // truncated (wrapped) count.
        assert_eq!(findings_query(Some("since=100000000years"), now), Ok((0, 1000)));
    }

    #[test]
    fn mark_bodies() {
        let m = new_mark(br#"{"kind":"disclosure","note":"x"}"#, 7).unwrap();
        assert_eq!((m.at, m.note.as_deref()), (7, Some("x")));
        let m = new_mark(br#"{"kind":"disclosure","at":"1970-01-01T00:00:02Z"}"#, 7).unwrap();
        assert_eq!(m.at, 2_000_000_000);
        assert!(new_mark(br#"{"kind":"other"}"#, 7).is_err());
        assert!(new_mark(br#"{"kind":"disclosure","at":"now"}"#, 7).is_err());
        assert!(new_mark(b"{", 7).is_err());
        assert!(new_mark(b"\xff", 7).is_err());
    }

    #[test]
    fn json_content_types() {
        let with =
            |v: &'static str| HeaderMap::from_iter([(header::CONTENT_TYPE, header::HeaderValue::from_static(v))]);
        assert!(json_body(&with("application/json")));
        assert!(json_body(&with("Application/JSON; charset=utf-8")));
        assert!(json_body(&with("application/merge-patch+json")));
        assert!(!json_body(&with("text/plain")));
        assert!(!json_body(&HeaderMap::new()));
    }
}
