//! One source map from Elasticsearch, as APM Server's `esFetcher` reads it: the document
//! `<service.name>-<service.version>-<bundle path>` of `.apm-source-map`, whose `content` Kibana
//! wrote as the source map compressed with zlib and encoded in base64. Decompression stops at
//! `max_sourcemap_size`; decompressing and parsing run off the async threads.

use std::io::Read as _;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::Method;
use serde::Deserialize;

use super::{FetchError, INDEX, Inner, ParsedMap};
use crate::model::sourcemap::BundleKey;

#[derive(Deserialize, Default)]
struct Source {
    #[serde(default)]
    content: String,
}

#[derive(Deserialize)]
struct GetResponse {
    #[serde(default)]
    found: bool,
    #[serde(rename = "_source", default)]
    source: Source,
}

/// Go's `url.PathEscape`: everything but unreserved characters and `$&+:=@` escaped.
pub(super) fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$&+:=@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The map and its decompressed size, `None` when Elasticsearch has no content for it.
pub(super) async fn fetch(
    inner: &Arc<Inner>,
    id: &BundleKey,
) -> Result<Option<(Arc<ParsedMap>, u64)>, FetchError> {
    let doc_id = format!("{}-{}-{}", id.service_name, id.service_version, id.path);
    let path = format!("/{INDEX}/_doc/{}", path_escape(&doc_id));
    let r = inner
        .transport
        .send(Method::GET, &path, Bytes::new(), &[], None)
        .await
        .map_err(|e| {
            FetchError::Unavailable(format!(
                "failed to reach elasticsearch: fetcher unavailable: {e} "
            ))
        })?;
    if r.status >= 300 {
        let status = super::status_text(r.status);
        return Err(FetchError::Unavailable(
            if matches!(r.status, 401 | 403 | 404) {
                format!(
                    "fetcher unavailable: {status}: {}",
                    String::from_utf8_lossy(&r.body)
                )
            } else {
                format!("ES returned unknown status code: {status}")
            },
        ));
    }
    let doc: GetResponse = serde_json::from_slice(&r.body)
        .map_err(|e| FetchError::Unavailable(format!("failed to decode sourcemap: {e}")))?;
    if !doc.found || doc.source.content.is_empty() {
        return Ok(None);
    }
    let limit = inner.settings.max_sourcemap_size;
    let id = id.clone();
    let content = doc.source.content;
    tokio::task::spawn_blocking(move || decode(&content, limit, &id))
        .await
        .map_err(|e| FetchError::Unavailable(format!("source map decoding failed: {e}")))?
}

/// Base64, then zlib up to `limit` bytes, then the source map.
fn decode(
    content: &str,
    limit: u64,
    id: &BundleKey,
) -> Result<Option<(Arc<ParsedMap>, u64)>, FetchError> {
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(content)
        .map_err(|e| FetchError::Unavailable(format!("failed to base64 decode string: {e}")))?;
    // zlib's two header bytes (RFC 1950): deflate, and a checksum Go's reader verifies first.
    let header_ok = compressed.len() >= 2
        && compressed[0] & 0x0f == 8
        && (u16::from(compressed[0]) << 8 | u16::from(compressed[1])) % 31 == 0;
    if !header_ok {
        return Err(FetchError::Unavailable(
            "failed to create zlib reader: zlib: invalid header".into(),
        ));
    }
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(&compressed[..])
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| FetchError::Unavailable(format!("failed to read sourcemap content: {e}")))?;
    if out.len() as u64 > limit {
        return Err(FetchError::TooLarge(format!(
            "decompressed source map exceeds limit of {limit} bytes for sourcemap with name ({}), version ({}), path ({})",
            id.service_name, id.service_version, id.path
        )));
    }
    if out.is_empty() {
        return Ok(None);
    }
    let bytes = out.len() as u64;
    let map = ParsedMap::parse(&out)?;
    Ok(Some((Arc::new(map), bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_path_escaped_as_go_does() {
        assert_eq!(
            path_escape("apm-agent-js-1.0.0-http://localhost:8000/a b/x.js.map?v=1"),
            "apm-agent-js-1.0.0-http:%2F%2Flocalhost:8000%2Fa%20b%2Fx.js.map%3Fv=1"
        );
    }
}
