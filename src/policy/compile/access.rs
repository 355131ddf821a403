//! Compiles `[access]` and `[[access.rule]]`: resolves rule expressions against the policy
//! (fields, operators, values, allowlists, roles, listeners) and warns about shadowed rules.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;

use super::shadow::ShadowIndex;
use super::{Compiler, RoleTable};
use crate::policy::ast;
use crate::policy::compiled::*;
use crate::policy::diagnostics::{Code, Diagnostic, closest, did_you_mean};
use crate::policy::expr::{Condition, Expr, Field, Test};
use crate::policy::grammar::{self, RawCondition, RawExpr, RawOp, ValueError, ValueText};
use crate::policy::spanned::Sp;
use crate::policy::types::{AddressRange, IpSet};

/// What the names in one rule's expression resolve against: the rule's text (for the spans of
/// findings), and the policy's allowlists, listeners and roles.
#[derive(Clone, Copy)]
pub(super) struct RuleScope<'s> {
    text: &'s ValueText,
    allowlists: &'s BTreeMap<String, Arc<Allowlist>>,
    listeners: &'s [Arc<Listener>],
    roles: &'s RoleTable<'s>,
}

impl Compiler<'_> {
    pub(super) fn find_header(&self, header: &str) -> Range<usize> {
        self.src.find(header).map_or(0..0, |i| i..i + header.len())
    }

    pub(super) fn access(
        &mut self,
        a: &ast::Access,
        allowlists: &BTreeMap<String, Arc<Allowlist>>,
        listeners: &[Arc<Listener>],
        roles: &RoleTable<'_>,
    ) -> AccessRules {
        self.check_duplicates("rule", a.rule.iter().map(|r| &r.name));
        let mut rules = Vec::new();
        let mut shadows = ShadowIndex::default();
        let mut names: Vec<(String, Range<usize>)> = Vec::new();
        for r in &a.rule {
            let raw = match grammar::parse_rule_expr(&r.when) {
                Ok(raw) => raw,
                Err(e) => {
                    self.value_error(&r.when, Code::InvalidExpression, e);
                    continue;
                }
            };
            let text = self.text(&r.when);
            let scope = RuleScope {
                text: &text,
                allowlists,
                listeners,
                roles,
            };
            let Some(expr) = self.resolve_expr(&raw, &scope) else {
                continue;
            };
            if let Some(dnf) = expr.dnf(64) {
                let dnf = shadows.intern(&dnf);
                if let Some(earlier) = shadows.shadowing(&dnf) {
                    let (name, span) = &names[earlier];
                    self.push(
                        Diagnostic::new(Code::ShadowedRule, format!("rule `{}` can never match", r.name.value), r.name.span.clone(), "shadowed")
                            .with_label(span.clone(), format!("rule `{name}` matches the requests this one would"))
                            .with_help("rules are tried in order and the first match decides: move this rule above the other, or narrow the earlier one"),
                    );
                }
                shadows.add(dnf, names.len());
            }
            names.push((r.name.value.clone(), r.name.span.clone()));
            rules.push(AccessRule {
                name: r.name.value.as_str().into(),
                when: expr,
                effect: r.effect.value,
            });
        }
        AccessRules {
            default: a.default.as_ref().map_or(Effect::Allow, |d| d.value),
            rules,
        }
    }

    pub(super) fn resolve_expr(&mut self, raw: &RawExpr, scope: &RuleScope<'_>) -> Option<Expr> {
        Some(match raw {
            RawExpr::Bool(b) => Expr::Const(*b),
            RawExpr::Not(e) => Expr::Not(Box::new(self.resolve_expr(e, scope)?)),
            RawExpr::And(es) | RawExpr::Or(es) => {
                let mut out = Vec::new();
                let mut ok = true;
                for e in es {
                    match self.resolve_expr(e, scope) {
                        Some(e) => out.push(e),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                if matches!(raw, RawExpr::And(_)) {
                    Expr::And(out)
                } else {
                    Expr::Or(out)
                }
            }
            RawExpr::Condition(c) => Expr::Cond(self.resolve_condition(c, scope)?),
        })
    }

    pub(super) fn resolve_condition(
        &mut self,
        c: &RawCondition,
        scope: &RuleScope<'_>,
    ) -> Option<Condition> {
        let RuleScope {
            text,
            allowlists,
            listeners,
            roles,
        } = *scope;
        let (fname, fspan) = &c.field;
        let Some(field) = Field::ALL.iter().find(|(n, _)| n == fname).map(|(_, f)| *f) else {
            let help =
                did_you_mean(fname, Field::ALL.iter().map(|(n, _)| *n)).unwrap_or_else(|| {
                    format!(
                        "fields: {}",
                        Field::ALL
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
            self.report(
                Code::UnknownRuleField,
                format!("unknown field `{fname}` in rule expression"),
                text.span(fspan.clone()),
                "unknown field",
                help,
            );
            return None;
        };
        let op_ok = match (field, c.op) {
            (_, RawOp::Eq | RawOp::Ne | RawOp::In) => true,
            (Field::Source | Field::Route | Field::Identity, RawOp::Matches) => false,
            (_, RawOp::Matches) => true,
        };
        if !op_ok || (c.op == RawOp::In && !c.list && field != Field::Source) {
            let help = match field {
                Field::Source => "test addresses with `source in ALLOWLIST`, `source in [\"10.0.0.0/8\"]` or `source == \"10.0.0.1\"`".to_string(),
                _ if c.op == RawOp::In => format!("`in` takes a list here: `{} in [a, b]`", field.name()),
                _ => format!("`{}` takes `==`, `!=` or `in [..]`", field.name()),
            };
            self.report(
                Code::OperatorMismatch,
                format!("this operator cannot be used with `{}`", field.name()),
                text.span(c.op_span.clone()),
                "not valid here",
                help,
            );
            return None;
        }
        let negate = c.op == RawOp::Ne;
        let values = &c.values;
        let bad_value =
            |this: &mut Self, v: &(String, Range<usize>), what: &str, known: Vec<&str>| {
                if let (Some(meant), "role") = (closest(&v.0, known.iter().copied()), what) {
                    this.used_roles.insert(meant.to_string());
                }
                let help = did_you_mean(&v.0, known.iter().copied())
                    .unwrap_or_else(|| format!("{what}s: {}", known.join(", ")));
                this.push(
                    Diagnostic::new(
                        Code::InvalidRuleValue,
                        format!("`{}` is not {} {what}", v.0, article(what)),
                        text.span(v.1.clone()),
                        format!("not {} {what}", article(what)),
                    )
                    .with_help(help),
                );
            };
        let test = match (field, c.op) {
            (_, RawOp::Matches) => {
                let v = values.first()?;
                match grammar::parse_glob(&v.0) {
                    Ok(g) => Test::Glob(g),
                    Err(e) => {
                        let shifted = ValueError {
                            span: operand_span(v, e.span.clone()),
                            ..e
                        };
                        self.push(text.diagnostic(Code::InvalidGlob, shifted));
                        return None;
                    }
                }
            }
            (Field::Source, RawOp::In) if !c.list => {
                let v = values.first()?;
                match allowlists.get(&v.0) {
                    Some(list) => {
                        self.used_allowlists.insert(v.0.clone());
                        Test::Allowlist(list.clone())
                    }
                    None => {
                        let name = Sp::new(v.0.clone(), 0..0);
                        let known: Vec<&str> = allowlists.keys().map(String::as_str).collect();
                        self.undefined("allowlist", &name, text.span(v.1.clone()), known);
                        return None;
                    }
                }
            }
            (Field::Source, RawOp::In) => {
                let mut ranges = Vec::new();
                for v in values {
                    match grammar::parse_address_range(&v.0) {
                        Ok(r) => ranges.push(r),
                        Err(e) => {
                            let shifted = ValueError {
                                span: operand_span(v, e.span.clone()),
                                ..e.clone()
                            };
                            let code = if e.message.contains("host bits") {
                                Code::CidrHostBits
                            } else {
                                Code::InvalidAddress
                            };
                            self.push(text.diagnostic(code, shifted));
                            return None;
                        }
                    }
                }
                Test::Addresses(IpSet::new(&ranges, &[]))
            }
            (Field::Source, _) => {
                let v = values.first()?;
                if v.0.parse::<IpAddr>().is_err() {
                    self.report(
                        Code::InvalidAddress,
                        format!("`{}` is not an IP address", v.0),
                        text.span(v.1.clone()),
                        "not an address",
                        "compare `source` with one address, or use `source in ALLOWLIST`",
                    );
                    return None;
                }
                match v.0.parse::<IpAddr>() {
                    Ok(ip) => Test::Addresses(IpSet::new(&[AddressRange::single(ip)], &[])),
                    Err(_) => return None,
                }
            }
            (Field::Route, _) => {
                let mut routes = Vec::new();
                for v in values {
                    match ROUTE_NAMES.iter().find(|(n, _)| *n == v.0) {
                        Some((_, r)) => routes.push(*r),
                        None => {
                            bad_value(
                                self,
                                v,
                                "route",
                                ROUTE_NAMES.iter().map(|(n, _)| *n).collect(),
                            );
                            return None;
                        }
                    }
                }
                Test::Routes(routes)
            }
            (Field::Identity, _) => {
                let mut kinds = Vec::new();
                for v in values {
                    match IdentityKind::ALL.iter().find(|(n, _)| *n == v.0) {
                        Some((_, k)) => kinds.push(*k),
                        None => {
                            bad_value(
                                self,
                                v,
                                "identity kind",
                                IdentityKind::ALL.iter().map(|(n, _)| *n).collect(),
                            );
                            return None;
                        }
                    }
                }
                Test::Identities(kinds)
            }
            (Field::Listener, _) => {
                for v in values {
                    if !listeners.iter().any(|l| l.name == v.0) {
                        bad_value(
                            self,
                            v,
                            "listener",
                            listeners.iter().map(|l| l.name.as_str()).collect(),
                        );
                        return None;
                    }
                }
                Test::OneOf(values.iter().map(|v| v.0.clone()).collect())
            }
            (Field::Role, _) => {
                for v in values {
                    if roles.resolved.contains_key(&v.0) {
                        self.used_roles.insert(v.0.clone());
                    } else {
                        bad_value(self, v, "role", roles.spans.keys().copied().collect());
                        return None;
                    }
                }
                Test::OneOf(values.iter().map(|v| v.0.clone()).collect())
            }
            (Field::Method, _) => {
                Test::OneOf(values.iter().map(|v| v.0.to_ascii_uppercase()).collect())
            }
            _ => Test::OneOf(values.iter().map(|v| v.0.clone()).collect()),
        };
        let mut sorted: Vec<&str> = values.iter().map(|v| v.0.as_str()).collect();
        sorted.sort_unstable();
        let canon = match c.op {
            RawOp::Eq => format!("{} == {}", field.name(), sorted.join("")),
            RawOp::Ne => format!("{} != {}", field.name(), sorted.join("")),
            RawOp::In if c.list => format!("{} in [{}]", field.name(), sorted.join(", ")),
            RawOp::In => format!("{} in {}", field.name(), sorted.join("")),
            RawOp::Matches => format!("{} matches \"{}\"", field.name(), sorted.join("")),
        };
        // `x == a` is the same test as `x in [a]`.
        let canon = match (c.op, values.len()) {
            (RawOp::In, 1) if c.list => format!("{} == {}", field.name(), sorted[0]),
            _ => canon,
        };
        Some(Condition {
            field,
            test,
            negate,
            text: canon,
        })
    }
}

pub(super) fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// The span (in the expression) of a range inside an operand's value. Offsets map exactly when
/// the operand is written verbatim (a bare word, or a quoted string without escapes); after an
/// escape they no longer do, and the whole operand is the honest answer.
pub(super) fn operand_span(operand: &(String, Range<usize>), inner: Range<usize>) -> Range<usize> {
    let (value, span) = operand;
    if span.len() == value.len() {
        span.start + inner.start..span.start + inner.end
    } else if span.len() == value.len() + 2 {
        span.start + 1 + inner.start..span.start + 1 + inner.end
    } else {
        span.clone()
    }
}
