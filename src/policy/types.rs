//! Typed values the compiler produces from policy strings: address ranges and sets, globs,
//! privileges, secret references, bind addresses. Downstream code uses these and never
//! re-parses a string.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressRange {
    /// IPv4 `[start, end]`.
    V4(u32, u32),
    /// IPv6 `[start, end]`.
    V6(u128, u128),
}

impl AddressRange {
    /// One address.
    pub fn single(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Self::V4(a.into(), a.into()),
            IpAddr::V6(a) => Self::V6(a.into(), a.into()),
        }
    }

    /// A CIDR block; host bits of `ip` are cleared.
    pub fn cidr(ip: IpAddr, prefix: u8) -> Self {
        match ip {
            IpAddr::V4(a) => {
                let host = if prefix >= 32 { 0 } else { u32::MAX >> prefix };
                let a = u32::from(a) & !host;
                Self::V4(a, a | host)
            }
            IpAddr::V6(a) => {
                let host = if prefix >= 128 {
                    0
                } else {
                    u128::MAX >> prefix
                };
                let a = u128::from(a) & !host;
                Self::V6(a, a | host)
            }
        }
    }

    /// `[a, b]` if both are of one family and `a <= b`.
    pub fn from_bounds(a: IpAddr, b: IpAddr) -> Option<Self> {
        match (a, b) {
            (IpAddr::V4(a), IpAddr::V4(b)) if a <= b => Some(Self::V4(a.into(), b.into())),
            (IpAddr::V6(a), IpAddr::V6(b)) if a <= b => Some(Self::V6(a.into(), b.into())),
            _ => None,
        }
    }

    /// First address.
    pub fn start(&self) -> IpAddr {
        match *self {
            Self::V4(s, _) => IpAddr::V4(Ipv4Addr::from(s)),
            Self::V6(s, _) => IpAddr::V6(Ipv6Addr::from(s)),
        }
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (*self, ip.to_canonical()) {
            (Self::V4(s, e), IpAddr::V4(a)) => (s..=e).contains(&u32::from(a)),
            (Self::V6(s, e), IpAddr::V6(a)) => (s..=e).contains(&u128::from(a)),
            _ => false,
        }
    }
}

/// A set of addresses compiled for lookup in O(log n): sorted, merged, disjoint intervals per
/// family, exceptions already subtracted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

fn normalize<T: Copy + Ord + num_step::Step>(mut v: Vec<(T, T)>) -> Vec<(T, T)> {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 || T::next(last.1) == Some(s) => {
                if e > last.1 {
                    last.1 = e;
                }
            }
            _ => out.push((s, e)),
        }
    }
    out
}

fn subtract<T: Copy + Ord + num_step::Step>(set: Vec<(T, T)>, minus: &[(T, T)]) -> Vec<(T, T)> {
    let mut out = Vec::with_capacity(set.len());
    for (mut s, e) in set {
        let mut alive = true;
        // `minus` is sorted and disjoint: walk the exceptions that overlap [s, e].
        let first = minus.partition_point(|m| m.1 < s);
        for &(ms, me) in &minus[first..] {
            if ms > e {
                break;
            }
            if ms > s {
                out.push((s, T::prev(ms).unwrap_or(s)));
            }
            match T::next(me) {
                Some(n) if me < e => s = n,
                _ => {
                    alive = false;
                    break;
                }
            }
        }
        if alive {
            out.push((s, e));
        }
    }
    out
}

mod num_step {
    pub(super) trait Step: Sized {
        fn next(self) -> Option<Self>;
        fn prev(self) -> Option<Self>;
    }
    impl Step for u32 {
        fn next(self) -> Option<Self> {
            self.checked_add(1)
        }
        fn prev(self) -> Option<Self> {
            self.checked_sub(1)
        }
    }
    impl Step for u128 {
        fn next(self) -> Option<Self> {
            self.checked_add(1)
        }
        fn prev(self) -> Option<Self> {
            self.checked_sub(1)
        }
    }
}

impl IpSet {
    /// Compiles ranges minus exceptions.
    pub fn new(include: &[AddressRange], except: &[AddressRange]) -> Self {
        let split = |ranges: &[AddressRange]| {
            let mut v4 = Vec::new();
            let mut v6 = Vec::new();
            for r in ranges {
                match *r {
                    AddressRange::V4(s, e) => v4.push((s, e)),
                    AddressRange::V6(s, e) => v6.push((s, e)),
                }
            }
            (normalize(v4), normalize(v6))
        };
        let (v4, v6) = split(include);
        let (x4, x6) = split(except);
        Self {
            v4: subtract(v4, &x4),
            v6: subtract(v6, &x6),
        }
    }

    /// Whether `ip` is in the set. IPv4-mapped IPv6 addresses are looked up as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn find<T: Ord + Copy>(v: &[(T, T)], x: T) -> bool {
            let i = v.partition_point(|r| r.1 < x);
            v.get(i).is_some_and(|r| r.0 <= x)
        }
        match ip.to_canonical() {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => find(&self.v6, u128::from(a)),
        }
    }

    /// Whether nothing is in the set.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Number of disjoint intervals (for diagnostics and benchmarks).
    pub fn intervals(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

/// A compiled glob pattern: `*` any run, `?` one character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    pieces: Vec<GlobPiece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GlobPiece {
    Literal(String),
    Star,
    Any,
}

/// Builds a [`Glob`] piece by piece (used by the grammar).
#[derive(Debug, Default)]
pub struct GlobBuilder {
    pieces: Vec<GlobPiece>,
}

impl GlobBuilder {
    /// `*`
    pub fn star(&mut self) {
        if self.pieces.last() != Some(&GlobPiece::Star) {
            self.pieces.push(GlobPiece::Star);
        }
    }
    /// `?`
    pub fn any(&mut self) {
        self.pieces.push(GlobPiece::Any);
    }
    /// Literal text.
    pub fn literal(&mut self, s: &str) {
        if let Some(GlobPiece::Literal(last)) = self.pieces.last_mut() {
            last.push_str(s);
        } else {
            self.pieces.push(GlobPiece::Literal(s.to_string()));
        }
    }
    /// The glob.
    pub fn build(self, source: &str) -> Glob {
        Glob {
            source: source.to_string(),
            pieces: self.pieces,
        }
    }
}

impl Glob {
    /// A builder.
    pub fn builder() -> GlobBuilder {
        GlobBuilder::default()
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern is `*` alone.
    pub fn is_match_all(&self) -> bool {
        self.pieces == [GlobPiece::Star]
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        // Backtracking over the last star only: linear for patterns without nested ambiguity,
        // O(n*m) at worst, never exponential.
        let mut pi = 0;
        let mut ti = 0;
        let mut star: Option<(usize, usize)> = None;
        let t = text;
        loop {
            if pi < self.pieces.len() {
                match &self.pieces[pi] {
                    GlobPiece::Star => {
                        star = Some((pi, ti));
                        pi += 1;
                        continue;
                    }
                    GlobPiece::Any => {
                        if let Some(c) = t[ti..].chars().next() {
                            ti += c.len_utf8();
                            pi += 1;
                            continue;
                        }
                    }
                    GlobPiece::Literal(l) => {
                        if t[ti..].starts_with(l.as_str()) {
                            ti += l.len();
                            pi += 1;
                            continue;
                        }
                    }
                }
            } else if ti == t.len() {
                return true;
            }
            // Mismatch: let the last star swallow one more character.
            match star {
                Some((spi, sti)) => match t[sti..].chars().next() {
                    Some(c) => {
                        let next = sti + c.len_utf8();
                        star = Some((spi, next));
                        pi = spi + 1;
                        ti = next;
                    }
                    None => return false,
                },
                None => return false,
            }
        }
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// A feature privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Privilege {
    /// Send events (intake routes).
    EventWrite,
    /// Read central agent configuration.
    ConfigAgentRead,
    /// Upload source maps (legacy; kept for API-key compatibility).
    SourcemapWrite,
    /// Read the gateway's metrics.
    MonitoringRead,
}

impl Privilege {
    /// Every privilege.
    pub const ALL: [Privilege; 4] = [
        Privilege::EventWrite,
        Privilege::ConfigAgentRead,
        Privilege::SourcemapWrite,
        Privilege::MonitoringRead,
    ];

    /// The name as written in policies and in Elasticsearch's `apm` application.
    pub fn as_str(self) -> &'static str {
        match self {
            Privilege::EventWrite => "event:write",
            Privilege::ConfigAgentRead => "config_agent:read",
            Privilege::SourcemapWrite => "sourcemap:write",
            Privilege::MonitoringRead => "monitoring:read",
        }
    }

    /// Looks a name up.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of privileges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PrivilegeSet(u8);

impl PrivilegeSet {
    /// No privilege.
    pub const NONE: PrivilegeSet = PrivilegeSet(0);
    /// Every privilege.
    pub const ALL: PrivilegeSet = PrivilegeSet(0b1111);

    /// Adds one.
    pub fn insert(&mut self, p: Privilege) {
        self.0 |= p.bit();
    }
    /// Adds all of another set.
    pub fn extend(&mut self, other: PrivilegeSet) {
        self.0 |= other.0;
    }
    /// Whether `p` is held.
    pub fn contains(self, p: Privilege) -> bool {
        self.0 & p.bit() != 0
    }
    /// The privileges held.
    pub fn iter(self) -> impl Iterator<Item = Privilege> {
        Privilege::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }
}

impl FromIterator<Privilege> for PrivilegeSet {
    fn from_iter<I: IntoIterator<Item = Privilege>>(iter: I) -> Self {
        let mut s = PrivilegeSet::NONE;
        for p in iter {
            s.insert(p);
        }
        s
    }
}

/// Where a secret comes from.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    /// An environment variable.
    Env(String),
    /// A file; its content, trailing newline removed.
    File(PathBuf),
    /// Written in the policy.
    Inline(String),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
            SecretRef::Inline(_) => f.write_str("<inline secret>"),
        }
    }
}

/// A resolved secret. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value; callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// The error of resolving a secret reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The variable is not set.
    #[error("environment variable `{0}` is not set")]
    EnvMissing(String),
    /// The file cannot be read.
    #[error("cannot read `{path}`: {reason}")]
    File {
        /// Path.
        path: String,
        /// Why.
        reason: String,
    },
}

impl SecretRef {
    /// Reads the secret from the environment or a file.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(name) => std::env::var(name)
                .map(Secret::new)
                .map_err(|_| SecretError::EnvMissing(name.clone())),
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|s| Secret::new(s.trim_end_matches(['\n', '\r'])))
                .map_err(|e| SecretError::File {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }),
            SecretRef::Inline(s) => Ok(Secret::new(s.clone())),
        }
    }
}

/// Where a listener binds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bind {
    /// An IP socket address.
    Ip(SocketAddr),
    /// A host name and port, resolved when the listener starts.
    Host(String, u16),
    /// A Unix domain socket.
    Unix(PathBuf),
}

impl Bind {
    /// Port, for TCP binds.
    pub fn port(&self) -> Option<u16> {
        match self {
            Bind::Ip(a) => Some(a.port()),
            Bind::Host(_, p) => Some(*p),
            Bind::Unix(_) => None,
        }
    }

    /// Whether the address only accepts local connections.
    pub fn is_loopback(&self) -> bool {
        match self {
            Bind::Ip(a) => a.ip().is_loopback(),
            Bind::Host(h, _) => h == "localhost",
            Bind::Unix(_) => true,
        }
    }
}

impl fmt::Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bind::Ip(a) => write!(f, "{a}"),
            Bind::Host(h, p) => write!(f, "{h}:{p}"),
            Bind::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The instant a TOML date-time names: `None` for a local date-time (no offset) or a date out
/// of range. A date alone is midnight UTC.
pub fn datetime_to_system_time(dt: &toml::value::Datetime) -> Option<SystemTime> {
    let date = dt.date?;
    let clock = dt.time.unwrap_or(toml::value::Time {
        hour: 0,
        minute: 0,
        second: None,
        nanosecond: None,
    });
    let offset_minutes: i64 = match dt.offset {
        Some(toml::value::Offset::Z) => 0,
        Some(toml::value::Offset::Custom { minutes }) => i64::from(minutes),
        None if dt.time.is_none() => 0,
        None => return None,
    };
    let month = time::Month::try_from(date.month).ok()?;
    let day = time::Date::from_calendar_date(i32::from(date.year), month, date.day).ok()?;
    let secs = day.midnight().assume_utc().unix_timestamp()
        + i64::from(clock.hour) * 3600
        + i64::from(clock.minute) * 60
        + i64::from(clock.second.unwrap_or(0))
        - offset_minutes * 60;
    let secs = u64::try_from(secs).ok()?;
    Some(
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(secs)
            + Duration::from_nanos(u64::from(clock.nanosecond.unwrap_or(0))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> AddressRange {
        crate::policy::grammar::parse_address_range(s).unwrap()
    }

    #[test]
    fn ip_set_subtracts_exceptions() {
        let set = IpSet::new(
            &[r("10.0.0.0/8"), r("2001:db8::/32")],
            &[r("10.1.0.0/16"), r("10.255.255.255")],
        );
        assert!(set.contains("10.0.0.1".parse().unwrap()));
        assert!(!set.contains("10.1.2.3".parse().unwrap()));
        assert!(set.contains("10.2.0.0".parse().unwrap()));
        assert!(set.contains("10.0.255.255".parse().unwrap()));
        assert!(!set.contains("10.255.255.255".parse().unwrap()));
        assert!(set.contains("10.255.255.254".parse().unwrap()));
        assert!(!set.contains("11.0.0.0".parse().unwrap()));
        assert!(set.contains("2001:db8::1".parse().unwrap()));
        assert!(set.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!set.contains("2001:db9::1".parse().unwrap()));
    }

    #[test]
    fn ip_set_merges_adjacent_ranges() {
        let set = IpSet::new(&[r("10.0.0.0/25"), r("10.0.0.128/25"), r("10.0.0.5")], &[]);
        assert_eq!(set.intervals(), 1);
        let all = IpSet::new(&[r("0.0.0.0/0")], &[r("0.0.0.0"), r("255.255.255.255")]);
        assert!(!all.contains("0.0.0.0".parse().unwrap()));
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        assert!(!all.contains("255.255.255.255".parse().unwrap()));
    }

    #[test]
    fn glob_matches() {
        let g = |s: &str| crate::policy::grammar::parse_glob(s).unwrap();
        assert!(g("https://*.example.com").matches("https://app.example.com"));
        assert!(!g("https://*.example.com").matches("https://example.com"));
        assert!(g("*").matches(""));
        assert!(g("a?c").matches("abc"));
        assert!(!g("a?c").matches("ac"));
        assert!(g("*a*b*").matches("xxaxxbxx"));
        assert!(g("CN=\\*").matches("CN=*"));
        assert!(!g("CN=\\*").matches("CN=x"));
        assert!(g("é*").matches("éa"));
    }
}
