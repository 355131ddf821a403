//! A source map parsed with the `sourcemap` crate, looked up as APM Server's Go library
//! (`go-sourcemap`) looks it up: generated lines 1-based, the agent's column compared with the
//! map's 0-based columns, the mapping at or before the position on the same or an earlier line,
//! none past the last mapping, and five lines of context either side from `sourcesContent`.

use super::FetchError;
use crate::model::sourcemap::{OriginalPosition, OriginalSource};

/// Lines of context either side of the original line (APM Server's snippet size).
const CONTEXT_LINES: u32 = 5;

/// Go's `bufio.Scanner` gives up on a line this long, and APM Server then leaves the frame
/// unmapped.
const MAX_SCANNED_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
struct Mapping {
    gen_line: u32,
    gen_col: u32,
    source: Option<u32>,
    line: u32,
    col: u32,
    name: Option<u32>,
}

/// A parsed source map.
#[derive(Debug)]
pub struct ParsedMap {
    mappings: Vec<Mapping>,
    sources: Vec<String>,
    contents: Vec<Option<String>>,
    names: Vec<String>,
}

#[derive(serde::Deserialize)]
struct Version {
    version: Option<serde_json::Value>,
}

impl ParsedMap {
    /// Parses a decompressed source map; a map that does not parse, or is not version 3, is
    /// malformed (APM Server's `errMalformedSourcemap`).
    pub fn parse(bytes: &[u8]) -> Result<ParsedMap, FetchError> {
        let malformed = |why: String| FetchError::Malformed(why);
        let v: Version = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        match v.version.as_ref().and_then(serde_json::Value::as_u64) {
            Some(3) => {}
            Some(n) => {
                return Err(malformed(format!(
                    "sourcemap: got version={n}, but only 3rd version is supported"
                )));
            }
            None => {
                return Err(malformed(
                    "sourcemap: got version=0, but only 3rd version is supported".into(),
                ));
            }
        }
        let decoded = sourcemap::decode_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        let map = match decoded {
            sourcemap::DecodedMap::Regular(m) => m,
            sourcemap::DecodedMap::Index(i) => i.flatten().map_err(|e| malformed(e.to_string()))?,
            sourcemap::DecodedMap::Hermes(h) => (*h).clone(),
        };
        let mut mappings: Vec<Mapping> = map
            .tokens()
            .map(|t| Mapping {
                gen_line: t.get_dst_line().saturating_add(1),
                gen_col: t.get_dst_col(),
                source: (t.get_src_id() != u32::MAX).then(|| t.get_src_id()),
                line: t.get_src_line().saturating_add(1),
                col: t.get_src_col(),
                name: (t.get_name_id() != u32::MAX).then(|| t.get_name_id()),
            })
            .collect();
        mappings.sort_by_key(|m| (m.gen_line, m.gen_col));
        let sources: Vec<String> = map.sources().map(str::to_string).collect();
        let contents = (0..map.get_source_count())
            .map(|i| map.get_source_contents(i).map(str::to_string))
            .collect();
        let names = map.names().map(str::to_string).collect();
        Ok(ParsedMap {
            mappings,
            sources,
            contents,
            names,
        })
    }
}

impl OriginalPosition for ParsedMap {
    fn original(&self, line: u32, column: u32) -> Option<OriginalSource> {
        let at = self
            .mappings
            .partition_point(|m| (m.gen_line, m.gen_col) < (line, column));
        let mut m = self.mappings.get(at)?;
        if m.gen_line > line || m.gen_col > column {
            m = self.mappings.get(at.checked_sub(1)?)?;
        }
        let file = m
            .source
            .and_then(|s| self.sources.get(s as usize))
            .cloned()
            .unwrap_or_default();
        let function = m
            .name
            .and_then(|n| self.names.get(n as usize))
            .cloned()
            .unwrap_or_default();
        let content = m
            .source
            .and_then(|s| self.contents.get(s as usize))
            .and_then(Option::as_deref)
            .unwrap_or("");
        let mut src = OriginalSource {
            file,
            function,
            line: m.line,
            column: m.col,
            ..Default::default()
        };
        for (n, text) in (1u32..).zip(content.split_inclusive('\n')) {
            if text.len() >= MAX_SCANNED_LINE {
                return None;
            }
            let text = text.strip_suffix('\n').unwrap_or(text);
            let text = text.strip_suffix('\r').unwrap_or(text).to_string();
            if n == m.line {
                src.context_line = text;
            } else if n.abs_diff(m.line) <= CONTEXT_LINES {
                if n < m.line {
                    src.pre_context.push(text);
                } else {
                    src.post_context.push(text);
                }
            } else if n > m.line {
                break;
            }
        }
        Some(src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> ParsedMap {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/sourcemap/bundle.js.map"
        ))
        .expect("fixture");
        ParsedMap::parse(&bytes).expect("parses")
    }

    /// APM Server's `TestBatchProcessor` positions, on its bundle.
    #[test]
    fn positions_map_as_apm_server_maps_them() {
        let m = bundle();
        let a = m.original(1, 7).expect("mapped");
        assert_eq!(
            (a.file.as_str(), a.line, a.column),
            ("webpack:///bundle.js", 1, 9)
        );
        assert_eq!(
            a.context_line,
            "/******/ (function(modules) { // webpackBootstrap"
        );
        assert_eq!(a.post_context.len(), 5);
        assert!(a.pre_context.is_empty());
        let b = m.original(1, 23).expect("mapped");
        assert_eq!((b.line, b.column), (5, 0));
        assert_eq!(
            b.context_line,
            " \tfunction __webpack_require__(moduleId) {"
        );
        assert_eq!(b.pre_context.len(), 4);
        let c = m.original(1, 67).expect("mapped");
        assert_eq!((c.line, c.column, c.function.as_str()), (13, 0, "exports"));
        assert_eq!(c.context_line, " \t\t\texports: {},");
        // Before the first mapping, and past the last one: not mapped.
        assert!(m.original(1, 0).is_none());
        assert!(m.original(99, 0).is_none());
    }

    #[test]
    fn other_versions_and_garbage_are_malformed() {
        for bad in [
            &br#"{"version": 1, "sources": [], "names": [], "mappings": "CAAS"}"#[..],
            b"{not json",
            b"[]",
        ] {
            assert!(matches!(
                ParsedMap::parse(bad),
                Err(FetchError::Malformed(_))
            ));
        }
    }
}
