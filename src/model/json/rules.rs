//! Validation helpers producing APM Server's messages: one function per rule of its JSON
//! schema (`maxLength`, `required`, patterns, ...), each returning the message of the first
//! violation.

use super::{IsSet, JAny, JStr, LabelIn};
use std::borrow::Cow;

/// The `maxLength` APM Server's intake JSON schema gives string fields indexed as Elasticsearch
/// `keyword`s (ids, names, types, label values, ...), counted in runes: longer values are
/// refused, not truncated.
pub const KEYWORD_MAX_LENGTH: usize = 1024;

/// The `maxLength` of the service target fields of a transaction's dropped span statistics
/// (`dropped_spans_stats[].service_target_type` and `..._name`).
pub const SERVICE_TARGET_MAX_LENGTH: usize = 512;

/// A validation failure message (without the `validation error: ` prefix).
pub type VResult = Result<(), String>;

/// `'<key>': validation rule 'maxLength(<n>)' violated`
pub fn max_len(v: &Option<JStr<'_>>, n: usize, key: &str) -> VResult {
    match v {
        Some(s) if s.len() > n && s.runes() > n => Err(format!(
            "'{key}': validation rule 'maxLength({n})' violated"
        )),
        _ => Ok(()),
    }
}

/// [`max_len`] of [`KEYWORD_MAX_LENGTH`] for each field under its key, in order: the first
/// violation.
pub fn keywords(fields: &[(&Option<JStr<'_>>, &str)]) -> VResult {
    fields
        .iter()
        .try_for_each(|(v, key)| max_len(v, KEYWORD_MAX_LENGTH, key))
}

/// `'<key>': validation rule 'minLength(1)' violated`
pub fn min_len1(v: &Option<JStr<'_>>, key: &str) -> VResult {
    match v {
        Some(s) if s.is_empty() => Err(format!("'{key}': validation rule 'minLength(1)' violated")),
        _ => Ok(()),
    }
}

/// `'<key>' required`
pub fn required<T: IsSet>(v: &T, key: &str) -> VResult {
    if v.is_set() {
        Ok(())
    } else {
        Err(format!("'{key}' required"))
    }
}

/// `'<key>' required when '<other>' is set`, for the first of `others` (whether it is set, and
/// its key) that is set while this field is not (the schema's `requiredIfAny`).
pub fn required_if_any<T: IsSet>(v: &T, key: &str, others: &[(bool, &str)]) -> VResult {
    if v.is_set() {
        return Ok(());
    }
    match others.iter().find(|(set, _)| *set) {
        Some((_, other)) => Err(format!("'{key}' required when '{other}' is set")),
        None => Ok(()),
    }
}

/// Runs a nested struct's validation when it is set, prefixing its path.
pub fn nested<T: IsSet>(v: &T, key: &str, f: impl FnOnce(&T) -> VResult) -> VResult {
    if v.is_set() {
        f(v).map_err(|e| format!("{key}: {e}"))
    } else {
        Ok(())
    }
}

/// Validates each element of a slice of structs.
pub fn each<T: IsSet>(v: &[T], key: &str, f: impl Fn(&T) -> VResult) -> VResult {
    for elem in v {
        if !elem.is_set() {
            return Err(format!("{key} slice element required"));
        }
        f(elem).map_err(|e| format!("{key}: {e}"))?;
    }
    Ok(())
}

/// `requires at least one of the fields '<a>;<b>'`, naming the fields by their keys.
pub fn any_of(set: bool, keys: &[&str]) -> VResult {
    if set {
        Ok(())
    } else {
        Err(format!(
            "requires at least one of the fields '{}'",
            keys.join(";")
        ))
    }
}

/// `'<key>': validation rule 'pattern(patternAlphaNumericExt)' violated` (`^[a-zA-Z0-9 _-]+$`),
/// checked only on a non-empty value.
pub fn alnum_ext(v: &Option<JStr<'_>>, key: &str) -> VResult {
    match v {
        Some(s)
            if !s.is_empty()
                && !s
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b" _-".contains(&c)) =>
        {
            Err(format!(
                "'{key}': validation rule 'pattern(patternAlphaNumericExt)' violated"
            ))
        }
        _ => Ok(()),
    }
}

/// `'outcome': validation rule 'enum(enumOutcome)' violated`, checked on a non-empty value.
pub fn outcome(v: &Option<JStr<'_>>, key: &str) -> VResult {
    match v {
        Some(s) if !s.is_empty() && !matches!(s.as_str(), "success" | "failure" | "unknown") => {
            Err(format!(
                "'{key}': validation rule 'enum(enumOutcome)' violated"
            ))
        }
        _ => Ok(()),
    }
}

/// `'<key>': validation rule 'min(<n>)' violated` for numbers.
pub fn min_f(v: Option<f64>, n: f64, key: &str, shown: &str) -> VResult {
    match v {
        Some(x) if x < n => Err(format!("'{key}': validation rule 'min({shown})' violated")),
        _ => Ok(()),
    }
}

/// A duration in milliseconds whose nanoseconds do not fit Elasticsearch's `long` (where
/// `event.duration` is stored). APM Server accepts such a duration and writes a number that
/// Elasticsearch then refuses, losing the event after answering 202; apmgate refuses the event
/// at intake instead, worded like the schema's other rules.
pub fn max_duration(v: Option<f64>, key: &str) -> VResult {
    match v {
        Some(ms) if ms * 1_000_000.0 >= DURATION_NS_LIMIT => Err(format!(
            "'{key}': validation rule 'max({MAX_DURATION_MS_SHOWN})' violated"
        )),
        _ => Ok(()),
    }
}

/// 2^63: the first nanosecond count outside Elasticsearch's `long`.
const DURATION_NS_LIMIT: f64 = 9_223_372_036_854_775_808.0;

/// The largest accepted duration in milliseconds, as the refusal shows it.
const MAX_DURATION_MS_SHOWN: &str = "9223372036854.775";

/// A name/version pair's lengths, under the protocol's keys (`["name", "version"]` in v2,
/// `["n", "ve"]` in RUM v3).
pub fn name_version_max(
    name: &Option<JStr<'_>>,
    version: &Option<JStr<'_>>,
    keys: [&str; 2],
) -> VResult {
    max_len(name, KEYWORD_MAX_LENGTH, keys[0])?;
    max_len(version, KEYWORD_MAX_LENGTH, keys[1])
}

/// A user's fields, under the protocol's keys for domain, id, email and name (v2:
/// `["domain", "id", "email", "username"]`, RUM v3: `["ud", "id", "em", "un"]`).
pub fn user_fields(
    domain: &Option<JStr<'_>>,
    id: &Option<JAny>,
    email: &Option<JStr<'_>>,
    name: &Option<JStr<'_>>,
    keys: [&str; 4],
) -> VResult {
    max_len(domain, KEYWORD_MAX_LENGTH, keys[0])?;
    string_or_int(id, keys[1], KEYWORD_MAX_LENGTH, false)?;
    max_len(email, KEYWORD_MAX_LENGTH, keys[2])?;
    max_len(name, KEYWORD_MAX_LENGTH, keys[3])
}

/// Label values: strings (at most [`KEYWORD_MAX_LENGTH`] runes), booleans, numbers, null.
pub fn labels(v: &[(Cow<'_, str>, LabelIn<'_>)], key: &str) -> VResult {
    for (k, val) in v {
        match val {
            LabelIn::Str(s)
                if s.len() > KEYWORD_MAX_LENGTH && s.chars().count() > KEYWORD_MAX_LENGTH =>
            {
                return Err(format!(
                    "'{key}': validation rule 'maxLengthVals({KEYWORD_MAX_LENGTH})' violated"
                ));
            }
            LabelIn::Other => {
                return Err(format!(
                    "'{key}': validation rule 'inputTypesVals(string;bool;number)' violated for key {k}"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A value that may be a string or an integer (`id`, `code`, `port`).
pub fn string_or_int(v: &Option<super::JAny>, key: &str, max: usize, target_int: bool) -> VResult {
    use serde_json::Value;
    match v.as_ref().map(|a| &a.0) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) => {
            if s.chars().count() > max {
                return Err(format!(
                    "'{key}': validation rule 'maxLength({max})' violated"
                ));
            }
            if target_int && s.parse::<i64>().is_err() {
                return Err(format!(
                    "'{key}': validation rule 'targetType(int)' violated"
                ));
            }
            Ok(())
        }
        Some(Value::Number(n)) => {
            if n.is_i64() || n.is_u64() && n.as_u64().is_some_and(|u| i64::try_from(u).is_ok()) {
                Ok(())
            } else {
                Err(format!(
                    "'{key}': validation rule 'inputTypes(string;int)' violated"
                ))
            }
        }
        // Go's generated code has a trailing space in this one message.
        Some(_) => Err(format!(
            "'{key}': validation rule 'inputTypes(string;int)' violated "
        )),
    }
}
