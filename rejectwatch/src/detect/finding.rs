//! A finding: one detector's conclusion, written as one JSON line
//! (`--findings`). Findings are deduplicated by the engine: a detector
//! re-fires for the same key only after its cooldown.

use serde::Serialize;

use super::evidence::{Class, Evidence};
use crate::time::Nanos;

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    #[serde(serialize_with = "crate::time::serialize_ts")]
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
