//! The committed intake schemas (`schemas/intake/`) are the ones generated from the Rust types.
//! Regenerate with `apmgate schema --intake schemas/intake`.

use std::path::Path;

use apmgate::model::schema::intake_schemas;

#[test]
fn committed_intake_schemas_are_the_generated_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/intake");
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    for (name, schema) in intake_schemas() {
        let path = dir.join(name);
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "schemas/intake/{name} is stale: run `apmgate schema --intake schemas/intake`"
        );
    }
}

#[test]
fn schemas_describe_the_wire_keys() {
    let schemas = intake_schemas();
    let (_, tx) = schemas
        .iter()
        .find(|(n, _)| *n == "v2/transaction.json")
        .unwrap();
    let text = tx.to_string();
    for key in [
        "\"transaction\"",
        "\"trace_id\"",
        "\"span_count\"",
        "\"dropped_spans_stats\"",
        "\"otel\"",
    ] {
        assert!(text.contains(key), "{key} in the v2 transaction schema");
    }
    let (_, x) = schemas
        .iter()
        .find(|(n, _)| *n == "rumv3/transaction.json")
        .unwrap();
    assert!(
        x.to_string().contains("\"yc\""),
        "RUM v3 keys are the abbreviated ones"
    );
}
