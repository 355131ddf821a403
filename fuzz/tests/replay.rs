//! Replays the committed corpus (`corpus/<target>/`) and the saved findings
//! (`crashes/<target>/`) through the fuzz targets, without a fuzzer: a regression test that
//! runs in seconds. A saved crash fails here until apmgate is fixed.

use std::path::Path;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .filter(|p| {
                // AFL's own notes and this folder's README are not inputs.
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                !name.starts_with('.') && !name.starts_with("README")
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn replay(target: &str, kind: &str) -> usize {
    let run = apmgate_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, f)| *f)
        .expect("a target of that name");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(kind)
        .join(target);
    let files = files(&dir);
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} fails (again: `cargo test --manifest-path fuzz/Cargo.toml --test replay {target}::{kind}`)",
            file.display()
        );
    }
    files.len()
}

macro_rules! target {
    ($name:ident) => {
        mod $name {
            #[test]
            fn corpus() {
                let n = super::replay(stringify!($name), "corpus");
                assert!(n > 0, "corpus/{} is empty", stringify!($name));
            }

            #[test]
            fn crashes() {
                super::replay(stringify!($name), "crashes");
            }
        }
    };
}

target!(policy_compile);
target!(rule_grammar);
target!(intake_v2);
target!(intake_rumv3);
target!(body_framing);
target!(router);
target!(otlp);

#[test]
fn every_target_is_replayed() {
    let replayed = [
        "policy_compile",
        "rule_grammar",
        "intake_v2",
        "intake_rumv3",
        "body_framing",
        "router",
        "otlp",
    ];
    for (name, _) in apmgate_fuzz::TARGETS {
        assert!(replayed.contains(name), "{name} has no replay test");
    }
}
