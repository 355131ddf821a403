//! Structural check: the TOML tree against the policy's JSON Schema, every error at once.
//!
//! serde stops at the first problem; operators want all of them. So before serde reads the file,
//! this walker compares the spanned TOML tree with the schema generated from [`super::ast`] and
//! reports every unknown key (with `did you mean`), wrong type, missing key, unknown enum value
//! and out-of-range number, each at its exact place. It then prunes what it reported (unknown
//! keys, bad values; a table that lost a required key goes with its parent entry) so that serde
//! can read the rest and the semantic checks still run on everything that is well-formed.

use std::ops::Range;

use serde_json::Value as Json;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostics::{Code, Diagnostic, did_you_mean};

/// Checks a parsed document against a schema, pruning what does not fit. Returns the findings
/// and whether the pruned document can still be read.
pub fn check(root: &mut Spanned<DeTable<'_>>, schema: &Json) -> (Vec<Diagnostic>, bool) {
    let mut walker = Walker {
        root: schema,
        diags: Vec::new(),
    };
    let span = root.span();
    let ok = walker.table(root.get_mut(), span, 0..0, schema, "");
    (walker.diags, ok)
}

struct Walker<'s> {
    root: &'s Json,
    diags: Vec<Diagnostic>,
}

fn kind(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn type_name(t: &str) -> &'static str {
    match t {
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean",
        "array" => "an array",
        "object" => "a table",
        _ => "a value",
    }
}

fn join_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "the top level".to_string()
    } else {
        format!("`{path}`")
    }
}

impl<'s> Walker<'s> {
    fn resolve(&self, mut schema: &'s Json) -> &'s Json {
        for _ in 0..16 {
            let Some(r) = schema.get("$ref").and_then(Json::as_str) else {
                break;
            };
            let Some(pointer) = r.strip_prefix('#') else {
                break;
            };
            match self.root.pointer(pointer) {
                Some(s) => schema = s,
                None => break,
            }
        }
        schema
    }

    /// The alternatives of an `anyOf`/`oneOf`, without `null`.
    fn alternatives(&self, schema: &'s Json) -> Option<Vec<&'s Json>> {
        let alts = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))?
            .as_array()?;
        Some(
            alts.iter()
                .map(|a| self.resolve(a))
                .filter(|a| a.get("type").and_then(Json::as_str) != Some("null"))
                .collect(),
        )
    }

    fn types(schema: &Json) -> Vec<&str> {
        match schema.get("type") {
            Some(Json::String(t)) => vec![t.as_str()],
            Some(Json::Array(ts)) => ts
                .iter()
                .filter_map(Json::as_str)
                .filter(|t| *t != "null")
                .collect(),
            _ => Vec::new(),
        }
    }

    fn enum_values(&self, schema: &'s Json) -> Option<Vec<&'s str>> {
        if let Some(values) = schema.get("enum").and_then(Json::as_array) {
            return Some(values.iter().filter_map(Json::as_str).collect());
        }
        if let Some(c) = schema.get("const").and_then(Json::as_str) {
            return Some(vec![c]);
        }
        let alts = self.alternatives(schema)?;
        let mut out = Vec::new();
        for alt in alts {
            out.extend(self.enum_values(alt)?);
        }
        Some(out)
    }

    fn value(&mut self, v: &mut Spanned<DeValue<'_>>, schema: &'s Json, path: &str) -> bool {
        let before = self.diags.len();
        self.value_inner(v, schema, path);
        self.diags.len() == before
    }

    fn value_inner(&mut self, v: &mut Spanned<DeValue<'_>>, schema: &'s Json, path: &str) {
        let schema = self.resolve(schema);
        let span = v.span();
        if let Some(values) = self.enum_values(schema) {
            let DeValue::String(s) = v.get_ref() else {
                self.diags.push(
                    Diagnostic::new(
                        Code::WrongType,
                        format!(
                            "{} must be a string, found {}",
                            display_path(path),
                            kind(v.get_ref())
                        ),
                        span,
                        "expected a string",
                    )
                    .with_help(format!("one of: {}", values.join(", "))),
                );
                return;
            };
            if !values.contains(&s.as_ref()) {
                let help = did_you_mean(s, values.iter().copied())
                    .unwrap_or_else(|| format!("allowed values: {}", values.join(", ")));
                self.diags.push(
                    Diagnostic::new(
                        Code::UnknownVariant,
                        format!("{} has unknown value `{s}`", display_path(path)),
                        span,
                        format!("not one of {}", values.join(", ")),
                    )
                    .with_help(help),
                );
            }
            return;
        }
        if let Some(alts) = self.alternatives(schema) {
            match alts.as_slice() {
                [] => {}
                [one] => {
                    self.value(v, one, path);
                }
                many => {
                    let mut best: Option<Vec<Diagnostic>> = None;
                    for alt in many {
                        let mut sub = Walker {
                            root: self.root,
                            diags: Vec::new(),
                        };
                        let mut trial = v.clone();
                        sub.value(&mut trial, alt, path);
                        if sub.diags.is_empty() {
                            return;
                        }
                        let type_ok = !sub
                            .diags
                            .iter()
                            .any(|d| d.code == Code::WrongType && d.labels[0].span == span);
                        if type_ok && best.is_none() {
                            best = Some(sub.diags);
                        }
                    }
                    match best {
                        Some(diags) => self.diags.extend(diags),
                        None => self.diags.push(Diagnostic::new(
                            Code::WrongType,
                            format!(
                                "{} has the wrong type, found {}",
                                display_path(path),
                                kind(v.get_ref())
                            ),
                            span,
                            "unexpected type",
                        )),
                    }
                }
            }
            return;
        }
        let types = Self::types(schema);
        let fits = |t: &str| match (t, v.get_ref()) {
            ("string", DeValue::String(_)) => true,
            ("string", DeValue::Datetime(_)) => {
                schema.get("format").and_then(Json::as_str) == Some("date-time")
            }
            ("integer", DeValue::Integer(_)) => true,
            ("number", DeValue::Integer(_) | DeValue::Float(_)) => true,
            ("boolean", DeValue::Boolean(_)) => true,
            ("array", DeValue::Array(_)) => true,
            ("object", DeValue::Table(_)) => true,
            _ => false,
        };
        if !types.is_empty() && !types.iter().any(|t| fits(t)) {
            let expected = types
                .iter()
                .map(|t| type_name(t))
                .collect::<Vec<_>>()
                .join(" or ");
            let mut d = Diagnostic::new(
                Code::WrongType,
                format!(
                    "{} must be {expected}, found {}",
                    display_path(path),
                    kind(v.get_ref())
                ),
                span,
                format!("expected {expected}"),
            );
            if types == ["string"] && !matches!(v.get_ref(), DeValue::Array(_) | DeValue::Table(_))
            {
                d = d.with_help("put the value in quotes");
            } else if types == ["array"] {
                d = d.with_help("write a list: `[ ... ]`");
            }
            self.diags.push(d);
            return;
        }
        match v.get_mut() {
            DeValue::Table(t) => {
                // Every way a table fails pushes a diagnostic, which is what `value` counts.
                self.table(t, span.clone(), span, schema, path);
            }
            DeValue::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    let _ = self.array(items, item_schema, path, None);
                }
            }
            DeValue::Integer(i) => {
                let n = i.to_string().replace('_', "");
                let parsed = parse_toml_int(&n);
                let min = schema.get("minimum").and_then(Json::as_i64);
                let max = schema.get("maximum").and_then(Json::as_i64);
                if let Some(n) = parsed {
                    if min.is_some_and(|m| n < i128::from(m))
                        || max.is_some_and(|m| n > i128::from(m))
                    {
                        let range = match (min, max) {
                            (Some(a), Some(b)) => format!("between {a} and {b}"),
                            (Some(a), None) => format!("at least {a}"),
                            (None, Some(b)) => format!("at most {b}"),
                            _ => String::new(),
                        };
                        self.diags.push(Diagnostic::new(
                            Code::NumberOutOfRange,
                            format!("{} must be {range}", display_path(path)),
                            span,
                            format!("must be {range}"),
                        ));
                    }
                }
            }
            _ => {}
        }
    }

    fn array<'i>(
        &mut self,
        items: &mut toml::de::DeArray<'i>,
        item_schema: &'s Json,
        path: &str,
        key_span: Option<Range<usize>>,
    ) -> bool {
        // Items are checked on copies, which the check prunes; the array is always rebuilt from
        // the copies, or what was pruned inside a kept item (an unknown key, a bad value in one
        // of its lists) would stay for serde to trip over, and every later check would be lost.
        let mut kept = toml::de::DeArray::new();
        for (i, item) in items.iter().enumerate() {
            let mut item = item.clone();
            let item_path = format!("{path}[{i}]");
            let ok = match (&key_span, item.get_ref()) {
                (Some(key_span), DeValue::Table(_)) => {
                    let header = if item.span().is_empty() {
                        key_span.clone()
                    } else {
                        item.span()
                    };
                    self.value_with_header(&mut item, header, item_schema, &item_path)
                }
                _ => self.value(&mut item, item_schema, &item_path),
            };
            if ok {
                kept.push(item);
            }
        }
        // A list whose every item was refused is dropped whole (its default applies), so that
        // the refused items are not reported a second time as an empty list.
        let emptied = kept.is_empty() && !items.is_empty();
        *items = kept;
        !emptied
    }

    fn table(
        &mut self,
        t: &mut DeTable<'_>,
        span: Range<usize>,
        header: Range<usize>,
        schema: &'s Json,
        path: &str,
    ) -> bool {
        let schema = self.resolve(schema);
        let props = schema.get("properties").and_then(Json::as_object);
        let additional = schema.get("additionalProperties");
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Json::as_array)
            .map(|r| r.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        let mut ok = true;
        let mut remove: Vec<String> = Vec::new();
        for (key, value) in t.iter_mut() {
            let name: &str = key.get_ref();
            let key_path = join_path(path, name);
            let fits = match props.and_then(|p| p.get(name)) {
                Some(prop) => self.value_with_header(value, key.span(), prop, &key_path),
                None => match additional {
                    Some(Json::Bool(false)) | None if props.is_some() => {
                        let known: Vec<&str> = props
                            .map(|p| p.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        let help = did_you_mean(name, known.iter().copied()).unwrap_or_else(|| {
                            format!(
                                "keys allowed in {}: {}",
                                display_path(path),
                                known.join(", ")
                            )
                        });
                        self.diags.push(
                            Diagnostic::new(
                                Code::UnknownKey,
                                format!("unknown key `{name}` in {}", display_path(path)),
                                key.span(),
                                "unknown key",
                            )
                            .with_help(help),
                        );
                        false
                    }
                    Some(extra @ Json::Object(_)) => {
                        self.value_with_header(value, key.span(), extra, &key_path)
                    }
                    _ => true,
                },
            };
            if !fits {
                if required.contains(&name) {
                    ok = false;
                } else {
                    remove.push(name.to_string());
                }
            }
        }
        for name in &remove {
            t.remove(name.as_str());
        }
        {
            for name in required.iter().copied() {
                if !t.iter().any(|(k, _)| k.get_ref().as_ref() == name)
                    && !remove.iter().any(|r| r == name)
                {
                    ok = false;
                    let at = if header.is_empty() {
                        span.start..span.start
                    } else {
                        header.clone()
                    };
                    self.diags.push(
                        Diagnostic::new(
                            Code::MissingKey,
                            format!("{} is missing required key `{name}`", display_path(path)),
                            at,
                            format!("`{name}` is required here"),
                        )
                        .with_help(
                            match schema
                                .pointer(&format!("/properties/{name}/description"))
                                .and_then(Json::as_str)
                            {
                                Some(desc) => format!("add `{name} = ...`: {desc}"),
                                None => format!("add `{name} = ...`"),
                            },
                        ),
                    );
                }
            }
        }
        ok
    }

    fn value_with_header(
        &mut self,
        v: &mut Spanned<DeValue<'_>>,
        key_span: Range<usize>,
        schema: &'s Json,
        path: &str,
    ) -> bool {
        // Tables report missing keys at the key that introduced them (`[listener.limits]`,
        // `limits = {...}`), which is where a reader looks.
        let span = v.span();
        let resolved = self.resolve(schema);
        let plain = self.alternatives(resolved).is_none();
        match v.get_mut() {
            DeValue::Table(t) if plain && Self::types(resolved).contains(&"object") => {
                return self.table(t, span, key_span, resolved, path);
            }
            DeValue::Array(items) if plain && Self::types(resolved).contains(&"array") => {
                return match resolved.get("items") {
                    Some(item_schema) => self.array(items, item_schema, path, Some(key_span)),
                    None => true,
                };
            }
            _ => {}
        }
        self.value(v, schema, path)
    }
}

fn parse_toml_int(s: &str) -> Option<i128> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let n = if let Some(h) = body.strip_prefix("0x") {
        i128::from_str_radix(h, 16).ok()?
    } else if let Some(o) = body.strip_prefix("0o") {
        i128::from_str_radix(o, 8).ok()?
    } else if let Some(b) = body.strip_prefix("0b") {
        i128::from_str_radix(b, 2).ok()?
    } else {
        body.parse().ok()?
    };
    Some(if neg { -n } else { n })
}
