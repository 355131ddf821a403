//! Compiled access-rule expressions and their evaluation over a request.
//!
//! Expressions are parsed by the grammar into [`super::grammar::RawExpr`], resolved by the
//! compiler (fields known, allowlists bound, values checked) into [`Expr`], and evaluated here
//! against a [`RequestView`]: plain data about a request, with no HTTP types.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use super::types::{Glob, IpSet};
use super::vocab::{Allowlist, IdentityKind, RouteName};

/// What an expression can see of a request.
#[derive(Debug, Clone)]
pub struct RequestView<'a> {
    /// Listener name.
    pub listener: &'a str,
    /// Route group, if the path is a known route.
    pub route: Option<RouteName>,
    /// HTTP method.
    pub method: &'a str,
    /// Client IP (after trusted-proxy handling).
    pub source: IpAddr,
    /// Kind of identity.
    pub identity: IdentityKind,
    /// Name of the identity's policy entry.
    pub identity_name: Option<&'a str>,
    /// Role names the identity holds.
    pub roles: &'a [String],
    /// Agent name from the `User-Agent` product token.
    pub agent: Option<&'a str>,
    /// Client certificate subject (RFC 4514).
    pub client_cert_subject: Option<&'a str>,
}

/// A request attribute a condition tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `listener`
    Listener,
    /// `route`
    Route,
    /// `method`
    Method,
    /// `source`
    Source,
    /// `identity`
    Identity,
    /// `identity.name`
    IdentityName,
    /// `role`
    Role,
    /// `agent`
    Agent,
    /// `client_cert.subject`
    ClientCertSubject,
}

impl Field {
    /// Every field with its name in expressions.
    pub const ALL: [(&'static str, Field); 9] = [
        ("listener", Field::Listener),
        ("route", Field::Route),
        ("method", Field::Method),
        ("source", Field::Source),
        ("identity", Field::Identity),
        ("identity.name", Field::IdentityName),
        ("role", Field::Role),
        ("agent", Field::Agent),
        ("client_cert.subject", Field::ClientCertSubject),
    ];

    /// Name in expressions.
    pub fn name(self) -> &'static str {
        Field::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("?", |(n, _)| n)
    }
}

/// How a condition tests its field.
#[derive(Debug, Clone)]
pub enum Test {
    /// Equal to one of these (for `role`: holds one of these).
    OneOf(Vec<String>),
    /// One of these routes.
    Routes(Vec<RouteName>),
    /// One of these identity kinds.
    Identities(Vec<IdentityKind>),
    /// Matches the glob.
    Glob(Glob),
    /// Address in a named allowlist.
    Allowlist(Arc<Allowlist>),
    /// Address in an inline set.
    Addresses(IpSet),
}

/// One condition.
#[derive(Debug, Clone)]
pub struct Condition {
    /// Field.
    pub field: Field,
    /// Test.
    pub test: Test,
    /// `!=`: the test is negated.
    pub negate: bool,
    /// Canonical text, used to compare conditions (shadowing) and in explanations.
    pub text: String,
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// Constant.
    Const(bool),
    /// Negation.
    Not(Box<Expr>),
    /// Conjunction.
    And(Vec<Expr>),
    /// Disjunction.
    Or(Vec<Expr>),
    /// A condition.
    Cond(Condition),
}

impl Condition {
    fn eval(&self, r: &RequestView<'_>) -> bool {
        let eq_any = |v: Option<&str>, list: &[String], ci: bool| {
            v.is_some_and(|v| {
                list.iter().any(|x| {
                    if ci {
                        x.eq_ignore_ascii_case(v)
                    } else {
                        x == v
                    }
                })
            })
        };
        let hit = match (&self.test, self.field) {
            (Test::Routes(routes), _) => r.route.is_some_and(|x| routes.contains(&x)),
            (Test::Identities(kinds), _) => kinds.contains(&r.identity),
            (Test::Allowlist(list), _) => list.set.contains(r.source),
            (Test::Addresses(set), _) => set.contains(r.source),
            (Test::OneOf(list), Field::Role) => r.roles.iter().any(|held| list.contains(held)),
            (Test::OneOf(list), Field::Method) => eq_any(Some(r.method), list, true),
            (Test::OneOf(list), Field::Source) => list.iter().any(|x| {
                x.parse::<IpAddr>()
                    .is_ok_and(|ip| ip.to_canonical() == r.source.to_canonical())
            }),
            (Test::OneOf(list), f) => eq_any(self.text_of(f, r), list, false),
            (Test::Glob(g), Field::Role) => r.roles.iter().any(|held| g.matches(held)),
            (Test::Glob(g), f) => self.text_of(f, r).is_some_and(|v| g.matches(v)),
        };
        hit != self.negate
    }

    fn text_of<'a>(&self, f: Field, r: &RequestView<'a>) -> Option<&'a str> {
        match f {
            Field::Listener => Some(r.listener),
            Field::Method => Some(r.method),
            Field::IdentityName => r.identity_name,
            Field::Agent => r.agent,
            Field::ClientCertSubject => r.client_cert_subject,
            Field::Route | Field::Source | Field::Identity | Field::Role => None,
        }
    }
}

impl Expr {
    /// Evaluates the expression.
    pub fn eval(&self, r: &RequestView<'_>) -> bool {
        match self {
            Expr::Const(b) => *b,
            Expr::Not(e) => !e.eval(r),
            Expr::And(es) => es.iter().all(|e| e.eval(r)),
            Expr::Or(es) => es.iter().any(|e| e.eval(r)),
            Expr::Cond(c) => c.eval(r),
        }
    }

    /// The expression as a disjunction of conjunctions of condition texts (negated ones prefixed
    /// with `not `), or `None` when that form would be too large to be worth comparing.
    pub fn dnf(&self, limit: usize) -> Option<Vec<Vec<String>>> {
        fn go(e: &Expr, neg: bool, limit: usize) -> Option<Vec<Vec<String>>> {
            match (e, neg) {
                (Expr::Const(b), n) => Some(if *b != n { vec![vec![]] } else { vec![] }),
                (Expr::Not(inner), n) => go(inner, !n, limit),
                (Expr::Cond(c), n) => Some(vec![vec![if n {
                    format!("not {}", c.text)
                } else {
                    c.text.clone()
                }]]),
                (Expr::Or(es), false) | (Expr::And(es), true) => {
                    let mut out = Vec::new();
                    for e in es {
                        out.extend(go(e, neg, limit)?);
                        if out.len() > limit {
                            return None;
                        }
                    }
                    Some(out)
                }
                (Expr::And(es), false) | (Expr::Or(es), true) => {
                    let mut acc: Vec<Vec<String>> = vec![vec![]];
                    for e in es {
                        let d = go(e, neg, limit)?;
                        let mut next = Vec::new();
                        for a in &acc {
                            for b in &d {
                                let mut c = a.clone();
                                c.extend(b.iter().cloned());
                                next.push(c);
                            }
                        }
                        if next.len() > limit {
                            return None;
                        }
                        acc = next;
                    }
                    Some(acc)
                }
            }
        }
        go(self, false, limit)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, es: &[Expr], op: &str| -> fmt::Result {
            for (i, e) in es.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                match e {
                    Expr::And(_) | Expr::Or(_) => write!(f, "({e})")?,
                    _ => write!(f, "{e}")?,
                }
            }
            Ok(())
        };
        match self {
            Expr::Const(b) => write!(f, "{b}"),
            Expr::Not(e) => match **e {
                Expr::Cond(_) | Expr::Const(_) => write!(f, "not {e}"),
                _ => write!(f, "not ({e})"),
            },
            Expr::And(es) => join(f, es, "and"),
            Expr::Or(es) => join(f, es, "or"),
            Expr::Cond(c) => f.write_str(&c.text),
        }
    }
}
