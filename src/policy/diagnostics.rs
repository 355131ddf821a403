//! Diagnostics: what the compiler says about a policy, with stable codes and exact spans.
//!
//! Every finding is a [`Diagnostic`] with a [`Code`] (documented in `docs/errors.md`), a
//! severity, a message, labelled spans and help. They are rendered three ways: miette's
//! graphical report for people, a JSON list for tools, and GitHub Actions annotations for CI.
//! Nothing here ever prints a secret: messages name the setting, never its value.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, SourceCode};
use serde::Serialize;

/// Where documentation of every code lives; a diagnostic's `url` points at its entry.
pub const DOCS_URL: &str = "docs/errors.md";

macro_rules! codes {
    ($($variant:ident = $code:literal, $sev:ident, $title:literal;)*) => {
        /// A stable diagnostic code. The string form (`E101`) never changes meaning.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Code { $(#[doc = $title] $variant,)* }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as written in reports and in `docs/errors.md`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// Short title.
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)* }
            }

            /// Severity this code is reported with.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev,)* }
            }
        }
    };
}

codes! {
    TomlSyntax = "E100", Error, "TOML syntax error";
    UnknownKey = "E101", Error, "unknown key";
    WrongType = "E102", Error, "value of the wrong type";
    MissingKey = "E103", Error, "required key missing";
    UnknownVariant = "E104", Error, "value not among the allowed ones";
    DuplicateName = "E105", Error, "duplicate name";
    NumberOutOfRange = "E106", Error, "number out of range";
    InvalidDuration = "E201", Error, "invalid duration";
    InvalidSize = "E202", Error, "invalid size";
    InvalidAddress = "E203", Error, "invalid IP address, CIDR or range";
    CidrHostBits = "E204", Error, "CIDR with host bits set";
    InvalidGlob = "E205", Error, "invalid glob pattern";
    InvalidPrivilege = "E206", Error, "unknown or malformed privilege";
    InvalidSecretRef = "E207", Error, "invalid secret reference";
    InvalidBind = "E208", Error, "invalid bind address";
    InvalidExpression = "E209", Error, "invalid rule expression";
    InvalidRegex = "E210", Error, "invalid regular expression";
    InvalidHash = "E211", Error, "invalid API key hash";
    ValueOutOfRange = "E212", Error, "value out of range";
    InvalidHeader = "E213", Error, "invalid HTTP header name or value";
    InvalidUrl = "E214", Error, "invalid Elasticsearch host URL";
    ExpressionTooDeep = "E215", Error, "rule expression nested too deeply";
    UndefinedReference = "E301", Error, "undefined reference";
    RoleCycle = "E302", Error, "roles include each other in a cycle";
    UnknownRuleField = "E303", Error, "unknown field in rule expression";
    OperatorMismatch = "E304", Error, "operator not valid for this field";
    InvalidRuleValue = "E305", Error, "value not valid for this field";
    ListenerConflict = "E401", Error, "listeners conflict";
    Http3WithoutTls = "E402", Error, "HTTP/3 needs TLS";
    Http3NativeTls = "E403", Error, "HTTP/3 needs the rustls backend";
    TlsVersion = "E404", Error, "TLS version out of range";
    UnknownCipherSuite = "E405", Error, "unknown cipher suite";
    UnknownCurve = "E406", Error, "unknown curve";
    ProtocolTlsMismatch = "E407", Error, "protocol does not fit the listener's TLS";
    NoListeners = "E408", Error, "no listener";
    ClientAuthWithoutCa = "E409", Error, "client authentication without CAs";
    EmptyList = "E410", Error, "list must not be empty";
    NativeTlsUnsupported = "E411", Error, "not supported by the native-tls backend";
    NativeTlsVersion = "E412", Error, "TLS 1.3 with the native-tls backend";
    IdentityWithoutPattern = "E501", Error, "client-certificate identity without a pattern";
    DuplicateApiKeyId = "E502", Error, "two API keys share an id";
    EsApiKeysWithoutOutput = "E503", Error, "Elasticsearch API keys need an Elasticsearch output";
    InvalidTestIdentity = "E505", Error, "invalid test identity";
    MultipleOutputs = "E601", Error, "more than one output";
    ConflictingCredentials = "E602", Error, "conflicting Elasticsearch credentials";
    SourceMappingNeedsElasticsearch = "E611", Error, "source mapping needs the Elasticsearch output";
    EnvVarMissing = "E701", Error, "environment variable not set";
    FileUnreadable = "E702", Error, "file cannot be read";
    CertificateInvalid = "E703", Error, "certificate cannot be parsed";
    KeyInvalid = "E704", Error, "private key cannot be parsed";
    KeyMismatch = "E705", Error, "key does not match certificate";
    CertificateExpired = "E706", Error, "certificate expired";
    KeyPassphrase = "E707", Error, "encrypted key cannot be decrypted";
    SpoolUnwritable = "E708", Error, "spool directory cannot be written";
    AggregationIntervals = "E801", Error, "aggregation intervals that do not nest";
    EsSourceWithoutOutput = "E802", Error, "data read from Elasticsearch needs an Elasticsearch output";
    ShadowedRule = "W101", Warning, "rule can never match";
    UnusedRole = "W102", Warning, "role never used";
    UnusedAllowlist = "W103", Warning, "allowlist never used";
    ShortSecretToken = "W104", Warning, "secret token is short";
    InlineSecret = "W105", Warning, "secret written inline";
    RumOpenOrigin = "W106", Warning, "RUM accepts any origin";
    ApiKeyExpired = "W107", Warning, "API key already expired";
    CertificateExpiring = "W108", Warning, "certificate expires within 30 days";
    TokenOverPlaintext = "W109", Warning, "credentials over plaintext on a non-loopback address";
    UnusedTlsProfile = "W110", Warning, "TLS profile never used";
    ProxyHeaderUnset = "W111", Warning, "trusted proxies without their forwarding header";
    IntervalUnread = "W112", Warning, "aggregation interval Kibana does not read";
    UnusedSetting = "W113", Warning, "setting has no effect";
    SourceMappingWithoutRum = "W121", Warning, "source mapping while RUM is off";
    ImportYamlSyntax = "I100", Error, "apm-server.yml cannot be read";
    ImportNotCarried = "I101", Error, "setting not carried";
    ImportUnknownSetting = "I102", Error, "unknown APM Server setting";
    ImportWrongType = "I103", Error, "APM Server setting of the wrong type";
    ImportMeaningDiffers = "I104", Warning, "carried with a different meaning";
    ImportSecretToEnv = "I105", Warning, "secret moved to the environment";
    ImportEnvDefault = "I106", Warning, "environment reference replaced by its default";
    ImportOutputUnsupported = "I107", Error, "output apmgate does not have";
    ImportAggregation = "I108", Error, "aggregation setting not carried";
    ImportInvalidPolicy = "I109", Error, "the imported policy does not validate";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Code {
    /// Link to this code's entry in the error index.
    pub fn url(self) -> String {
        format!("{DOCS_URL}#{}", self.as_str().to_ascii_lowercase())
    }
}

/// How many of `diagnostics` have `severity`.
pub fn count(diagnostics: &[Diagnostic], severity: Severity) -> usize {
    diagnostics
        .iter()
        .filter(|d| d.severity == severity)
        .count()
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The policy cannot be used.
    Error,
    /// The policy works but probably not as meant.
    Warning,
}

/// A labelled span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Byte range in the source.
    pub span: Range<usize>,
    /// What the label says.
    pub text: String,
}

/// One finding about a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable code.
    pub code: Code,
    /// Severity (from the code).
    pub severity: Severity,
    /// One-line message.
    pub message: String,
    /// Labelled spans; the first is the primary location.
    pub labels: Vec<Label>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with the code's severity and one primary label.
    pub fn new(
        code: Code,
        message: impl Into<String>,
        span: Range<usize>,
        label: impl Into<String>,
    ) -> Self {
        Self {
            code,
            severity: code.severity(),
            message: message.into(),
            labels: vec![Label {
                span,
                text: label.into(),
            }],
            help: None,
        }
    }

    /// Adds help.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a secondary label.
    pub fn with_label(mut self, span: Range<usize>, text: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            text: text.into(),
        });
        self
    }

    /// Start of the primary span.
    pub fn offset(&self) -> usize {
        self.labels.first().map_or(0, |l| l.span.start)
    }
}

/// `did you mean` help: the closest candidate by edit distance, if close enough.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The candidate closest to `word`, if close enough to be what was meant.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(word, candidate);
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// A policy file's text and name, shared by its diagnostics.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Name shown in reports (the path as given).
    pub name: String,
    /// The text.
    pub text: Arc<str>,
}

impl SourceFile {
    /// A named source.
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset. Reads the text from the
    /// start: to place many offsets, use a [`LineIndex`].
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        LineIndex::new(&self.text).line_col(&self.text, offset)
    }
}

/// Where the lines of a text start, found once so that placing each of many diagnostics costs
/// a binary search, not a read of the text up to it (6,000 diagnostics were quadratic).
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Lines end at `\n` (the JSON and GitHub formats count lines so).
    pub fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1))
            .collect();
        Self { starts }
    }

    /// Lines end at `\r\n`, `\r` or `\n`: where miette's snippets break lines.
    fn miette(text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        let mut i = 0;
        while let Some(at) = memchr::memchr2(b'\r', b'\n', &bytes[i..]) {
            let mut end = i + at;
            if bytes[end] == b'\r' && bytes.get(end + 1) == Some(&b'\n') {
                end += 1;
            }
            starts.push(end + 1);
            i = end + 1;
        }
        Self { starts }
    }

    /// 0-based line holding byte `offset`.
    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset) - 1
    }

    /// 1-based line and column (in characters) of a byte offset in `text` (the text indexed).
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let line = self.line(offset);
        let column = text[self.starts[line]..offset].chars().count() + 1;
        (line + 1, column)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A policy's text as miette reads it for snippets: miette's own reader scans the text from
/// its start for every snippet; this one starts one line before the snippet's context (the
/// lines found once) and hands that part to miette's reader. The line before is where miette
/// decides the end of an empty span, so the snippets are the same (a unit test compares them).
struct SnippetSource<'a> {
    name: &'a str,
    text: &'a str,
    lines: LineIndex,
}

impl SourceCode for SnippetSource<'_> {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let first = self
            .lines
            .line(span.offset().min(self.text.len()))
            .saturating_sub(context_lines_before + 1);
        let start = self.lines.starts[first];
        let window = &self.text.as_bytes()[start..];
        let inner = window.read_span(
            &(span.offset() - start, span.len()).into(),
            context_lines_before,
            context_lines_after,
        )?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.to_string(),
            inner.data(),
            (inner.span().offset() + start, inner.span().len()).into(),
            inner.line() + first,
            inner.column(),
            inner.line_count() + first,
        )))
    }
}

/// A diagnostic attached to its source, as miette wants it.
struct Report<'a> {
    diagnostic: &'a Diagnostic,
    source: &'a SnippetSource<'a>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diagnostic, f)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diagnostic.code))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn url<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diagnostic.code.url()))
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let len = self.source.text.len();
        Some(Box::new(self.diagnostic.labels.iter().enumerate().map(
            move |(i, l)| {
                let start = l.span.start.min(len);
                let end = l.span.end.clamp(start, len);
                let text = if l.text.is_empty() {
                    None
                } else {
                    Some(l.text.clone())
                };
                if i == 0 {
                    LabeledSpan::new_primary_with_span(text, start..end)
                } else {
                    LabeledSpan::new_with_span(text, start..end)
                }
            },
        )))
    }
}

/// How diagnostics are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// miette's graphical report.
    Human,
    /// A JSON list.
    Json,
    /// GitHub Actions workflow commands.
    Github,
}

/// Renders diagnostics for people. `color` false gives the plain report that `NO_COLOR` asks for.
pub fn render_human(source: &SourceFile, diagnostics: &[Diagnostic], color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_links(false)
        .with_width(100);
    let snippets = SnippetSource {
        name: &source.name,
        text: &source.text,
        lines: LineIndex::miette(&source.text),
    };
    let mut out = String::new();
    for diagnostic in diagnostics {
        let report = Report {
            diagnostic,
            source: &snippets,
        };
        // Rendering into a String cannot fail.
        let _ = handler.render_report(&mut out, &report);
        out.push('\n');
    }
    out
}

/// One diagnostic as the JSON format writes it.
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic<'a> {
    /// Stable code.
    pub code: &'static str,
    /// `error` or `warning`.
    pub severity: Severity,
    /// Message.
    pub message: &'a str,
    /// File name.
    pub file: &'a str,
    /// 1-based line of the primary span.
    pub line: usize,
    /// 1-based column (characters) of the primary span.
    pub column: usize,
    /// Byte span `[start, end)` of the primary label.
    pub span: [usize; 2],
    /// Primary label text.
    pub label: Option<&'a str>,
    /// Help.
    pub help: Option<&'a str>,
    /// Documentation link.
    pub url: String,
}

/// The JSON records of a file's diagnostics.
pub fn to_json<'a>(
    source: &'a SourceFile,
    diagnostics: &'a [Diagnostic],
) -> Vec<JsonDiagnostic<'a>> {
    let lines = LineIndex::new(&source.text);
    diagnostics
        .iter()
        .map(|d| {
            let span = d.labels.first().map_or(0..0, |l| l.span.clone());
            let (line, column) = lines.line_col(&source.text, span.start);
            JsonDiagnostic {
                code: d.code.as_str(),
                severity: d.severity,
                message: &d.message,
                file: &source.name,
                line,
                column,
                span: [span.start, span.end],
                label: d
                    .labels
                    .first()
                    .map(|l| l.text.as_str())
                    .filter(|t| !t.is_empty()),
                help: d.help.as_deref(),
                url: d.code.url(),
            }
        })
        .collect()
}

/// GitHub Actions annotations (`::error file=...,line=...::message`).
pub fn render_github(source: &SourceFile, diagnostics: &[Diagnostic]) -> String {
    let lines = LineIndex::new(&source.text);
    let mut out = String::new();
    for d in diagnostics {
        let span = d.labels.first().map_or(0..0, |l| l.span.clone());
        let (line, col) = lines.line_col(&source.text, span.start);
        let (end_line, end_col) = lines.line_col(&source.text, span.end);
        let kind = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut message = d.message.clone();
        if let Some(help) = &d.help {
            message.push('\n');
            message.push_str(help);
        }
        out.push_str(&format!(
            "::{kind} file={},line={line},col={col},endLine={end_line},endColumn={end_col},title={}::{}\n",
            escape_property(&source.name),
            escape_property(&format!("{} {}", d.code, d.code.title())),
            escape_data(&message),
        ));
    }
    out
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything miette reads from a snippet, to compare two readers'.
    fn describe(c: &dyn miette::SpanContents<'_>) -> String {
        format!(
            "{:?} {:?} {} {} {} {:?}",
            c.data(),
            c.span(),
            c.line(),
            c.column(),
            c.line_count(),
            c.name()
        )
    }

    /// miette's snippet of `span` read from the whole text by its own reader.
    fn miette_snippet(text: &str, span: Range<usize>, before: usize, after: usize) -> String {
        let source = miette::NamedSource::new("p.toml", text.to_string());
        let c = source.read_span(&span.into(), before, after).unwrap();
        describe(c.as_ref())
    }

    fn windowed_snippet(text: &str, span: Range<usize>, before: usize, after: usize) -> String {
        let source = SnippetSource {
            name: "p.toml",
            text,
            lines: LineIndex::miette(text),
        };
        let c = source.read_span(&span.into(), before, after).unwrap();
        describe(c.as_ref())
    }

    #[test]
    fn snippets_read_from_a_line_before_equal_miettes_own() {
        let texts = [
            "a = 1\nb = 2\nc = 3\nd = 4\ne = 5\n",
            "a = 1\r\nb = 2\r\nc = 3\r\n\r\nd = 4",
            "a = 1\rb = 2\rc = \"é\"\r\nd = 4\n\ne\n",
            "x",
            "\n\n\n",
        ];
        for text in texts {
            for start in 0..=text.len() {
                if !text.is_char_boundary(start) {
                    continue;
                }
                for len in [0, 1, 3] {
                    let end = (start + len).min(text.len());
                    for (before, after) in [(0, 0), (1, 1), (2, 3)] {
                        assert_eq!(
                            windowed_snippet(text, start..end, before, after),
                            miette_snippet(text, start..end, before, after),
                            "{text:?} {start}..{end} context {before}/{after}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_line_index_places_offsets_as_a_scan_from_the_start_would() {
        let text = "a\nbé\n\ncd\n";
        let lines = LineIndex::new(text);
        for offset in 0..=text.len() + 2 {
            let clamped = floor_char_boundary(text, offset.min(text.len()));
            let before = &text[..clamped];
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before[start..].chars().count() + 1;
            assert_eq!(
                lines.line_col(text, offset),
                (line, column),
                "offset {offset}"
            );
        }
    }
}
