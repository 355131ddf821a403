//! The policy value grammar (`grammar/policy.pest`) and typed parsers over it.
//!
//! Each parser takes a value's text and returns a typed value or a [`ValueError`] whose span is
//! relative to the text; [`ValueText`] maps it back to the exact bytes of the policy file.

use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

use pest::Parser;
use pest::error::InputLocation;
use pest::iterators::Pair;

use super::diagnostics::{Code, Diagnostic};
use super::spanned::Sp;
use super::types::{AddressRange, Bind, Glob, Privilege, SecretRef};

/// The parser pest generates from `grammar/policy.pest`, kept private: its `Rule` enum (one
/// variant per grammar rule) is generated without documentation.
mod generated {
    #![allow(missing_docs, unreachable_pub)]

    /// The pest parser generated from `grammar/policy.pest`.
    #[derive(pest_derive::Parser)]
    #[grammar = "../grammar/policy.pest"]
    pub struct PolicyGrammar;
}

use generated::{PolicyGrammar, Rule};

/// A problem inside a value, with a span relative to the value's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// Byte range inside the value.
    pub span: Range<usize>,
    /// Message.
    pub message: String,
    /// Label at the span.
    pub label: String,
    /// Help, if any.
    pub help: Option<String>,
    /// A more specific code than the one the caller reports value errors under.
    pub code: Option<Code>,
}

impl ValueError {
    pub(crate) fn new(
        span: Range<usize>,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        Self {
            span,
            message: message.into(),
            label: label.into(),
            help: None,
            code: None,
        }
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn code(mut self, code: Code) -> Self {
        self.code = Some(code);
        self
    }
}

/// Maps offsets inside a string value to offsets in the policy file.
#[derive(Debug, Clone)]
pub struct ValueText {
    whole: Range<usize>,
    /// File offset of the value's first byte, when the file holds the value verbatim.
    base: Option<usize>,
}

impl ValueText {
    /// For a string value read from `source` at `value.span`.
    pub fn new(source: &str, value: &Sp<String>) -> Self {
        let whole = value.span.clone();
        let raw = source.get(whole.clone()).unwrap_or("");
        let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            3
        } else if raw.starts_with('"') || raw.starts_with('\'') {
            1
        } else {
            0
        };
        let inner = raw
            .get(quote..raw.len().saturating_sub(quote))
            .unwrap_or("");
        let base = (quote > 0 && inner == value.value.as_str()).then_some(whole.start + quote);
        Self { whole, base }
    }

    /// The file span of a range inside the value (the whole string if escapes got in the way).
    pub fn span(&self, inner: Range<usize>) -> Range<usize> {
        match self.base {
            Some(base) => base + inner.start..base + inner.end,
            None => self.whole.clone(),
        }
    }

    /// A diagnostic for a value error.
    pub fn diagnostic(&self, code: Code, error: ValueError) -> Diagnostic {
        let code = error.code.unwrap_or(code);
        let d = Diagnostic::new(code, error.message, self.span(error.span), error.label);
        match error.help {
            Some(h) => d.with_help(h),
            None => d,
        }
    }
}

fn rule_name(rule: &Rule) -> &'static str {
    match rule {
        Rule::number => "a number",
        Rule::duration_unit => "a unit (ms, s, m, h, d)",
        Rule::duration_part => "a number with a unit",
        Rule::size_unit => "a unit (B, KB, KiB, MB, MiB, GB, GiB)",
        Rule::ip_addr | Rule::ip_cidr | Rule::ip_range | Rule::ip_single => "an IP address",
        Rule::prefix_len => "a prefix length",
        Rule::privilege_resource | Rule::privilege_action => "a name",
        Rule::env_name => "an environment variable name",
        Rule::file_path => "a file path",
        Rule::port => "a port",
        Rule::host_name => "a host name",
        Rule::ipv6_text => "an IPv6 address",
        Rule::or_op => "`or`",
        Rule::and_op => "`and`",
        Rule::not_op => "`not`",
        Rule::in_op => "`in`",
        Rule::matches_op => "`matches`",
        Rule::cmp_op => "`==` or `!=`",
        Rule::field => {
            "a field (listener, route, method, source, identity, identity.name, role, agent, client_cert.subject)"
        }
        Rule::condition | Rule::rule_expr | Rule::or_expr | Rule::and_expr | Rule::unary => {
            "a condition"
        }
        Rule::bool_lit => "`true` or `false`",
        Rule::string_lit => "a quoted string",
        Rule::word => "a value",
        Rule::list => "a list",
        Rule::address_set => "an IP address, CIDR or range",
        Rule::privilege => "a privilege such as `event:write`",
        Rule::privilege_sep => "`:`",
        Rule::bind | Rule::bind_host | Rule::bind_v6 | Rule::bind_unix => {
            "`host:port`, `[v6]:port` or `unix:/path`"
        }
        Rule::glob | Rule::glob_escape | Rule::glob_literal | Rule::glob_star | Rule::glob_any => {
            "a glob pattern"
        }
        Rule::duration => "a duration",
        Rule::size => "a size",
        Rule::close_paren => "`)`",
        Rule::EOI => "the end of the value",
        _ => "something else",
    }
}

fn pest_error(text: &str, err: pest::error::Error<Rule>, what: &str) -> ValueError {
    let (start, end) = match err.location {
        InputLocation::Pos(p) => (p, p),
        InputLocation::Span((s, e)) => (s, e),
    };
    let end = if end == start {
        // Point at the offending character, or at the end of the value.
        text[start..]
            .chars()
            .next()
            .map_or(start, |c| start + c.len_utf8())
    } else {
        end
    };
    let expected = match &err.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<&str> = positives.iter().map(rule_name).collect();
            names.dedup();
            names.sort_unstable();
            names.dedup();
            names.join(" or ")
        }
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    let found = text[start..]
        .chars()
        .next()
        .map_or("the end".to_string(), |c| format!("`{c}`"));
    ValueError::new(
        start..end,
        format!("invalid {what}: expected {expected}, found {found}"),
        if expected.is_empty() {
            "unexpected here".to_string()
        } else {
            format!("expected {expected}")
        },
    )
}

/// Parses a duration such as `30s`, `1m30s`, `250ms`.
pub fn parse_duration(text: &str) -> Result<Duration, ValueError> {
    let help = "write a number and a unit, largest unit first: `250ms`, `30s`, `1m30s`, `2h`";
    let pairs = PolicyGrammar::parse(Rule::duration, text)
        .map_err(|e| pest_error(text, e, "duration").help(help))?;
    let mut total = Duration::ZERO;
    let mut last_rank: Option<usize> = None;
    for part in pairs
        .flatten()
        .filter(|p| p.as_rule() == Rule::duration_part)
    {
        let span = part.as_span();
        let mut inner = part.into_inner();
        let (Some(number), Some(unit)) = (inner.next(), inner.next()) else {
            continue;
        };
        let n: u64 = number.as_str().parse().map_err(|_| {
            ValueError::new(
                number.as_span().start()..number.as_span().end(),
                "number too large in duration",
                "too large",
            )
        })?;
        let (rank, nanos) = match unit.as_str() {
            "d" => (0, 86_400_000_000_000u128),
            "h" => (1, 3_600_000_000_000),
            "m" => (2, 60_000_000_000),
            "s" => (3, 1_000_000_000),
            "ms" => (4, 1_000_000),
            _ => (5, 1_000),
        };
        if last_rank.is_some_and(|last| rank <= last) {
            return Err(ValueError::new(
                span.start()..span.end(),
                "invalid duration: units must go from largest to smallest, each once",
                "out of order",
            )
            .help(help));
        }
        last_rank = Some(rank);
        let add = u128::from(n) * nanos;
        total = total
            .checked_add(Duration::from_nanos(u64::try_from(add).unwrap_or(u64::MAX)))
            .ok_or_else(|| ValueError::new(0..text.len(), "duration too long", "too long"))?;
    }
    Ok(total)
}

/// Parses a size such as `300KiB`, `1MB` or `512`.
pub fn parse_size(text: &str) -> Result<u64, ValueError> {
    let help = "write bytes with an optional unit: `512`, `300KiB`, `10MB`, `1GiB`";
    let pairs = PolicyGrammar::parse(Rule::size, text)
        .map_err(|e| pest_error(text, e, "size").help(help))?;
    let mut n = 0u64;
    let mut mult = 1u64;
    for p in pairs.flatten() {
        match p.as_rule() {
            Rule::number => {
                n = p
                    .as_str()
                    .parse()
                    .map_err(|_| ValueError::new(0..text.len(), "size too large", "too large"))?;
            }
            Rule::size_unit => {
                mult = match p.as_str().to_ascii_lowercase().as_str() {
                    "kib" => 1 << 10,
                    "mib" => 1 << 20,
                    "gib" => 1 << 30,
                    "kb" => 1_000,
                    "mb" => 1_000_000,
                    "gb" => 1_000_000_000,
                    _ => 1,
                };
            }
            _ => {}
        }
    }
    n.checked_mul(mult)
        .ok_or_else(|| ValueError::new(0..text.len(), "size too large", "too large"))
}

/// Parses a CIDR, an inclusive range or an address. A CIDR with host bits set is refused, with
/// its normalized form in the help.
pub fn parse_address_range(text: &str) -> Result<AddressRange, ValueError> {
    // Policies list thousands of these: the common, valid forms skip the grammar, which then
    // only runs to explain what is wrong.
    if let Some(range) = fast_address_range(text) {
        return Ok(range);
    }
    let help =
        "write a CIDR (`10.0.0.0/8`, `2001:db8::/32`), a range (`10.0.0.1-10.0.0.9`) or an address";
    let pairs = PolicyGrammar::parse(Rule::address_set, text)
        .map_err(|e| pest_error(text, e, "address").help(help))?;
    let Some(pair) = pairs.flatten().find(|p| {
        matches!(
            p.as_rule(),
            Rule::ip_cidr | Rule::ip_range | Rule::ip_single
        )
    }) else {
        return Err(ValueError::new(0..text.len(), "invalid address", "not an address").help(help));
    };
    let ip = |p: Pair<Rule>| -> Result<IpAddr, ValueError> {
        let s = p.as_span();
        p.as_str().parse::<IpAddr>().map_err(|_| {
            ValueError::new(
                s.start()..s.end(),
                format!("invalid IP address `{}`", p.as_str()),
                "not an IPv4 or IPv6 address",
            )
            .help(help)
        })
    };
    match pair.as_rule() {
        Rule::ip_single => Ok(AddressRange::single(ip(pair)?)),
        Rule::ip_range => {
            let mut inner = pair.into_inner();
            let (Some(a), Some(b)) = (inner.next(), inner.next()) else {
                unreachable!("grammar")
            };
            let b_span = b.as_span().start()..b.as_span().end();
            let (a, b) = (ip(a)?, ip(b)?);
            AddressRange::from_bounds(a, b).ok_or_else(|| {
                ValueError::new(
                    b_span,
                    "invalid address range: the end is before the start or of another family",
                    "bad end",
                )
                .help(
                    "a range goes from the lower address to the higher one, both IPv4 or both IPv6",
                )
            })
        }
        _ => {
            let mut inner = pair.into_inner();
            let (Some(a), Some(len)) = (inner.next(), inner.next()) else {
                unreachable!("grammar")
            };
            let len_span = len.as_span().start()..len.as_span().end();
            let addr = ip(a)?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = len
                .as_str()
                .parse()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| {
                    ValueError::new(
                        len_span.clone(),
                        format!("invalid prefix length `{}`", len.as_str()),
                        format!("at most {max}"),
                    )
                })?;
            let range = AddressRange::cidr(addr, prefix);
            if range.start() != addr {
                let normal = format!("{}/{}", range.start(), prefix);
                return Err(ValueError::new(
                    0..text.len(),
                    format!("CIDR `{text}` has host bits set"),
                    format!("the network is `{normal}`"),
                )
                .help(format!(
                    "write `{normal}`, or `{addr}` alone to mean one address"
                )));
            }
            Ok(range)
        }
    }
}

fn fast_address_range(text: &str) -> Option<AddressRange> {
    if let Some((addr, len)) = text.split_once('/') {
        let ip: IpAddr = addr.parse().ok()?;
        if !len.bytes().all(|b| b.is_ascii_digit()) || len.is_empty() || len.len() > 3 {
            return None;
        }
        let prefix: u8 = len.parse().ok()?;
        if prefix > if ip.is_ipv4() { 32 } else { 128 } {
            return None;
        }
        let range = AddressRange::cidr(ip, prefix);
        return (range.start() == ip).then_some(range);
    }
    if let Some((a, b)) = text.split_once('-') {
        return AddressRange::from_bounds(a.parse().ok()?, b.parse().ok()?);
    }
    text.parse().ok().map(AddressRange::single)
}

/// Parses a glob pattern.
pub fn parse_glob(text: &str) -> Result<Glob, ValueError> {
    let trailing = text.len() - text.trim_end_matches('\\').len();
    if trailing % 2 == 1 {
        return Err(ValueError::new(
            text.len() - 1..text.len(),
            "invalid glob: a trailing `\\` escapes nothing",
            "nothing to escape",
        )
        .help("write `\\\\` for a literal backslash"));
    }
    let pairs = PolicyGrammar::parse(Rule::glob, text).map_err(|e| {
        pest_error(text, e, "glob")
            .help("`*` matches any characters, `?` one character, `\\` escapes the next one")
    })?;
    let mut glob = Glob::builder();
    for p in pairs.flatten() {
        match p.as_rule() {
            Rule::glob_star => glob.star(),
            Rule::glob_any => glob.any(),
            Rule::glob_escape => glob.literal(&p.as_str()[1..]),
            Rule::glob_literal => glob.literal(p.as_str()),
            _ => {}
        }
    }
    Ok(glob.build(text))
}

/// Parses a privilege name.
pub fn parse_privilege(text: &str) -> Result<Privilege, ValueError> {
    let names = Privilege::ALL.iter().map(|p| p.as_str());
    let known = Privilege::ALL
        .iter()
        .map(|p| format!("`{}`", p.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    PolicyGrammar::parse(Rule::privilege, text)
        .map_err(|e| pest_error(text, e, "privilege").help(format!("privileges are {known}")))?;
    Privilege::from_name(text).ok_or_else(|| {
        let help = super::diagnostics::did_you_mean(text, names)
            .unwrap_or_else(|| format!("privileges are {known}"));
        ValueError::new(
            0..text.len(),
            format!("unknown privilege `{text}`"),
            "not a privilege",
        )
        .help(help)
    })
}

/// Parses a secret reference: `env:NAME`, `file:/path`, or an inline secret.
pub fn parse_secret(text: &str) -> Result<SecretRef, ValueError> {
    let help = "write `env:NAME` to read an environment variable or `file:/path` to read a file";
    if text.is_empty() {
        return Err(ValueError::new(0..0, "empty secret", "empty").help(help));
    }
    let pairs = PolicyGrammar::parse(Rule::secret, text)
        .map_err(|e| pest_error(text, e, "secret reference").help(help))?;
    for p in pairs.flatten() {
        match p.as_rule() {
            Rule::env_name => return Ok(SecretRef::Env(p.as_str().to_string())),
            Rule::file_path => return Ok(SecretRef::File(p.as_str().into())),
            Rule::secret_inline => {
                if let Some(rest) = text.strip_prefix("env:") {
                    return Err(ValueError::new(
                        4..text.len(),
                        format!("invalid environment variable name `{rest}`"),
                        "not a variable name",
                    )
                    .help("names start with a letter or `_`, then letters, digits and `_`"));
                }
                return Ok(SecretRef::Inline(text.to_string()));
            }
            _ => {}
        }
    }
    Ok(SecretRef::Inline(text.to_string()))
}

/// Parses a bind address.
pub fn parse_bind(text: &str) -> Result<Bind, ValueError> {
    let help = "write `host:port`, `[v6]:port` or `unix:/path/to.sock`, e.g. `127.0.0.1:8200`";
    let pairs = PolicyGrammar::parse(Rule::bind, text)
        .map_err(|e| pest_error(text, e, "bind address").help(help))?;
    let Some(pair) = pairs.flatten().find(|p| {
        matches!(
            p.as_rule(),
            Rule::bind_unix | Rule::bind_v6 | Rule::bind_host
        )
    }) else {
        return Err(
            ValueError::new(0..text.len(), "invalid bind address", "not an address").help(help),
        );
    };
    let rule = pair.as_rule();
    let mut host = None;
    let mut port = None;
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::file_path => return Ok(Bind::Unix(p.as_str().into())),
            Rule::ipv6_text | Rule::host_name => host = Some(p),
            Rule::port => port = Some(p),
            _ => {}
        }
    }
    let (Some(host), Some(port)) = (host, port) else {
        return Err(
            ValueError::new(0..text.len(), "invalid bind address", "not an address").help(help),
        );
    };
    let port_span = port.as_span().start()..port.as_span().end();
    let port: u16 = port.as_str().parse().map_err(|_| {
        ValueError::new(
            port_span.clone(),
            format!("invalid port `{}`", port.as_str()),
            "ports are 0-65535",
        )
    })?;
    let host_span = host.as_span().start()..host.as_span().end();
    if rule == Rule::bind_v6 {
        let ip: std::net::Ipv6Addr = host.as_str().parse().map_err(|_| {
            ValueError::new(
                host_span,
                format!("invalid IPv6 address `{}`", host.as_str()),
                "not an IPv6 address",
            )
        })?;
        return Ok(Bind::Ip(std::net::SocketAddr::new(ip.into(), port)));
    }
    match host.as_str().parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => Err(ValueError::new(
            host_span,
            "IPv6 addresses in a bind address go in brackets",
            "needs brackets",
        )
        .help(format!("write `[{}]:{}`", host.as_str(), port))),
        Ok(ip) => Ok(Bind::Ip(std::net::SocketAddr::new(ip, port))),
        Err(_)
            if host
                .as_str()
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.') =>
        {
            Err(ValueError::new(
                host_span,
                format!("invalid IPv4 address `{}`", host.as_str()),
                "not an IPv4 address",
            ))
        }
        Err(_) => Ok(Bind::Host(host.as_str().to_string(), port)),
    }
}

/// Expression syntax tree, before names are resolved. Spans are relative to the expression text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawExpr {
    /// `true` or `false`.
    Bool(bool),
    /// `not e`.
    Not(Box<RawExpr>),
    /// `a and b and ...`.
    And(Vec<RawExpr>),
    /// `a or b or ...`.
    Or(Vec<RawExpr>),
    /// `field op value`.
    Condition(RawCondition),
}

/// A condition as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCondition {
    /// Field name and span.
    pub field: (String, Range<usize>),
    /// Operator.
    pub op: RawOp,
    /// Span of the operator.
    pub op_span: Range<usize>,
    /// Operand(s) and their spans; one for `==`, `!=`, `matches` and `in NAME`.
    pub values: Vec<(String, Range<usize>)>,
    /// Whether the operand of `in` was a list (`in [a, b]`) rather than a name.
    pub list: bool,
    /// Span of the whole condition.
    pub span: Range<usize>,
}

/// Operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RawOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `in`
    In,
    /// `matches`
    Matches,
}

/// How deeply a rule expression may nest: parentheses, and `not`s in front of a term.
///
/// pest parses a parenthesis by recursion, and the lowering, the compiler and the evaluator
/// walk the tree recursively too: this bound keeps every one of them a few kilobytes of stack
/// away from the start, whatever the policy holds. Real rules nest two or three levels.
pub const MAX_RULE_NESTING: usize = 32;

/// Parses an access-rule expression.
pub fn parse_rule_expr(text: &str) -> Result<RawExpr, ValueError> {
    if let Some(at) = too_deep(text) {
        return Err(ValueError::new(
            at..at + 1,
            format!("rule expression nests more than {MAX_RULE_NESTING} levels deep"),
            "too deep",
        )
        .help("flatten the expression: `and` and `or` take any number of terms, `not not a` is `a`, and `not (a or b)` is `not a and not b`")
        .code(Code::ExpressionTooDeep));
    }
    let help = "conditions are `FIELD == VALUE`, `FIELD != VALUE`, `FIELD in NAME`, `FIELD in [A, B]` or \
                `FIELD matches \"GLOB\"`, joined with `and`, `or`, `not` and parentheses";
    let mut pairs = PolicyGrammar::parse(Rule::rule_expr, text)
        .map_err(|e| pest_error(text, e, "rule expression").help(help))?;
    let root = pairs.next().and_then(|p| p.into_inner().next());
    Ok(root.map_or(RawExpr::Bool(true), lower_expr))
}

/// The offset of the first `(` or `not` that nests deeper than [`MAX_RULE_NESTING`], outside
/// string literals.
///
/// A lexical pass, so that it runs before (and protects) the recursive parser. Depth grows by
/// one for each parenthesis and each `not` (`!`) of a run in front of a term, as the tree
/// does; parentheses occur nowhere else in the grammar but in string literals, which it skips
/// as the grammar reads them (`\` escapes the next character). A value spelled `not` counts
/// too: overcounting by one is harmless.
fn too_deep(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    // Depth where the current parenthesised level starts, for each open level.
    let mut levels: Vec<usize> = Vec::new();
    let mut base = 0usize;
    let mut run = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            run = 0;
        } else if b == b'(' {
            if base + run + 1 > MAX_RULE_NESTING {
                return Some(i);
            }
            levels.push(base);
            base += run + 1;
            run = 0;
        } else if b == b')' {
            base = levels.pop().unwrap_or(0);
            run = 0;
        } else if b == b'!' && bytes.get(i + 1) != Some(&b'=') {
            run += 1;
            if base + run > MAX_RULE_NESTING {
                return Some(i);
            }
        } else if ident(b) {
            let start = i;
            while i < bytes.len() && ident(bytes[i]) {
                i += 1;
            }
            let at_word_start =
                start == 0 || !(ident(bytes[start - 1]) || bytes[start - 1] == b'.');
            if at_word_start && text[start..i].eq_ignore_ascii_case("not") {
                run += 1;
                if base + run > MAX_RULE_NESTING {
                    return Some(start);
                }
            } else {
                run = 0;
            }
            continue;
        } else if !b.is_ascii_whitespace() {
            run = 0;
        }
        i += 1;
    }
    None
}

fn span_of(p: &Pair<Rule>) -> Range<usize> {
    p.as_span().start()..p.as_span().end()
}

fn lower_expr(pair: Pair<Rule>) -> RawExpr {
    match pair.as_rule() {
        Rule::or_expr | Rule::and_expr => {
            let is_or = pair.as_rule() == Rule::or_expr;
            let mut items: Vec<RawExpr> = pair
                .into_inner()
                .filter(|p| !matches!(p.as_rule(), Rule::or_op | Rule::and_op))
                .map(lower_expr)
                .collect();
            if items.len() == 1 {
                items.remove(0)
            } else if is_or {
                RawExpr::Or(items)
            } else {
                RawExpr::And(items)
            }
        }
        Rule::unary => {
            let mut nots = 0;
            let mut inner = None;
            for p in pair.into_inner() {
                match p.as_rule() {
                    Rule::not_op => nots += 1,
                    // The `)` of a parenthesised expression carries no meaning.
                    Rule::close_paren => {}
                    _ => inner = Some(lower_expr(p)),
                }
            }
            let mut e = inner.unwrap_or(RawExpr::Bool(true));
            for _ in 0..nots {
                e = RawExpr::Not(Box::new(e));
            }
            e
        }
        Rule::bool_lit => RawExpr::Bool(pair.as_str() == "true"),
        Rule::condition => {
            let span = span_of(&pair);
            let mut inner = pair.into_inner();
            let field = inner
                .next()
                .map(|f| (f.as_str().to_string(), span_of(&f)))
                .unwrap_or_default();
            let mut op = RawOp::Eq;
            let mut op_span = 0..0;
            let mut values = Vec::new();
            let mut list = false;
            if let Some(cond) = inner.next() {
                for p in cond.into_inner() {
                    match p.as_rule() {
                        Rule::cmp_op => {
                            op = if p.as_str() == "==" {
                                RawOp::Eq
                            } else {
                                RawOp::Ne
                            };
                            op_span = span_of(&p);
                        }
                        Rule::in_op => {
                            op = RawOp::In;
                            op_span = span_of(&p);
                        }
                        Rule::matches_op => {
                            op = RawOp::Matches;
                            op_span = span_of(&p);
                        }
                        Rule::list => {
                            list = true;
                            values.extend(p.into_inner().map(operand));
                        }
                        Rule::string_lit | Rule::word => values.push(operand(p)),
                        _ => {}
                    }
                }
            }
            RawExpr::Condition(RawCondition {
                field,
                op,
                op_span,
                values,
                list,
                span,
            })
        }
        _ => lower_expr_fallback(pair),
    }
}

fn lower_expr_fallback(pair: Pair<Rule>) -> RawExpr {
    pair.into_inner()
        .next()
        .map_or(RawExpr::Bool(true), lower_expr)
}

fn operand(p: Pair<Rule>) -> (String, Range<usize>) {
    let span = span_of(&p);
    if p.as_rule() == Rule::string_lit {
        let body = p.into_inner().next().map_or("", |b| b.as_str());
        let mut out = String::with_capacity(body.len());
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        (out, span)
    } else {
        (p.as_str().to_string(), span)
    }
}
