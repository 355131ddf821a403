//! Values as APM Server reads them (Go durations, humanized sizes, `${VAR:default}`
//! references) turned into the policy's forms.

/// A Go duration (`1h30m`, `1.5s`, `500ms`) or a bare number of seconds, in microseconds.
pub(crate) fn parse_duration(text: &str) -> Option<u128> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds >= 0.0 && seconds.is_finite()).then(|| (seconds * 1e6).round() as u128);
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-3,
            "us" | "µs" => 1.0,
            "ms" => 1e3,
            "s" => 1e6,
            "m" => 60e6,
            "h" => 3600e6,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * factor;
    }
    Some(total.round() as u128)
}

/// Microseconds as a policy duration: `1h30m`, `250ms`, `0s`.
pub(crate) fn format_duration(micros: u128) -> String {
    if micros == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut rest = micros;
    for (unit, size) in [
        ("h", 3_600_000_000u128),
        ("m", 60_000_000),
        ("s", 1_000_000),
        ("ms", 1_000),
        ("us", 1),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// A size as APM Server reads it: bytes, or a number with a unit (`1mib`, `24kb`, `1 MB`).
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let number: f64 = text[..digits].parse().ok()?;
    let factor: f64 = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = number * factor;
    (bytes >= 0.0 && bytes < u64::MAX as f64).then(|| bytes.round() as u64)
}

/// Bytes as a policy size: `300KiB`, `1MiB`, `10MB`, `1234`.
pub(crate) fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 6] = [
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1_000),
    ];
    if bytes == 0 {
        return "0".to_string();
    }
    for (unit, size) in UNITS {
        if bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// A `${NAME}` or `${NAME:default}` reference found in a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    /// The variable (or keystore key) name.
    pub(crate) name: String,
    /// The default after `:`, if any.
    pub(crate) default: Option<String>,
}

/// A value's references, and the value with every reference replaced by its default (None
/// when a reference has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interpolated {
    /// Every reference, in order.
    pub(crate) references: Vec<Reference>,
    /// The text with defaults in place of the references.
    pub(crate) with_defaults: Option<String>,
    /// Whether the whole value is one reference.
    pub(crate) whole: bool,
}

/// Finds `${...}` references (APM Server reads them from the environment or its keystore).
pub(crate) fn interpolate(text: &str) -> Interpolated {
    let mut references = Vec::new();
    let mut out = Some(String::new());
    let mut rest = text;
    let mut whole = false;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let inner = &rest[start + 2..start + len];
        let (name, default) = match inner.split_once(':') {
            Some((n, d)) => (n.trim(), Some(d.to_string())),
            None => (inner.trim(), None),
        };
        whole = start == 0 && start + len + 1 == rest.len() && references.is_empty();
        if let Some(o) = out.as_mut() {
            o.push_str(&rest[..start]);
            match &default {
                Some(d) => o.push_str(d),
                None => out = None,
            }
        }
        references.push(Reference {
            name: name.to_string(),
            default,
        });
        rest = &rest[start + len + 1..];
    }
    if let Some(o) = out.as_mut() {
        o.push_str(rest);
    }
    Interpolated {
        whole: whole && !references.is_empty() && rest.is_empty(),
        references,
        with_defaults: out,
    }
}

/// The URL APM Server makes of a host: scheme from `protocol`, port 9200 when none is given.
pub(crate) fn es_url(host: &str, scheme: &str) -> String {
    let (scheme, rest) = match host.split_once("://") {
        Some((s, r)) => (s.to_string(), r.to_string()),
        None => (scheme.to_string(), host.to_string()),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest, String::new()),
    };
    let has_port = if authority.starts_with('[') {
        authority.contains("]:")
    } else {
        authority.contains(':')
    };
    let authority = if has_port {
        authority
    } else {
        format!("{authority}:9200")
    };
    format!("{scheme}://{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_become_policy_durations() {
        for (go, policy) in [
            ("30s", "30s"),
            ("1h30m", "1h30m"),
            ("3600s", "1h"),
            ("1.5s", "1s500ms"),
            ("500ms", "500ms"),
            ("45", "45s"),
            ("0", "0s"),
        ] {
            assert_eq!(
                parse_duration(go).map(format_duration).as_deref(),
                Some(policy),
                "{go}"
            );
        }
        assert_eq!(parse_duration("thirty"), None);
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn humanized_sizes_become_policy_sizes() {
        for (yaml, policy) in [
            ("307200", "300KiB"),
            ("1mib", "1MiB"),
            ("1 MB", "1MB"),
            ("24kb", "24KB"),
            ("1048576", "1MiB"),
            ("1000001", "1000001"),
        ] {
            assert_eq!(
                parse_size(yaml).map(format_size).as_deref(),
                Some(policy),
                "{yaml}"
            );
        }
        assert_eq!(parse_size("lots"), None);
    }

    #[test]
    fn references_and_their_defaults() {
        let i = interpolate("${ES_HOST:localhost:9200}");
        assert!(i.whole);
        assert_eq!(i.with_defaults.as_deref(), Some("localhost:9200"));
        assert_eq!(i.references[0].name, "ES_HOST");
        let i = interpolate("https://${HOST}:9200");
        assert!(!i.whole);
        assert_eq!(i.with_defaults, None);
        let i = interpolate("plain");
        assert!(i.references.is_empty());
        assert_eq!(i.with_defaults.as_deref(), Some("plain"));
    }

    #[test]
    pub(super) fn elasticsearch_hosts_are_completed_as_apm_server_does() {
        assert_eq!(es_url("localhost:9200", "http"), "http://localhost:9200");
        assert_eq!(es_url("es1", "https"), "https://es1:9200");
        assert_eq!(es_url("http://es:9201/p", "https"), "http://es:9201/p");
        assert_eq!(
            es_url("[2001:db8::1]", "https"),
            "https://[2001:db8::1]:9200"
        );
    }
}
