//! `docs/errors.md` documents every diagnostic code, and the `url` of a diagnostic points at it.

use std::collections::BTreeSet;

use apmgate::policy::Code;
use apmgate::policy::diagnostics::DOCS_URL;

fn docs() -> String {
    let path = format!("{}/{DOCS_URL}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The text of a code's entry: from its anchor to the next anchor.
fn entry(docs: &str, code: Code) -> &str {
    let anchor = format!("<a id=\"{}\"></a>", code.as_str().to_ascii_lowercase());
    let start = docs
        .find(&anchor)
        .unwrap_or_else(|| panic!("no anchor for {code}"));
    let rest = &docs[start + anchor.len()..];
    let end = rest.find("<a id=\"").unwrap_or(rest.len());
    &rest[..end]
}

/// Every `E123`/`W123`-shaped word of a text.
fn code_like_words(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\b[EW][0-9]{3}\b").expect("valid regex");
    re.find_iter(text).map(|m| m.as_str().to_string()).collect()
}

#[test]
fn every_code_has_an_anchor_and_a_heading() {
    let docs = docs();
    let mut missing = Vec::new();
    for code in Code::ALL {
        let anchor = format!("<a id=\"{}\"></a>", code.as_str().to_ascii_lowercase());
        // The anchor sits right above the heading, which carries the code's title.
        let heading = format!("{anchor}\n## {}: {}\n", code.as_str(), code.title());
        if docs.matches(&anchor).count() != 1 {
            missing.push(format!("{code}: expected exactly one `{anchor}`"));
        } else if !docs.contains(&heading) {
            missing.push(format!(
                "{code}: expected the heading `## {code}: {}` right below its anchor",
                code.title()
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn every_entry_explains_with_an_example_and_a_fix() {
    let docs = docs();
    let mut incomplete = Vec::new();
    for code in Code::ALL {
        let text = entry(&docs, *code);
        if !text.contains("```toml\n") {
            incomplete.push(format!("{code}: no TOML example"));
        }
        if !text.contains("**Fix:**") {
            incomplete.push(format!("{code}: no **Fix:**"));
        }
    }
    assert!(incomplete.is_empty(), "{}", incomplete.join("\n"));
}

#[test]
fn entries_follow_the_order_of_the_codes() {
    let docs = docs();
    let positions: Vec<usize> = Code::ALL
        .iter()
        .map(|c| {
            docs.find(&format!("\n## {}:", c.as_str()))
                .unwrap_or_else(|| panic!("no heading for {c}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "entries are not in `Code::ALL` order"
    );
}

#[test]
fn every_url_points_at_its_entry() {
    for code in Code::ALL {
        let url = code.url();
        let lower = code.as_str().to_ascii_lowercase();
        assert!(url.ends_with(&format!("#{lower}")), "{code}: {url}");
        assert!(url.starts_with(&format!("{DOCS_URL}#")), "{code}: {url}");
    }
}

#[test]
fn the_docs_name_no_unknown_code() {
    let known: BTreeSet<String> = Code::ALL.iter().map(|c| c.as_str().to_string()).collect();
    let unknown: Vec<String> = code_like_words(&docs())
        .difference(&known)
        .cloned()
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/errors.md names codes that do not exist: {unknown:?}"
    );
}

#[test]
fn the_docs_anchor_no_unknown_code() {
    let docs = docs();
    let known: BTreeSet<String> = Code::ALL
        .iter()
        .map(|c| c.as_str().to_ascii_lowercase())
        .collect();
    let anchors: Vec<&str> = docs
        .match_indices("<a id=\"")
        .filter_map(|(i, m)| docs[i + m.len()..].split('"').next())
        .filter(|id| !known.contains(*id))
        .collect();
    assert!(anchors.is_empty(), "anchors without a code: {anchors:?}");
}
