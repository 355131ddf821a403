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
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count()
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
            let mut diags = structural;
            if diags.is_empty() {
                diags.push(Diagnostic::new(
                    Code::WrongType,
                    e.message().trim().to_string(),
                    e.span().unwrap_or(0..0),
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

/// Reads and compiles a policy file.
pub fn compile_file(path: &Path, options: CompileOptions) -> std::io::Result<Compilation> {
    let text = std::fs::read_to_string(path)?;
    Ok(compile(
        &SourceFile::new(path.display().to_string(), Arc::<str>::from(text)),
        options,
    ))
}

fn redact(source: &SourceFile, spans: &[std::ops::Range<usize>]) -> SourceFile {
    if spans.is_empty() {
        return source.clone();
    }
    let mut bytes = source.text.as_bytes().to_vec();
    for span in spans {
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
