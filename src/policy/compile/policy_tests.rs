//! Compiles `[[test]]`: the policy's own test cases, run by `apmgate test`.

use std::net::IpAddr;
use std::sync::Arc;

use super::Compiler;
use crate::policy::ast;
use crate::policy::compiled::*;
use crate::policy::diagnostics::{Code, Diagnostic};

impl Compiler<'_> {
    pub(super) fn tests(
        &mut self,
        tests: &[ast::PolicyTest],
        listeners: &[Arc<Listener>],
        auth: &AuthSettings,
        access: &AccessRules,
    ) -> Vec<PolicyTestCase> {
        self.check_duplicates("test", tests.iter().map(|t| &t.name));
        let mut out = Vec::new();
        for t in tests {
            let mut ok = true;
            if !listeners.iter().any(|l| l.name == t.listener.value) {
                self.undefined(
                    "listener",
                    &t.listener,
                    t.listener.span.clone(),
                    listeners.iter().map(|l| l.name.as_str()).collect(),
                );
                ok = false;
            }
            let from = match t.from.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    self.push(Diagnostic::new(
                        Code::InvalidAddress,
                        format!("`{}` is not an IP address", t.from.value),
                        t.from.span.clone(),
                        "not an address",
                    ));
                    None
                }
            };
            let identity = match &t.identity {
                None => TestIdentity::FromHeaders,
                Some(id) if id.as_str() == "anonymous" => TestIdentity::Anonymous,
                Some(id) => {
                    let parsed = id.split_once(':').and_then(|(kind, name)| {
                        let kind = match kind {
                            "secret_token" => IdentityKind::SecretToken,
                            "api_key" => IdentityKind::ApiKey,
                            "client_cert" => IdentityKind::ClientCert,
                            _ => return None,
                        };
                        let exists = match kind {
                            IdentityKind::SecretToken => {
                                auth.secret_tokens.iter().any(|s| s.name == name)
                            }
                            IdentityKind::ApiKey => auth.api_keys.iter().any(|s| s.name == name),
                            _ => auth.client_certs.iter().any(|s| s.name == name),
                        };
                        exists.then(|| TestIdentity::Named(kind, name.to_string()))
                    });
                    match parsed {
                        Some(p) => p,
                        None => {
                            self.report(Code::InvalidTestIdentity, format!("`{}` names no identity of this policy", id.value), id.span.clone(), "unknown identity", "write `anonymous`, or `secret_token:NAME`, `api_key:NAME` or `client_cert:NAME` with a NAME declared under `[auth]`");
                            ok = false;
                            TestIdentity::Anonymous
                        }
                    }
                }
            };
            if let Some(rule) = &t.rule {
                if !access.rules.iter().any(|r| *r.name == *rule.value) {
                    self.undefined(
                        "rule",
                        rule,
                        rule.span.clone(),
                        access.rules.iter().map(|r| &*r.name).collect(),
                    );
                    ok = false;
                }
            }
            let mut headers = Vec::new();
            for (k, v) in &t.headers {
                if k.eq_ignore_ascii_case("authorization") {
                    self.facts.redactions.push(self.text(v).span(0..v.len()));
                }
                if let Some(h) = self.header(k, v) {
                    headers.push(h);
                }
            }
            if let (true, Some(from)) = (ok, from) {
                out.push(PolicyTestCase {
                    name: t.name.value.clone(),
                    span: t.name.span.clone(),
                    listener: t.listener.value.clone(),
                    method: t
                        .method
                        .as_ref()
                        .map_or_else(|| "POST".to_string(), |m| m.to_ascii_uppercase()),
                    path: t.path.value.clone(),
                    from,
                    headers,
                    identity,
                    client_cert_subject: t.client_cert_subject.as_ref().map(|s| s.value.clone()),
                    expect: match t.expect.value {
                        ast::Expect::Allow => Effect::Allow,
                        ast::Expect::Deny => Effect::Deny,
                    },
                    status: t.status.as_ref().map(|s| s.value),
                    rule: t.rule.as_ref().map(|r| r.value.clone()),
                });
            }
        }
        out
    }
}
