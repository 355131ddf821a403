//! RUM source mapping of stack frames, as APM Server's `sourcemap.BatchProcessor` and
//! `SetCulprit` do it: which bundles an event's frames need ([`bundles`]), the frames rewritten
//! from the maps that were found ([`apply`]), and the culprit of a RUM error taken from its first
//! mapped application frame ([`set_culprit`]).
//!
//! Pure: the maps arrive fetched and parsed, behind [`OriginalPosition`], or as the error APM
//! Server would record. Fetching, caching and parsing live in `crate::sourcemap`, outside the
//! model; this module never performs I/O.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use super::event::{ApmEvent, Error, Exception, Frame, Kind};

/// Which source map a frame needs, as APM Server keys it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleKey {
    /// `service.name` of the event.
    pub service_name: String,
    /// `service.version` of the event.
    pub service_version: String,
    /// The frame's `abs_path` with its URL path cleaned ([`clean_url_path`]).
    pub path: String,
}

/// Where a generated position comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OriginalSource {
    /// The original file (the map's source), empty when the mapping names none.
    pub file: String,
    /// The name the mapping gives, empty when none.
    pub function: String,
    /// Line in the original file (1-based).
    pub line: u32,
    /// Column in the original file (0-based, as the map stores it).
    pub column: u32,
    /// The original line's text, from the map's `sourcesContent`.
    pub context_line: String,
    /// Up to five lines before it.
    pub pre_context: Vec<String>,
    /// Up to five lines after it.
    pub post_context: Vec<String>,
}

/// A parsed source map.
pub trait OriginalPosition: Send + Sync + std::fmt::Debug {
    /// The original source of the generated `line` and `column` as the agent sent them, or
    /// `None` when the map has no mapping there (the frame is then left as it is).
    fn original(&self, line: u32, column: u32) -> Option<OriginalSource>;
}

/// The source map of one bundle, or why there is none (written as `sourcemap.error`).
pub type Resolution = Result<Arc<dyn OriginalPosition>, String>;

/// The resolutions of the bundles an event needs.
pub type Resolutions = HashMap<BundleKey, Resolution>;

/// The stack traces APM Server's RUM processors visit: a span's, or an error's log stack trace
/// then its exception and causes, depth first.
fn stacktraces<'x, 'a>(ev: &'x mut ApmEvent<'a>) -> Vec<&'x mut Vec<Frame<'a>>> {
    fn exception<'x, 'a>(e: &'x mut Exception<'a>, out: &mut Vec<&'x mut Vec<Frame<'a>>>) {
        out.push(&mut e.stacktrace);
        for c in &mut e.cause {
            exception(c, out);
        }
    }
    let mut out = Vec::new();
    match ev.kind {
        Kind::Span => {
            if let Some(sp) = &mut ev.span {
                out.push(&mut sp.stacktrace);
            }
        }
        Kind::Error => {
            if let Some(err) = &mut ev.error {
                if let Some(l) = &mut err.log {
                    out.push(&mut l.stacktrace);
                }
                if let Some(e) = &mut err.exception {
                    exception(e, &mut out);
                }
            }
        }
        _ => {}
    }
    out
}

/// Whether a frame can be mapped: it has a line, a column and an `abs_path`.
fn mappable(f: &Frame<'_>) -> bool {
    f.lineno.is_some() && f.colno.is_some() && !f.abs_path.is_empty()
}

/// The bundles whose source maps the event's frames need; none for an event without a service
/// name and version (APM Server skips those), or that is neither a span nor an error.
pub fn bundles(ev: &mut ApmEvent<'_>) -> Vec<BundleKey> {
    if ev.service.name.is_empty() || ev.service.version.is_empty() {
        return Vec::new();
    }
    let (name, version) = (ev.service.name.to_string(), ev.service.version.to_string());
    let mut out: Vec<BundleKey> = Vec::new();
    for list in stacktraces(ev) {
        for f in list.iter().filter(|f| mappable(f)) {
            let key = BundleKey {
                service_name: name.clone(),
                service_version: version.clone(),
                path: clean_url_path(&f.abs_path),
            };
            if !out.contains(&key) {
                out.push(key);
            }
        }
    }
    out
}

/// Rewrites the event's frames from `maps`, as APM Server does: each stack trace from its
/// outermost frame in, a mapped frame takes its file, line, column, context and cleaned
/// `abs_path` from the map, its original values go under `original.*`, and it takes the
/// function name the map gives for the frame below it (`<anonymous>` for the outermost,
/// `<unknown>` after a mapping without a name). A frame whose map could not be had records why
/// in `sourcemap.error`; a frame the map does not cover is left as it is.
pub fn apply(ev: &mut ApmEvent<'_>, maps: &Resolutions) {
    if ev.service.name.is_empty() || ev.service.version.is_empty() {
        return;
    }
    let (name, version) = (ev.service.name.to_string(), ev.service.version.to_string());
    let resolve = |path: String| {
        maps.get(&BundleKey {
            service_name: name.clone(),
            service_version: version.clone(),
            path,
        })
    };
    for list in stacktraces(ev) {
        let mut previous: Cow<'_, str> = Cow::Borrowed("<anonymous>");
        for f in list.iter_mut().rev() {
            if let Some(function) = map_frame(f, &previous, &resolve) {
                previous = Cow::Owned(function);
            }
        }
    }
}

/// Maps one frame; the function name the mapping gives (for the next frame in) when it did.
fn map_frame<'m>(
    f: &mut Frame<'_>,
    previous_function: &str,
    resolve: &impl Fn(String) -> Option<&'m Resolution>,
) -> Option<String> {
    if !mappable(f) {
        return None;
    }
    let (line, column) = (f.lineno?, f.colno?);
    let path = clean_url_path(&f.abs_path);
    let map = match resolve(path.clone())? {
        Ok(map) => map,
        Err(e) => {
            f.original_library_frame
                .get_or_insert_with(Default::default)
                .sourcemap_error = e.clone();
            return None;
        }
    };
    let src = map.original(line, column)?;
    let rum = f
        .original_library_frame
        .get_or_insert_with(Default::default);
    rum.colno = f.colno;
    rum.abs_path = Cow::Owned(f.abs_path.to_string());
    rum.function = Cow::Owned(f.function.to_string());
    rum.lineno = f.lineno;
    rum.filename = Cow::Owned(f.filename.to_string());
    rum.classname = Cow::Owned(f.classname.to_string());
    rum.sourcemap_updated = true;
    if !src.file.is_empty() {
        f.filename = Cow::Owned(src.file);
    }
    f.colno = Some(src.column);
    f.lineno = Some(src.line);
    f.abs_path = Cow::Owned(path);
    f.function = Cow::Owned(previous_function.to_string());
    f.context_line = Cow::Owned(src.context_line);
    f.pre_context = src.pre_context.into_iter().map(Cow::Owned).collect();
    f.post_context = src.post_context.into_iter().map(Cow::Owned).collect();
    Some(if src.function.is_empty() {
        "<unknown>".to_string()
    } else {
        src.function
    })
}

/// The culprit of a RUM error (`SetCulprit`, run after source mapping and the library pattern):
/// the first mapped frame that is not a library frame, of the log's stack trace, else of the
/// exception's: its file name (else class name) and ` in ` its function.
pub fn set_culprit(err: &mut Error<'_>) {
    fn culprit_frame<'x, 'a>(frames: &'x [Frame<'a>]) -> Option<&'x Frame<'a>> {
        frames.iter().find(|f| {
            !f.library_frame
                && f.original_library_frame
                    .as_ref()
                    .is_some_and(|r| r.sourcemap_updated)
        })
    }
    let frame = err
        .log
        .as_ref()
        .and_then(|l| culprit_frame(&l.stacktrace))
        .or_else(|| {
            err.exception
                .as_ref()
                .and_then(|e| culprit_frame(&e.stacktrace))
        });
    let Some(f) = frame else { return };
    let mut culprit = if f.filename.is_empty() {
        f.classname.to_string()
    } else {
        f.filename.to_string()
    };
    if !f.function.is_empty() {
        culprit.push_str(" in ");
        culprit.push_str(&f.function);
    }
    err.culprit = Cow::Owned(culprit);
}

/// `s` with the path of its URL cleaned (`maybeCleanURLPath`: Go's `url.Parse`, `path.Clean`
/// of the path, `URL.String()`); `s` itself when it does not parse as a URL.
pub fn clean_url_path(s: &str) -> String {
    match GoUrl::parse(s) {
        Some(mut u) => {
            if u.opaque.is_none() {
                u.path = clean_path(&u.path);
            }
            u.to_string()
        }
        None => s.to_string(),
    }
}

/// Go's `path.Clean`: one slash between elements, no `.` elements, `..` applied, no trailing
/// slash; `.` for an empty result.
pub fn clean_path(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// A URL as Go's `net/url` splits it, kept in its escaped form: what APM Server's source
/// mapping does with `abs_path` and bundle paths depends on those rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoUrl {
    /// Scheme, empty when none.
    pub scheme: String,
    /// The part after `scheme:` when it does not start with `/`.
    pub opaque: Option<String>,
    /// `user@host:port` after `//`.
    pub authority: Option<String>,
    /// The path, escaped.
    pub path: String,
    /// After `?`.
    pub query: Option<String>,
    /// After `#`.
    pub fragment: Option<String>,
}

fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

impl GoUrl {
    /// Parses `s` as Go's `url.Parse` does; `None` where it fails (control characters, a bad
    /// escape, a missing scheme before `:`, a colon in a relative path's first segment).
    pub fn parse(s: &str) -> Option<GoUrl> {
        if s.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return None;
        }
        let (rest, fragment) = match s.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (s, None),
        };
        if fragment.is_some_and(|f| !valid_escapes(f)) {
            return None;
        }
        let mut scheme = "";
        let mut rest = rest;
        for (i, c) in rest.char_indices() {
            match c {
                'a'..='z' | 'A'..='Z' => {}
                '0'..='9' | '+' | '-' | '.' if i > 0 => {}
                ':' if i == 0 => return None,
                ':' => {
                    scheme = &rest[..i];
                    rest = &rest[i + 1..];
                    break;
                }
                _ => break,
            }
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let mut url = GoUrl {
            scheme: scheme.to_string(),
            opaque: None,
            authority: None,
            path: String::new(),
            query: query.map(str::to_string),
            fragment: fragment.map(str::to_string),
        };
        if !rest.starts_with('/') {
            if !scheme.is_empty() {
                url.opaque = Some(rest.to_string());
                return Some(url);
            }
            if rest.split('/').next().is_some_and(|seg| seg.contains(':')) {
                return None;
            }
        }
        let mut rest = rest;
        if (!scheme.is_empty() || !rest.starts_with("///")) && rest.starts_with("//") {
            let after = &rest[2..];
            let (authority, path) = match after.find('/') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            };
            url.authority = Some(authority.to_string());
            rest = path;
        }
        if !valid_escapes(rest) {
            return None;
        }
        url.path = rest.to_string();
        Some(url)
    }

    /// The path with its escapes decoded (Go's `URL.Path`).
    pub fn unescaped_path(&self) -> String {
        let b = self.path.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                if let Ok(v) = u8::from_str_radix(hex, 16) {
                    out.push(v);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn host_part(&self) -> &str {
        self.authority.as_deref().unwrap_or("")
    }
}

/// Go's path escaping for what `EscapedPath` would not keep as written.
fn escape_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-_.~/!$&'()*+,;=:@[]%".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl std::fmt::Display for GoUrl {
    /// Go's `URL.String()`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        if !self.scheme.is_empty() {
            out.push_str(&self.scheme);
            out.push(':');
        }
        if let Some(o) = &self.opaque {
            out.push_str(o);
        } else {
            let host = self.host_part();
            if !self.scheme.is_empty() || !host.is_empty() {
                // An absent authority after a scheme is Go's `OmitHost`.
                if self.authority.is_some() && (!host.is_empty() || !self.path.is_empty()) {
                    out.push_str("//");
                }
                out.push_str(host);
            }
            let path = escape_path(&self.path);
            if !path.is_empty() && !path.starts_with('/') && !host.is_empty() {
                out.push('/');
            }
            if out.is_empty() && path.split('/').next().is_some_and(|s| s.contains(':')) {
                out.push_str("./");
            }
            out.push_str(&path);
        }
        if let Some(q) = &self.query {
            out.push('?');
            out.push_str(q);
        }
        if let Some(fr) = self.fragment.as_deref().filter(|f| !f.is_empty()) {
            out.push('#');
            out.push_str(fr);
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelConfig, RequestMeta, decode_events, decode_metadata};

    /// A map that sends every position to `src/app.ts`, 100 lines on, named after its line.
    #[derive(Debug)]
    struct Shifted;

    impl OriginalPosition for Shifted {
        fn original(&self, line: u32, column: u32) -> Option<OriginalSource> {
            Some(OriginalSource {
                file: "src/app.ts".into(),
                function: format!("fn_{line}"),
                line: line + 100,
                column,
                context_line: "ctx".into(),
                ..Default::default()
            })
        }
    }

    /// A RUM v3 error through the model with a map and with an error: frames rewritten as
    /// APM Server does, the culprit from the first mapped application frame.
    #[test]
    fn a_rum_v3_error_is_mapped_or_says_why_not() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/intake/rumv3/rum_errors.ndjson"
        ))
        .expect("fixture");
        let mut lines = text.lines();
        let metadata = decode_metadata(lines.next().unwrap().as_bytes()).unwrap();
        let line = lines.next().unwrap().as_bytes();
        let request = RequestMeta {
            receipt_time: std::time::SystemTime::UNIX_EPOCH,
            rum: true,
            client_ip: None,
            client_port: None,
            nat_ip: None,
            user_agent: None,
        };
        let config = ModelConfig {
            library_pattern: Some(regex::Regex::new("node_modules|bower_components|~").unwrap()),
            exclude_from_grouping: Some(regex::Regex::new("^/webpack").unwrap()),
            source_mapping: true,
            ..ModelConfig::default()
        };
        let document = |resolution: Resolution| {
            let mut pending = decode_events(line, &metadata, &request, &config).unwrap();
            let bundles = pending.source_map_bundles();
            assert_eq!(
                bundles,
                vec![BundleKey {
                    service_name: "apm-a-rum-test-e2e-general-usecase".into(),
                    service_version: "0.0.1".into(),
                    path: "http://localhost:8000/test/e2e/general-usecase/app.e2e-bundle.min.js?token=secret".into(),
                }]
            );
            let maps: Resolutions = bundles
                .into_iter()
                .map(|b| (b, resolution.clone()))
                .collect();
            pending.apply_source_maps(&maps);
            let decoded = pending.finish(&metadata, &request, &config);
            serde_json::from_slice::<serde_json::Value>(&decoded.documents[0].body).unwrap()
        };

        let mapped = document(Ok(Arc::new(Shifted)));
        let frames = &mapped["error"]["exception"][0]["stacktrace"];
        assert_eq!(frames[0]["function"], "fn_7666");
        assert_eq!(frames[1]["function"], "<anonymous>");
        assert_eq!(frames[0]["filename"], "src/app.ts");
        assert_eq!(frames[0]["line"]["number"], 7762);
        assert_eq!(frames[0]["line"]["context"], "ctx");
        assert_eq!(frames[0]["original"]["function"], "generateError");
        assert_eq!(frames[0]["original"]["lineno"], 7662);
        assert_eq!(frames[0]["sourcemap"]["updated"], true);
        assert_eq!(mapped["error"]["culprit"], "src/app.ts in fn_7666");

        let unmapped = document(Err("no map".into()));
        let frames = &unmapped["error"]["exception"][0]["stacktrace"];
        assert_eq!(frames[0]["sourcemap"]["error"], "no map");
        assert_eq!(frames[0]["function"], "generateError");
        assert!(frames[0].get("original").is_none());
        assert_eq!(
            unmapped["error"]["culprit"],
            "test/e2e/general-usecase/app.e2e-bundle.min.js?token=secret"
        );
        assert_ne!(
            mapped["error"]["grouping_key"], unmapped["error"]["grouping_key"],
            "the grouping key follows the mapped frames"
        );
    }

    #[test]
    fn urls_are_cleaned_as_apm_server_cleans_them() {
        for (input, want) in [
            (
                "http://localhost:8000/test/../test/e2e/general-usecase/bundle.js.map",
                "http://localhost:8000/test/e2e/general-usecase/bundle.js.map",
            ),
            (
                "http://localhost:8000/test/./e2e/general-usecase/bundle.js.map",
                "http://localhost:8000/test/e2e/general-usecase/bundle.js.map",
            ),
            ("bundle.js", "bundle.js"),
            ("/a//b/./c/", "/a/b/c"),
            ("webpack:///./src/x.js", "webpack:///src/x.js"),
            ("http://h/a/b.js?v=1#x", "http://h/a/b.js?v=1#x"),
            ("http://h", "http://h/."),
            ("a b/c.js", "a%20b/c.js"),
            ("%zz/x", "%zz/x"),
            ("../x/../y.js", "../y.js"),
        ] {
            assert_eq!(clean_url_path(input), want, "{input}");
        }
    }

    proptest::proptest! {
        /// `abs_path` comes from agents: any text is cleaned without a panic, and a URL's
        /// scheme and host survive.
        #[test]
        fn any_abs_path_is_cleaned_without_a_panic(s in "\\PC{0,40}", host in "[a-z]{1,8}") {
            let _ = clean_url_path(&s);
            let _ = GoUrl::parse(&s).map(|u| u.unescaped_path());
            let url = format!("https://{host}:8000/{s}");
            let cleaned = clean_url_path(&url);
            if GoUrl::parse(&url).is_some() {
                let prefix = format!("https://{host}:8000/");
                proptest::prop_assert!(cleaned.starts_with(&prefix), "{}", cleaned);
            }
        }
    }

    #[test]
    fn paths_are_cleaned_as_go_cleans_them() {
        for (input, want) in [
            ("", "."),
            ("/", "/"),
            ("/..", "/"),
            ("a/../..", ".."),
            ("a/./b/", "a/b"),
        ] {
            assert_eq!(clean_path(input), want, "{input}");
        }
    }
}
