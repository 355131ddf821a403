//! Why a server cannot start: a listener that cannot bind, TLS that cannot be set up, an output
//! that cannot open. (Refusals of requests are `access::Refusal`, answered by `respond`.)

use super::tls;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A listener cannot be bound.
    #[error("listener `{listener}`: cannot bind {addr}: {source}")]
    Bind {
        /// Listener.
        listener: String,
        /// Address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// TLS cannot be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The output cannot be opened.
    #[error("{0}")]
    Output(String),
}
