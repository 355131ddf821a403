//! Compiles `[[listener]]`: bind addresses and their overlaps, protocols against TLS, routes,
//! and `limits` (sizes, timeouts, QUIC windows).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use super::context::zero_value;
use super::{Compiler, MIN_HEADER_SIZE};
use crate::policy::ast::{self, SizeValue};
use crate::policy::compiled::*;
use crate::policy::diagnostics::{Code, Diagnostic};
use crate::policy::grammar;
use crate::policy::spanned::Sp;
use crate::policy::types::Bind;

impl Compiler<'_> {
    pub(super) fn limits(&mut self, l: &ast::Limits) -> Limits {
        let d = Limits::default();
        Limits {
            max_header_size: {
                let n = self.positive_size(&l.max_header_size, d.max_header_size);
                match &l.max_header_size {
                    Some(v) if n < MIN_HEADER_SIZE => {
                        self.report(Code::ValueOutOfRange, "`max_header_size` must be at least 8KiB", v.span.clone(), "too small", "the HTTP/1.1 parser reads headers in buffers of at least 8KiB, so a smaller limit could not be enforced");
                        d.max_header_size
                    }
                    _ => n,
                }
            },
            max_event_size: self.positive_size(&l.max_event_size, d.max_event_size),
            max_body_size: self.positive_size(&l.max_body_size, d.max_body_size),
            read_timeout: self.positive_duration(&l.read_timeout, d.read_timeout),
            write_timeout: self.positive_duration(&l.write_timeout, d.write_timeout),
            idle_timeout: self.positive_duration(&l.idle_timeout, d.idle_timeout),
            shutdown_timeout: self.duration(&l.shutdown_timeout, d.shutdown_timeout),
            tls_handshake_timeout: self
                .positive_duration(&l.tls_handshake_timeout, d.tls_handshake_timeout),
            max_connections: l
                .max_connections
                .as_ref()
                .map(|m| m.value)
                .filter(|m| *m > 0),
            quic_max_streams: match &l.quic_max_streams {
                Some(n) if n.value == 0 => {
                    self.push(zero_value(
                        "`quic_max_streams` must be at least 1",
                        n.span.clone(),
                    ));
                    d.quic_max_streams
                }
                Some(n) => n.value,
                None => d.quic_max_streams,
            },
            quic_stream_receive_window: self
                .window(&l.quic_stream_receive_window, d.quic_stream_receive_window),
            quic_receive_window: self.window(&l.quic_receive_window, d.quic_receive_window),
        }
    }

    /// A QUIC flow-control window: a size from 1 KiB to 4 GiB - 1.
    pub(super) fn window(&mut self, v: &Option<Sp<SizeValue>>, default: u32) -> u32 {
        let n = self.positive_size(v, u64::from(default));
        match (u32::try_from(n), v) {
            (Ok(w), _) if w >= 1024 => w,
            (_, Some(v)) => {
                self.push(Diagnostic::new(
                    Code::ValueOutOfRange,
                    "a QUIC window must be between 1KiB and 4GiB",
                    v.span.clone(),
                    "out of range",
                ));
                default
            }
            _ => default,
        }
    }

    pub(super) fn listeners(
        &mut self,
        listeners: &[ast::Listener],
        tls: &BTreeMap<String, Arc<TlsProfile>>,
    ) -> Vec<Arc<Listener>> {
        self.check_duplicates("listener", listeners.iter().map(|l| &l.name));
        if listeners.is_empty() && !self.pruned {
            self.report(
                Code::NoListeners,
                "the policy declares no listener",
                0..0,
                "",
                "add one:\n[[listener]]\nname = \"default\"\nbind = \"127.0.0.1:8200\"",
            );
        }
        let mut out: Vec<Arc<Listener>> = Vec::new();
        let mut binds: Vec<(Bind, Range<usize>, &str, bool, bool)> = Vec::new();
        for l in listeners {
            let bind = match grammar::parse_bind(&l.bind) {
                Ok(b) => Some(b),
                Err(e) => {
                    self.value_error(&l.bind, Code::InvalidBind, e);
                    None
                }
            };
            let profile = match &l.tls {
                Some(name) => match tls.get(name.as_str()) {
                    Some(p) => {
                        self.used_tls.insert(name.value.clone());
                        Some(p.clone())
                    }
                    None => {
                        self.undefined(
                            "TLS profile",
                            name,
                            name.span.clone(),
                            tls.keys().map(String::as_str).collect(),
                        );
                        None
                    }
                },
                None => None,
            };
            let has_tls = l.tls.is_some();
            let protocols: Vec<Protocol> = match &l.protocols {
                Some(list) => {
                    if list.is_empty() {
                        self.report(
                            Code::EmptyList,
                            "`protocols` is empty",
                            list.span.clone(),
                            "empty",
                            "list at least one of `http1`, `http2`, `h2c`, `http3`",
                        );
                    }
                    let mut ps = Vec::new();
                    for p in list.iter() {
                        match p.value {
                            Protocol::Http2 if !has_tls => self.report(Code::ProtocolTlsMismatch, "`http2` needs TLS on this listener", p.span.clone(), "HTTP/2 is negotiated by TLS ALPN", "add `tls = \"PROFILE\"` to the listener, or use `h2c` for plaintext HTTP/2 by prior knowledge"),
                            Protocol::H2c if has_tls => self.report(Code::ProtocolTlsMismatch, "`h2c` is plaintext HTTP/2 but this listener has TLS", p.span.clone(), "plaintext only", "with TLS, HTTP/2 is `http2` (chosen by ALPN)"),
                            Protocol::Http3 if !has_tls => self.report(Code::Http3WithoutTls, "`http3` needs TLS", p.span.clone(), "QUIC is always encrypted", "add `tls = \"PROFILE\"` to the listener (TLS 1.3, rustls backend)"),
                            Protocol::Http2 if profile.as_ref().is_some_and(|p| p.backend == TlsBackend::NativeTls) => self.report(Code::NativeTlsUnsupported, "`http2` is not supported by the native-tls backend", p.span.clone(), "needs ALPN", "native-tls cannot negotiate ALPN on the server side: serve `http1` only, or use the rustls backend"),
                            Protocol::Http3 => {
                                if let Some(prof) = &profile {
                                    if prof.backend == TlsBackend::NativeTls {
                                        self.report(Code::Http3NativeTls, "`http3` cannot use the native-tls backend", p.span.clone(), "QUIC needs rustls", format!("set `backend = \"rustls\"` in `[tls.{}]`, or serve HTTP/3 from another listener", prof.name));
                                    } else if !prof.versions.contains(&TlsVersion::Tls13) {
                                        // Not with native-tls: E403 already says what to change,
                                        // and adding TLS 1.3 to a native-tls profile is E412.
                                        self.report(Code::TlsVersion, "`http3` needs TLS 1.3", p.span.clone(), "QUIC runs on TLS 1.3", format!("add `TLSv1.3` to `supported_protocols` of `[tls.{}]`", prof.name));
                                    }
                                }
                            }
                            _ => {}
                        }
                        if !ps.contains(&p.value) {
                            ps.push(p.value);
                        }
                    }
                    ps
                }
                None if profile
                    .as_ref()
                    .is_some_and(|p| p.backend == TlsBackend::NativeTls) =>
                {
                    vec![Protocol::Http1]
                }
                None if has_tls => vec![Protocol::Http1, Protocol::Http2],
                // As APM Server: plaintext HTTP/2 by prior knowledge, what OTLP/gRPC clients
                // speak without TLS, beside HTTP/1.1.
                None => vec![Protocol::Http1, Protocol::H2c],
            };
            let routes = match &l.routes {
                Some(rs) => {
                    if rs.is_empty() {
                        self.report(Code::EmptyList, "`routes` is empty", rs.span.clone(), "serves nothing", "list the route groups to serve, or remove the key to serve every APM route");
                    }
                    let mut v: Vec<RouteName> = rs.iter().map(|r| r.value).collect();
                    v.sort_unstable();
                    v.dedup();
                    v
                }
                None => DEFAULT_ROUTES.to_vec(),
            };
            let limits = self.limits(&l.limits);
            if let Some(bind) = bind {
                let tcp = protocols.iter().any(|p| *p != Protocol::Http3);
                let udp = protocols.contains(&Protocol::Http3);
                binds.push((bind.clone(), l.bind.span.clone(), l.name.as_str(), tcp, udp));
                self.bind_spans
                    .entry(l.name.value.clone())
                    .or_insert_with(|| l.bind.span.clone());
                out.push(Arc::new(Listener {
                    name: l.name.value.clone(),
                    bind,
                    protocols,
                    tls: profile,
                    routes,
                    limits,
                }));
            }
        }
        for i in 0..binds.len() {
            for j in 0..i {
                let (a, a_span, a_name, a_tcp, a_udp) = &binds[j];
                let (b, b_span, b_name, b_tcp, b_udp) = &binds[i];
                let shares_transport = (*a_tcp && *b_tcp) || (*a_udp && *b_udp);
                if shares_transport && binds_overlap(a, b) {
                    self.push(
                        Diagnostic::new(
                            Code::ListenerConflict,
                            format!("listener `{b_name}` binds `{b}`, which overlaps `{a}` of listener `{a_name}`"),
                            b_span.clone(),
                            "overlapping address",
                        )
                        .with_label(a_span.clone(), "already bound here")
                        .with_help("give each listener its own port, or merge them into one listener"),
                    );
                }
            }
        }
        out
    }
}

pub(super) fn binds_overlap(a: &Bind, b: &Bind) -> bool {
    use Bind;
    match (a, b) {
        (Bind::Unix(x), Bind::Unix(y)) => x == y,
        (Bind::Ip(x), Bind::Ip(y)) => {
            // Port 0 asks the system for a free port: two of them never collide.
            if x.port() != y.port() || x.port() == 0 {
                return false;
            }
            let (xi, yi) = (x.ip(), y.ip());
            // `[::]` is dual-stack on Linux by default and takes the IPv4 port too.
            xi == yi
                || (xi.is_unspecified() && (xi.is_ipv6() || yi.is_ipv4()))
                || (yi.is_unspecified() && (yi.is_ipv6() || xi.is_ipv4()))
        }
        (Bind::Host(h, p), Bind::Host(g, q)) => h == g && p == q,
        (Bind::Host(_, p), Bind::Ip(x)) | (Bind::Ip(x), Bind::Host(_, p)) => {
            *p == x.port() && x.ip().is_unspecified()
        }
        _ => false,
    }
}
