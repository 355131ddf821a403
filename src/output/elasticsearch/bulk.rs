//! The `_bulk` API: request bodies and per-item outcomes, as go-docappender writes and reads
//! them.

use std::io::Write as _;

use serde::Deserialize;

use crate::output::OutputDocument;

/// The query of every bulk request: data streams only, and only the fields the indexer reads.
/// (APM Server also sends `include_source_on_error=false`, which Elasticsearch before 8.18
/// refuses as an unknown parameter; the reasons we keep are never logged with documents.)
pub const BULK_QUERY: &str = "require_data_stream=true&filter_path=items.*._index,items.*.status,items.*.failure_store,items.*.error.type,items.*.error.reason";

/// A request body: the NDJSON and, when compressing, its gzip.
pub struct Body {
    /// What is sent.
    pub bytes: bytes::Bytes,
    /// Length before compression (`X-Elastic-Uncompressed-Request-Length`).
    pub uncompressed_len: usize,
    /// Whether `bytes` is gzip.
    pub gzip: bool,
}

/// Encodes documents as `create` actions, gzip-compressed at `level` (0: plain).
pub fn encode<'a>(docs: impl Iterator<Item = &'a OutputDocument>, level: u32) -> Body {
    let mut plain = Vec::new();
    for d in docs {
        d.write_bulk(&mut plain);
    }
    let uncompressed_len = plain.len();
    if level == 0 {
        return Body {
            bytes: plain.into(),
            uncompressed_len,
            gzip: false,
        };
    }
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(plain.len() / 4),
        flate2::Compression::new(level),
    );
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(&plain);
    let bytes = gz.finish().unwrap_or_default();
    Body {
        bytes: bytes.into(),
        uncompressed_len,
        gzip: true,
    }
}

/// The outcome of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Created (maybe in the failure store).
    Indexed {
        /// Elasticsearch stored it in the data stream's failure store.
        failure_store: bool,
    },
    /// Rejected with a status and Elasticsearch's error.
    Failed {
        /// Item status.
        status: u16,
        /// `error.type`.
        error_type: String,
        /// `error.reason`.
        reason: String,
    },
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    items: Option<Vec<std::collections::HashMap<String, Item>>>,
}

#[derive(Deserialize)]
struct Item {
    status: u16,
    #[serde(default)]
    error: Option<ErrorInfo>,
    #[serde(default)]
    failure_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorInfo {
    #[serde(rename = "type", default)]
    error_type: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// The per-item outcomes of a 2xx bulk answer (with `filter_path` applied or not), in order.
/// `Err` when the answer does not account for exactly `expected` items.
pub fn parse_items(body: &[u8], expected: usize) -> Result<Vec<ItemOutcome>, String> {
    let r: Response =
        serde_json::from_slice(body).map_err(|e| format!("unreadable bulk answer: {e}"))?;
    let items = r.items.unwrap_or_default();
    if items.len() != expected {
        return Err(format!(
            "the bulk answer has {} items for {expected} documents",
            items.len()
        ));
    }
    Ok(items
        .into_iter()
        .map(|m| {
            let Some(item) = m.into_values().next() else {
                return ItemOutcome::Failed {
                    status: 0,
                    error_type: "unreadable_item".into(),
                    reason: "an item without an action".into(),
                };
            };
            if (200..300).contains(&item.status) {
                ItemOutcome::Indexed {
                    failure_store: item.failure_store.as_deref() == Some("used"),
                }
            } else {
                let e = item.error.unwrap_or_default();
                ItemOutcome::Failed {
                    status: item.status,
                    error_type: e
                        .error_type
                        .unwrap_or_else(|| format!("http_{}", item.status)),
                    reason: e.reason.unwrap_or_default(),
                }
            }
        })
        .collect())
}

/// `error.type` and `error.reason` of a whole-request error answer, when it has them.
pub fn request_error(body: &[u8]) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct Top {
        error: serde_json::Value,
    }
    let top: Top = serde_json::from_slice(body).ok()?;
    match top.error {
        serde_json::Value::String(s) => Some(("error".into(), s)),
        v => Some((
            v.get("type")?.as_str()?.to_string(),
            v.get("reason")
                .and_then(|r| r.as_str())
                .unwrap_or_default()
                .to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_filtered_and_full_answers() {
        let filtered = br#"{"items":[{"create":{"_index":"a","status":201}},{"create":{"_index":"a","status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}}]}"#;
        let full = br#"{"took":3,"errors":true,"items":[{"create":{"_index":".ds-a","_id":"x","_version":1,"result":"created","status":201,"failure_store":"used"}},{"create":{"_index":"a","_id":"y","status":400,"error":{"type":"mapper_parsing_exception","reason":"bad","caused_by":{"type":"x"}}}}]}"#;
        assert_eq!(
            parse_items(filtered, 2).unwrap(),
            vec![
                ItemOutcome::Indexed {
                    failure_store: false
                },
                ItemOutcome::Failed {
                    status: 429,
                    error_type: "es_rejected_execution_exception".into(),
                    reason: "queue full".into()
                }
            ]
        );
        assert_eq!(
            parse_items(full, 2).unwrap()[0],
            ItemOutcome::Indexed {
                failure_store: true
            }
        );
        assert!(parse_items(full, 3).is_err());
        assert!(parse_items(b"{}", 1).is_err());
        assert_eq!(
            request_error(br#"{"error":{"type":"x","reason":"y"},"status":500}"#),
            Some(("x".into(), "y".into()))
        );
    }

    #[test]
    fn encodes_create_actions_and_gzip() {
        let d = OutputDocument {
            data_stream: "traces-apm-default".into(),
            body: br#"{"a":1}"#.to_vec(),
        };
        let plain = encode(std::iter::once(&d), 0);
        assert_eq!(
            &plain.bytes[..],
            b"{\"create\":{\"_index\":\"traces-apm-default\"}}\n{\"a\":1}\n"
        );
        assert!(
            plain.uncompressed_len <= d.bulk_len(),
            "the buffer never undercounts"
        );
        let gz = encode(std::iter::once(&d), 5);
        assert!(gz.gzip);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz.bytes[..]), &mut out)
            .unwrap();
        assert_eq!(out, &plain.bytes[..]);
    }
}
