//! The policy: one TOML file that declares everything the gateway does.
//!
//! `policy` turns text into a compiled, immutable [`Policy`] in three visible steps:
//! 1. structure: TOML is parsed (every syntax error), then checked against the schema generated
//!    from [`ast`] (every unknown key, wrong type and missing value), then read with serde;
//! 2. meaning: [`compile`] parses values with the pest grammar, resolves names, and checks
//!    what the file means, collecting every finding;
//! 3. environment (optional, `--no-environment` skips it): secrets, files and certificates are
//!    read and checked.
//!
//! This module never opens a socket; the first two steps never touch the disk or environment.
//!
//! The runtime reads [`compiled`] (and the vocabulary it re-exports from [`vocab`]), never
//! [`ast`]: the file format can change without touching listeners, TLS or access.

pub mod ast;
pub mod compile;
pub mod compiled;
pub mod diagnostics;
pub mod environment;
pub mod expr;
pub mod grammar;
pub mod spanned;
pub mod structure;
pub mod types;
pub mod vocab;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

pub use compiled::Policy;
pub use diagnostics::{Code, Diagnostic, Severity, SourceFile};

/// How to compile.
#[derive(Debug, Clone, Copy)]
pub struct CompileOptions {
    /// Read env vars, secret files and certificates (the environment step).
    pub environment: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self { environment: true }
    }
}

/// The result of compiling one policy file.
#[derive(Debug)]
pub struct Compilation {
    /// The source as given.
    pub source: SourceFile,
    /// The source with inline secrets masked: what reports show.
    pub display_source: SourceFile,
    /// The compiled policy, when there is no error.
    pub policy: Option<Policy>,
    /// Every finding, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Compilation {
    /// Number of errors.
    pub fn errors(&self) -> usize {
        crate::policy::diagnostics::count(&self.diagnostics, Severity::Error)
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        crate::policy::diagnostics::count(&self.diagnostics, Severity::Warning)
    }
}

/// The JSON Schema of the policy file format.
pub fn schema() -> serde_json::Value {
    schemars::schema_for!(ast::PolicyFile).to_value()
}

/// The schema, generated once.
fn cached_schema() -> &'static serde_json::Value {
    static SCHEMA: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(schema)
}

/// Compiles a policy. Relative paths in it are resolved against the directory of
/// `source.name`.
pub fn compile(source: &SourceFile, options: CompileOptions) -> Compilation {
    let base_dir = Path::new(&source.name)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let text: &str = &source.text;
    let finish = |diagnostics: Vec<Diagnostic>,
                  policy: Option<Policy>,
                  redactions: &[std::ops::Range<usize>]| {
        let mut diagnostics = diagnostics;
        diagnostics.sort_by_key(|d| (d.offset(), d.severity, d.code));
        diagnostics.dedup();
        let has_error = diagnostics.iter().any(|d| d.severity == Severity::Error);
        Compilation {
            source: source.clone(),
            display_source: redact(source, redactions),
            policy: if has_error { None } else { policy },
            diagnostics,
        }
    };

    let (mut table, syntax) = toml::de::DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        let diags = syntax
            .iter()
            .map(|e| {
                let span = e.span().unwrap_or(0..0);
                let message = e.message().trim().to_string();
                let first = message.lines().next().unwrap_or("invalid TOML").to_string();
                let d = Diagnostic::new(
                    Code::TomlSyntax,
                    format!("TOML syntax error: {first}"),
                    span,
                    first.clone(),
                );
                let rest: Vec<&str> = message
                    .lines()
                    .skip(1)
                    .filter(|l| !l.trim().is_empty())
                    .collect();
                if rest.is_empty() {
                    d
                } else {
                    d.with_help(rest.join("\n"))
                }
            })
            .collect();
        return finish(diags, None, &[]);
    }
    // Structural problems are reported and pruned; the semantic checks then run on the rest.
    let (structural, readable) = structure::check(&mut table, cached_schema());
    if !readable {
        return finish(structural, None, &[]);
    }
    let file = match ast::PolicyFile::deserialize(toml::de::Deserializer::from(table)) {
        Ok(f) => f,
        Err(e) => {
            // The structural check prunes whatever serde would refuse, so this is a gap in it:
            // say so at the place serde names rather than let the structural findings stand as
            // if they were all (unless one of them already points there).
            let mut diags = structural;
            let span = e.span().unwrap_or(0..0);
            if !diags.iter().any(|d| d.offset() == span.start) {
                diags.push(Diagnostic::new(
                    Code::WrongType,
                    e.message().trim().to_string(),
                    span,
                    "here",
                ));
            }
            return finish(diags, None, &[]);
        }
    };
    let mut compiler = compile::Compiler::new(text, base_dir);
    compiler.pruned = !structural.is_empty();
    let mut policy = compiler.compile(&file);
    let mut diags = structural;
    diags.append(&mut compiler.diags);
    if options.environment {
        diags.extend(environment::check(&compiler.facts, &mut policy));
    }
    finish(diags, Some(policy), &compiler.facts.redactions)
}

/// The stack of the thread [`compile_file`] compiles on. Every recursive step of the compiler
/// is bounded (rule nesting by [`grammar::MAX_RULE_NESTING`], TOML nesting by the TOML parser),
/// so this is a margin of several hundred times what the deepest policy needs.
const COMPILE_STACK: usize = 16 * 1024 * 1024;

/// Reads and compiles a policy file.
///
/// The compilation runs on a thread of its own with [`COMPILE_STACK`] bytes of stack, whoever
/// calls: a running gateway reloads from a tokio worker, whose stack is small, and the text is
/// whatever the file holds. A panic in the compiler (a bug) comes back as an error instead of
/// ending the caller, so a reload keeps the running policy.
pub fn compile_file(path: &Path, options: CompileOptions) -> std::io::Result<Compilation> {
    let text = std::fs::read_to_string(path)?;
    let source = SourceFile::new(path.display().to_string(), Arc::<str>::from(text));
    let compiler = std::thread::Builder::new()
        .name("policy-compile".into())
        .stack_size(COMPILE_STACK)
        .spawn(move || compile(&source, options))?;
    compiler.join().map_err(|_| {
        std::io::Error::other("the policy compiler failed (a bug in apmgate: please report it)")
    })
}

/// Keys whose values are secrets wherever they appear (`auth.secret_token.*.secret`, TLS
/// `key_passphrase`, the Elasticsearch `password` and `api_key`, `Authorization` headers).
const SECRET_KEYS: &str = "secret|password|key_passphrase|passphrase|api_key|authorization";

/// Spans of inline secret values found by reading the text as lines of `key = value`, with no
/// TOML parser: what masks secrets in the report of a file that does not parse (a syntax error
/// next to a secret, a `secret` key written twice), where the compiler never gets to say which
/// values are secrets. References (`env:`, `file:`) stay readable; a value whose closing quote
/// this reading cannot find is masked to the end of its line.
fn lexical_secret_spans(text: &str) -> Vec<std::ops::Range<usize>> {
    static KEY: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    static USERINFO: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| {
        regex::Regex::new(&format!(
            r#"(?im)(?:^|[\s{{,.])["']?(?:{SECRET_KEYS})["']?[ \t]*=[ \t]*"#
        ))
        .expect("a valid pattern")
    });
    let userinfo =
        USERINFO.get_or_init(|| regex::Regex::new(r#"://([^\s"'/@]+)@"#).expect("a valid pattern"));
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    for m in key.find_iter(text) {
        let start = m.end();
        let rest = &text[start..];
        let line_end = rest.find('\n').map_or(text.len(), |i| start + i);
        let span = if let Some(quote) = [r#"""""#, "'''"].into_iter().find(|q| rest.starts_with(q))
        {
            let body = start + 3;
            let end = text[body..].find(quote).map_or(text.len(), |i| body + i);
            body..end
        } else if rest.starts_with(['"', '\'']) {
            let quote = bytes[start];
            let body = start + 1;
            let mut i = body;
            while i < line_end && bytes[i] != quote {
                // Basic strings escape with a backslash; literal strings do not.
                i += if quote == b'"' && bytes[i] == b'\\' {
                    2
                } else {
                    1
                };
            }
            body..i.min(line_end)
        } else {
            let end = rest[..line_end - start]
                .find([',', '}', '#'])
                .map_or(line_end, |i| start + i);
            start..end
        };
        let value = &text[span.clone()];
        if !(value.starts_with("env:") || value.starts_with("file:")) {
            spans.push(span);
        }
    }
    spans.extend(
        userinfo
            .captures_iter(text)
            .filter_map(|c| c.get(1))
            .map(|m| m.range()),
    );
    spans
}

fn redact(source: &SourceFile, compiled: &[std::ops::Range<usize>]) -> SourceFile {
    let mut spans = lexical_secret_spans(&source.text);
    spans.extend_from_slice(compiled);
    if spans.is_empty() {
        return source.clone();
    }
    let mut bytes = source.text.as_bytes().to_vec();
    for span in &spans {
        let end = span.end.min(bytes.len());
        for b in &mut bytes[span.start.min(end)..end] {
            // Replacing every byte (continuation bytes of a multi-byte character included) with
            // `*` keeps offsets and valid UTF-8.
            *b = b'*';
        }
    }
    SourceFile::new(
        source.name.clone(),
        Arc::<str>::from(String::from_utf8_lossy(&bytes).into_owned()),
    )
}
