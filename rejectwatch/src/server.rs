//! The HTTP listener: `/metrics` for Prometheus.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};

use crate::metrics::Metrics;

async fn metrics(State(m): State<Arc<Mutex<Metrics>>>) -> impl IntoResponse {
    let body = m.lock().unwrap_or_else(|p| p.into_inner()).encode();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

/// Binds `addr` now (so a taken port fails at start) and serves in the
/// background.
pub async fn serve(addr: SocketAddr, m: Arc<Mutex<Metrics>>) -> anyhow::Result<SocketAddr> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("--listen: cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let app = Router::new().route("/metrics", get(metrics)).with_state(m);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            log::error!("metrics server stopped: {e}");
        }
    });
    Ok(local)
}
