//! `apmgate import`: an APM Server `apm-server.yml` turned into an equivalent, commented policy,
//! with a coded diagnostic (I1xx, `docs/errors.md`) at the YAML line and column of every
//! setting that could not be carried over or carries with another meaning.
//!
//! Three steps: [`yaml`] reads the document with the place of every node; [`map`] reads each
//! setting (nested and dotted keys alike) into a draft of the policy's sections; [`draft`]
//! writes the policy text, which is then compiled as `apmgate validate` would (without the
//! environment) to make sure it is usable. Secrets are never copied: literal ones move to
//! environment variables and are masked in the reports.

mod aggregation;
mod cases;
mod convert;
mod draft;
mod map;
mod settings;
mod values;
mod yaml;

use crate::policy::diagnostics::{Code, Diagnostic, Severity, SourceFile};
use crate::policy::{CompileOptions, compile};

pub use draft::EnvVar;

/// What importing one file gave.
#[derive(Debug)]
pub struct Import {
    /// The YAML as given.
    pub source: SourceFile,
    /// The YAML with literal secrets masked: what reports show.
    pub display_source: SourceFile,
    /// The policy text; `None` when the YAML could not be read.
    pub policy: Option<String>,
    /// Every finding, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// The environment variables the policy reads, and what each must hold.
    pub env: Vec<EnvVar>,
}

impl Import {
    /// Settings that could not be carried over (errors).
    pub fn lost(&self) -> usize {
        crate::policy::diagnostics::count(&self.diagnostics, Severity::Error)
    }

    /// Settings carried with a difference (warnings).
    pub fn warnings(&self) -> usize {
        crate::policy::diagnostics::count(&self.diagnostics, Severity::Warning)
    }
}

/// Imports the text of an `apm-server.yml` named `name` (as reports and the policy's header
/// show it).
pub fn import(name: &str, text: &str) -> Import {
    let source = SourceFile::new(name, text);
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let end = text[e.offset.min(text.len())..]
                .chars()
                .next()
                .map_or(e.offset, |c| e.offset + c.len_utf8());
            let d = Diagnostic::new(
                Code::ImportYamlSyntax,
                format!("not valid YAML: {}", e.message),
                e.offset.min(text.len())..end.min(text.len()),
                "here",
            )
            .with_help("APM Server cannot read this file either; fix the YAML and import again");
            return Import {
                display_source: source.clone(),
                source,
                policy: None,
                diagnostics: vec![d],
                env: Vec::new(),
            };
        }
    };
    if !matches!(root.kind, yaml::Kind::Map(_)) && !root.is_null() {
        let d = Diagnostic::new(
            Code::ImportYamlSyntax,
            format!(
                "apm-server.yml must be a mapping of settings, found {}",
                root.describe()
            ),
            root.span.clone(),
            "not a mapping",
        );
        return Import {
            display_source: source.clone(),
            source,
            policy: None,
            diagnostics: vec![d],
            env: Vec::new(),
        };
    }

    let mut mapper = map::Mapper::default();
    let mut leaves = Vec::new();
    map::flatten(&root, "", &mut leaves, &mut mapper.diagnostics);
    let facts = mapper.map(&leaves);
    mapper.draft.tests = cases::cases(&facts);
    let lost = mapper
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let (mut policy, origins) = mapper.draft.render(name, lost, &mapper.env);

    // The policy must be one `apmgate validate` accepts: anything it refuses is reported at
    // the YAML setting it came from (a value APM Server would also have refused, such as an
    // invalid regular expression).
    let compiled = compile(
        &SourceFile::new("imported policy", policy.as_str()),
        CompileOptions { environment: false },
    );
    let mut refused = false;
    for d in compiled
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
    {
        refused = true;
        let from = origins
            .iter()
            .find(|(range, _)| range.contains(&d.offset()))
            .map(|(_, from)| from.as_str());
        let span = from
            .and_then(|f| {
                leaves.iter().rev().find(|l| {
                    l.path == f
                        || settings::LEGACY
                            .iter()
                            .any(|(old, new)| *old == l.path && *new == f)
                })
            })
            .map_or(0..0, |l| l.value.span.clone());
        let setting = from.map_or(String::new(), |f| format!("`{f}`: "));
        mapper.diagnostics.push(
            Diagnostic::new(
                Code::ImportInvalidPolicy,
                format!("the imported policy does not validate: {setting}{} {}", d.code, d.message),
                span,
                "refused by `apmgate validate`",
            )
            .with_help("correct the value in the written policy (or in apm-server.yml, then import again); `apmgate validate` shows it at its place"),
        );
    }
    if refused {
        policy.insert_str(
            0,
            "# This policy does not validate yet: see `apmgate validate`.\n",
        );
    }

    let mut diagnostics = mapper.diagnostics;
    diagnostics.sort_by_key(|d| d.offset());
    let mut masked = text.to_string().into_bytes();
    for span in &mapper.masks {
        for b in &mut masked[span.start.min(text.len())..span.end.min(text.len())] {
            if !matches!(*b, b'\n' | b'\r') {
                *b = b'*';
            }
        }
    }
    let masked = String::from_utf8_lossy(&masked).into_owned();
    Import {
        display_source: SourceFile::new(name, masked),
        source,
        policy: Some(policy),
        diagnostics,
        env: mapper.env,
    }
}
