//! The corpus of invalid policies in `tests/invalid/`.
//!
//! Each file is named `<CODE>-<what>.toml` and holds one realistic mistake. This test compiles
//! every file (environment checks included: fixtures live in `tests/invalid/files/`), checks that
//! the named code is reported, and snapshots the human (`NO_COLOR`) and JSON reports in
//! `tests/snapshots/`. Update them with `INSTA_UPDATE=always cargo test --test invalid_policies`
//! and read every changed `.snap` before committing.

use std::path::{Path, PathBuf};

use apmgate::policy::diagnostics::{render_human, to_json};
use apmgate::policy::{Code, Compilation, CompileOptions, Severity, compile_file};

/// Where the corpus lives, relative to the crate root (the directory cargo runs tests from), so
/// that file names in reports are stable.
const CORPUS: &str = "tests/invalid";

/// Codes that no committed corpus file can show, and why.
const NOT_IN_CORPUS: &[(&str, &str)] = &[(
    "W108",
    "depends on today's date: tests/environment_checks.rs generates a certificate that expires in 10 days",
)];

/// The corpus files, sorted.
fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .expect("tests/invalid exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| Path::new(CORPUS).join(p.file_name().expect("a file name")))
        .collect();
    files.sort();
    files
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

/// The code a corpus file is named after.
fn named_code(path: &Path) -> Option<Code> {
    let stem = stem(path);
    let (code, what) = stem.split_once('-')?;
    let well_formed = !what.is_empty()
        && what
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !well_formed {
        return None;
    }
    Code::ALL.iter().copied().find(|c| c.as_str() == code)
}

fn compile(path: &Path) -> Compilation {
    compile_file(path, CompileOptions { environment: true })
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn codes(c: &Compilation) -> Vec<&'static str> {
    c.diagnostics.iter().map(|d| d.code.as_str()).collect()
}

#[test]
fn the_corpus_is_large_enough() {
    let files = corpus();
    assert!(files.len() >= 45, "only {} corpus files", files.len());
}

#[test]
fn every_file_is_named_after_a_known_code() {
    let bad: Vec<String> = corpus()
        .iter()
        .filter(|p| named_code(p).is_none())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        bad.is_empty(),
        "corpus files must be named `<CODE>-<lowercase-words>.toml` with a known code: {bad:?}"
    );
}

#[test]
fn every_file_reports_its_code() {
    let mut problems = Vec::new();
    for path in corpus() {
        let Some(code) = named_code(&path) else {
            continue;
        };
        let c = compile(&path);
        let name = path.display();
        if !c.diagnostics.iter().any(|d| d.code == code) {
            problems.push(format!("{name}: expected {code}, got {:?}", codes(&c)));
        }
        match code.severity() {
            Severity::Error => {
                if c.errors() == 0 || c.policy.is_some() {
                    problems.push(format!(
                        "{name}: expected an invalid policy, got {} errors",
                        c.errors()
                    ));
                }
            }
            // A warning case is otherwise a valid policy: the warning is the only finding
            // that matters, and the policy still compiles.
            Severity::Warning => {
                if c.errors() > 0 || c.policy.is_none() {
                    problems.push(format!(
                        "{name}: a warning case must compile, got {:?}",
                        codes(&c)
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_code_is_covered() {
    let files = corpus();
    let covered: Vec<Code> = files.iter().filter_map(|p| named_code(p)).collect();
    let mut missing = Vec::new();
    // I1xx are `apmgate import`'s codes: its own corpus covers them (tests/import.rs).
    for code in Code::ALL.iter().filter(|c| !c.as_str().starts_with('I')) {
        let in_corpus = covered.contains(code);
        let excused = NOT_IN_CORPUS.iter().any(|(c, _)| *c == code.as_str());
        match (in_corpus, excused) {
            (false, false) => missing.push(format!("{code} ({}) has no corpus file", code.title())),
            (true, true) => missing.push(format!(
                "{code} has corpus files: remove it from NOT_IN_CORPUS"
            )),
            _ => {}
        }
    }
    for (code, reason) in NOT_IN_CORPUS {
        assert!(
            Code::ALL.iter().any(|c| c.as_str() == *code),
            "NOT_IN_CORPUS lists unknown code {code}"
        );
        assert!(!reason.is_empty());
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn every_snapshot_belongs_to_a_corpus_file() {
    let stems: Vec<String> = corpus().iter().map(|p| stem(p)).collect();
    let mut stale = Vec::new();
    for entry in std::fs::read_dir("tests/snapshots").expect("tests/snapshots exists") {
        let name = entry.expect("readable directory entry").file_name();
        let name = name.to_string_lossy();
        let Some(rest) = name.strip_prefix("invalid_policies__") else {
            continue;
        };
        let known = [".human.snap", ".json.snap"].iter().any(|ext| {
            rest.strip_suffix(ext)
                .is_some_and(|s| stems.iter().any(|t| t == s))
        });
        if !known {
            stale.push(name.into_owned());
        }
    }
    assert!(
        stale.is_empty(),
        "snapshots without a corpus file (delete them): {stale:?}"
    );
}

#[test]
fn reports_match_snapshots() {
    for path in corpus() {
        let stem = stem(&path);
        let c = compile(&path);
        let human = render_human(&c.display_source, &c.diagnostics, false);
        let json = serde_json::to_string_pretty(&to_json(&c.source, &c.diagnostics))
            .expect("diagnostics serialize");
        let mut settings = insta::Settings::clone_current();
        settings.set_description(path.display().to_string());
        settings.set_omit_expression(true);
        settings.bind(|| {
            insta::assert_snapshot!(format!("{stem}.human"), human);
            insta::assert_snapshot!(format!("{stem}.json"), json);
        });
    }
}
