//! The live daemon's HTTP API, beside `/metrics`: the actor roster,
//! recent findings, the prospects, disclosure markers, and the blocklist
//! as threat-feed URLs (`/blocklist.txt`, `.nft`, `.ipset`) for firewalls
//! that poll one. Everything but `/metrics` wants the bearer token when one
//! is configured; a token is required to listen beyond loopback, since
//! the roster names addresses and the API takes markers.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{RawQuery, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    blocklist::format::{Format, Render},
    detect::{evidence::Class, marks::Mark},
    exchange::format_ts,
    metrics::Metrics,
    pipeline::Pipeline,
    record::Nanos,
    report::{Prospect, RosterEntry},
    source::logtime,
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
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self { token: None, token_file: None, findings_kept: 10_000 }
    }
}

/// Shorter tokens are guessable over a network.
const MIN_TOKEN: usize = 16;

impl ApiConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.token.is_some() && self.token_file.is_some() {
            return Err("api.token_file: give either api.token or api.token_file, not both".into());
        }
        if let Some(t) = &self.token
            && t.trim().len() < MIN_TOKEN
        {
            return Err(format!("api.token: shorter than {MIN_TOKEN} characters"));
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
        .route("/blocklist.txt", get(|s| blocklist(s, Format::Txt)))
        .route("/blocklist.nft", get(|s| blocklist(s, Format::Nft)))
        .route("/blocklist.ipset", get(|s| blocklist(s, Format::Ipset)))
        .route_layer(middleware::from_fn_with_state(api.clone(), authorize));
    Router::new().route("/", get(index)).route("/metrics", get(metrics)).merge(protected).with_state(api)
}

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
GET  /blocklist.txt, .nft, .ipset        the blocklist as a feed
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

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn authorize(State(api): State<Api>, req: Request, next: Next) -> Response {
    if let Some(token) = &api.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        use subtle::ConstantTimeEq as _;
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            let mut r = error(StatusCode::UNAUTHORIZED, "a bearer token is required");
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(req).await
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
    limit: Option<usize>,
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
    Ok((since, q.limit.unwrap_or(1000)))
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

async fn list_marks(State(api): State<Api>) -> Response {
    match crate::detect::marks::load(&api.state_dir) {
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
    if m.kind != crate::detect::marks::DISCLOSURE {
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
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mark = match new_mark(&body, now) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let at = mark.at;
    match crate::detect::marks::record(&api.state_dir, &mark) {
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

/// Binds `addr` now (so a taken port fails at start) and serves in the
/// background.
pub async fn serve(addr: SocketAddr, api: Api) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("--listen: cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let app = router(api);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            log::error!("HTTP server stopped: {e}");
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(findings_query(Some("limit=-1"), now).is_err());
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
