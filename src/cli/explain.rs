//! `apmgate explain`: the decision for one request, and why.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use apmgate::access::identity::{PeerCertificate, verify_api_key};
use apmgate::access::{
    AccessRequest, BatchRefusal, Decision, Outcome, Refusal, decide, required_privilege,
};
use apmgate::intake::IntakeResult;
use apmgate::policy::Policy;
use apmgate::policy::compiled::Effect;
use apmgate::policy::diagnostics::render_human;
use apmgate::server::respond;
use serde_json::json;

use super::{Outcome as CliOutcome, ReportFormat, UsageError, compile, use_color};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Policy file.
    file: PathBuf,
    /// Listener the request arrives on.
    #[arg(long)]
    listener: String,
    /// HTTP method.
    #[arg(long, default_value = "POST")]
    method: String,
    /// Request path.
    #[arg(long)]
    path: String,
    /// Socket peer address of the caller.
    #[arg(long)]
    from: IpAddr,
    /// A request header, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Subject of the client certificate presented.
    #[arg(long)]
    client_cert_subject: Option<String>,
    /// Output format (`human` or `json`).
    #[arg(long, value_enum, default_value = "human")]
    format: ReportFormat,
    /// Skip reading environment variables and files (secret tokens then match nothing).
    #[arg(long)]
    no_environment: bool,
}

pub(super) fn run(args: &Args) -> Result<CliOutcome, UsageError> {
    let compilation = compile(&args.file, !args.no_environment)?;
    let Some(policy) = &compilation.policy else {
        print!(
            "{}",
            render_human(
                &compilation.display_source,
                &compilation.diagnostics,
                use_color()
            )
        );
        println!(
            "{}: invalid policy, nothing to explain",
            compilation.source.name
        );
        return Ok(CliOutcome::Failed);
    };
    let listener = policy
        .listeners
        .iter()
        .find(|l| l.name == args.listener)
        .ok_or_else(|| {
            UsageError(format!(
                "no listener `{}` in {}",
                args.listener,
                args.file.display()
            ))
        })?;
    let mut headers = Vec::new();
    for h in &args.headers {
        let (k, v) = h.split_once(':').ok_or_else(|| {
            UsageError(format!(
                "header `{}` is not `Name: value`",
                redact_header(h)
            ))
        })?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let header_map = apmgate::access::header_map(&headers).map_err(UsageError)?;
    let cert = args.client_cert_subject.as_ref().map(|s| PeerCertificate {
        subject: s.clone(),
        dns_sans: Vec::new(),
    });
    let path = args.path.split('?').next().unwrap_or("");
    let request = AccessRequest {
        listener,
        method: &args.method.to_ascii_uppercase(),
        path,
        peer: SocketAddr::new(args.from, 0),
        headers: &header_map,
        client_cert: cert.as_ref(),
    };
    let decision = decide(policy, &request, None, &|hash, key| {
        Some(verify_api_key(hash, key))
    });
    match args.format {
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&to_json(policy, &request, &decision))?
        ),
        _ => print!("{}", human(policy, &request, &decision)),
    }
    Ok(CliOutcome::Ok)
}

/// The answer to a stream of events from a caller without `event:write`.
fn refused_batches(refusal: &BatchRefusal) -> (u16, serde_json::Value) {
    respond::refusal_answer(&Refusal::Intake(IntakeResult::not_permitted(
        &refusal.reason(),
    )))
}

fn redact_header(h: &str) -> String {
    match h.split_once(':') {
        Some((k, _)) => format!("{k}: <hidden>"),
        None => "<hidden>".to_string(),
    }
}

fn effect_name(e: Effect) -> &'static str {
    match e {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    }
}

fn route_name(r: apmgate::policy::compiled::RouteName) -> &'static str {
    apmgate::policy::compiled::ROUTE_NAMES
        .iter()
        .find(|(_, x)| *x == r)
        .map_or("?", |(n, _)| n)
}

fn human(policy: &Policy, request: &AccessRequest<'_>, d: &Decision) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "request:   {} {} on listener `{}` from {}\n",
        request.method,
        request.path,
        request.listener.name,
        request.peer.ip()
    ));
    out.push_str(&format!(
        "client ip: {} (from the {})\n",
        d.client_ip.ip,
        d.client_ip.source.as_str()
    ));
    match d.route {
        Some(r) => out.push_str(&format!(
            "route:     {}{}\n",
            route_name(r),
            required_privilege(r)
                .map(|p| format!(" (needs {p})"))
                .unwrap_or_default()
        )),
        None => {
            out.push_str("route:     none (not an APM route, or not served on this listener)\n")
        }
    }
    if let Some(id) = &d.identity {
        let name = id
            .name
            .as_ref()
            .map(|n| format!(" `{n}`"))
            .unwrap_or_default();
        let roles = if id.roles.is_empty() {
            "-".to_string()
        } else {
            id.roles.join(", ")
        };
        let privs: Vec<String> = id.privileges.iter().map(|p| p.to_string()).collect();
        out.push_str(&format!(
            "identity:  {}{} (roles: {roles}; privileges: {})\n",
            id.kind.name(),
            name,
            if privs.is_empty() {
                "none".to_string()
            } else {
                privs.join(", ")
            }
        ));
    }
    if d.rules_tried > 0 || d.effect.is_some() {
        out.push_str("rules:\n");
        for (i, (rule, matched)) in d.trace(policy).enumerate() {
            out.push_str(&format!(
                "  {}. {} [{}] when {} -> {}\n",
                i + 1,
                rule.name,
                effect_name(rule.effect),
                rule.when,
                if matched { "matched" } else { "no match" }
            ));
        }
        let skipped = policy.access.rules.len() - d.rules_tried;
        if skipped > 0 {
            out.push_str(&format!(
                "  ({skipped} later rule{} not tried: first match decides)\n",
                if skipped == 1 { "" } else { "s" }
            ));
        }
        if let Some(effect) = d.effect {
            match &d.deciding_rule {
                Some(r) => out.push_str(&format!(
                    "effect:    {} (rule `{r}`)\n",
                    effect_name(effect)
                )),
                None => out.push_str(&format!(
                    "effect:    {} (default: no rule matched)\n",
                    effect_name(effect)
                )),
            }
        }
    }
    match &d.outcome {
        Outcome::Allow {
            events_refused: Some(refusal),
            ..
        } => {
            let (status, body) = refused_batches(refusal);
            out.push_str(&format!(
                "decision:  deny (privilege): every batch of events is refused, as APM Server checks {} per batch\nanswer:    {status} {body} (202 for an empty stream)\n",
                refusal.privilege,
            ));
        }
        Outcome::Allow { full_root_body, .. } => {
            let status = respond::allowed_status(d.route);
            let note = match d.route {
                Some(apmgate::policy::compiled::RouteName::Root) if !full_root_body => {
                    " (server information withheld: caller not authenticated)"
                }
                Some(
                    apmgate::policy::compiled::RouteName::Intake
                    | apmgate::policy::compiled::RouteName::RumIntake,
                ) => " (when the event stream is valid)",
                _ => "",
            };
            out.push_str(&format!("decision:  allow\nanswer:    {status}{note}\n"));
        }
        Outcome::Deny(refusal) => {
            let (status, body) = respond::refusal_answer(refusal);
            out.push_str(&format!(
                "decision:  deny ({})\nanswer:    {status} {body}\n",
                refusal.label()
            ));
        }
        Outcome::NeedsElasticsearch { id } => {
            out.push_str(&format!(
                "decision:  pending: API key `{id}` is verified by Elasticsearch at request time\n"
            ));
        }
    }
    out
}

fn to_json(policy: &Policy, request: &AccessRequest<'_>, d: &Decision) -> serde_json::Value {
    let (decision, status, body, reason) = match &d.outcome {
        Outcome::Allow {
            events_refused: Some(r),
            ..
        } => {
            let (status, body) = refused_batches(r);
            ("deny", Some(status), Some(body), Some("privilege"))
        }
        Outcome::Allow { .. } => ("allow", Some(respond::allowed_status(d.route)), None, None),
        Outcome::Deny(refusal) => {
            let (status, body) = respond::refusal_answer(refusal);
            ("deny", Some(status), Some(body), Some(refusal.label()))
        }
        Outcome::NeedsElasticsearch { .. } => ("pending", None, None, Some("needs_elasticsearch")),
    };
    json!({
        "request": {
            "listener": request.listener.name,
            "method": request.method,
            "path": request.path,
            "from": request.peer.ip().to_string(),
        },
        "client_ip": { "ip": d.client_ip.ip.to_string(), "source": d.client_ip.source.as_str() },
        "route": d.route.map(route_name),
        "identity": d.identity.as_ref().map(|id| json!({
            "kind": id.kind.name(),
            "name": id.name,
            "roles": &*id.roles,
            "privileges": id.privileges.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        })),
        "rules": d.trace(policy).map(|(rule, matched)| json!({
            "name": &*rule.name,
            "effect": effect_name(rule.effect),
            "when": rule.when.to_string(),
            "matched": matched,
        })).collect::<Vec<_>>(),
        "deciding_rule": d.deciding_rule.as_deref(),
        "effect": d.effect.map(effect_name),
        "decision": decision,
        "reason": reason,
        "status": status,
        "body": body,
    })
}
