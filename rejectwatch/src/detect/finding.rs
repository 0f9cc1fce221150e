//! A finding: one detector's conclusion, written as one JSON line
//! (`--findings`). Findings are deduplicated by the engine: a detector
//! re-fires for the same key only after its cooldown.

use serde::Serialize;

use super::evidence::{Class, Evidence};
use crate::{exchange::format_ts, record::Nanos};

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    #[serde(serialize_with = "rfc3339")]
    pub ts: Nanos,
    pub detector: &'static str,
    /// The actor of the client whose request fired it.
    pub actor: Option<String>,
    /// That actor's classification when the finding was written.
    pub classification: Class,
    /// Addresses (IPv6: networks) concerned.
    pub clients: Vec<String>,
    pub endpoint: Option<String>,
    /// One human sentence.
    pub summary: String,
    /// The numbers behind it.
    pub evidence: Evidence,
}

fn rfc3339<S: serde::Serializer>(ts: &Nanos, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_ts(*ts))
}
