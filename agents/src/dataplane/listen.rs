//! The receiver's data-plane listeners: a QUIC endpoint or a TCP listener
//! (with TLS where the transport runs inside it) per trial, and what each
//! accepted byte stream is for.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use transbench_wire::{printable, CloseMode, TrialSetup, TrialToken, TOKEN_LEN};

use super::multi::{self, Recording};
use super::{churn, stream, ServeCounters, TrialPeer};
use crate::transport::tls::Identity;
use transbench_wire::Transport;

/// The receiver's TLS identity, made once at start: its data planes'
/// certificate and the TCP side's server configuration.
pub struct ServerTls {
    identity: Identity,
    tls: Arc<rustls::ServerConfig>,
}

impl ServerTls {
    pub fn self_signed() -> anyhow::Result<Self> {
        let identity = Identity::self_signed()?;
        Ok(ServerTls {
            tls: identity.tls_server_config()?,
            identity,
        })
    }

    /// The fingerprint the sender pins, for transports inside TLS.
    pub fn fingerprint_for(&self, transport: Transport) -> Option<String> {
        transport.uses_tls().then(|| self.identity.fingerprint.clone())
    }
}

/// A QUIC endpoint for one trial, with the congestion controller it asks
/// for, and its port.
pub fn bind_quic(
    setup: &TrialSetup,
    ctx: &ServerTls,
    local_ip: IpAddr,
) -> anyhow::Result<(quinn::Endpoint, u16)> {
    let config = ctx.identity.quic_server_config(
        setup.quic_congestion.as_deref(),
        setup.transport.capabilities().zero_rtt,
    )?;
    let endpoint = crate::transport::quic_endpoint(SocketAddr::new(local_ip, 0), Some(config))?;
    let port = endpoint.local_addr()?.port();
    Ok((endpoint, port))
}

/// A TCP listener for one trial, its port, and a TLS acceptor when the
/// transport runs inside TLS.
async fn bind_tcp(
    setup: &TrialSetup,
    ctx: &ServerTls,
    local_ip: IpAddr,
) -> anyhow::Result<(TcpListener, u16, Option<tokio_rustls::TlsAcceptor>)> {
    let listener = TcpListener::bind((local_ip, 0)).await?;
    let port = listener.local_addr()?.port();
    let acceptor = setup
        .transport
        .uses_tls()
        .then(|| tokio_rustls::TlsAcceptor::from(ctx.tls.clone()));
    Ok((listener, port, acceptor))
}

/// A TCP listener for one trial (inside TLS when the transport is), whose
/// connections from `peer` (its address, opening with its token) a task in
/// `tasks` serves as `role`; its port.
pub async fn serve_tcp(
    setup: &TrialSetup,
    ctx: &ServerTls,
    local_ip: IpAddr,
    peer: TrialPeer,
    counters: Arc<ServeCounters>,
    role: ConnectionRole,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<u16> {
    let (listener, port, acceptor) = bind_tcp(setup, ctx, local_ip).await?;
    tasks.spawn(accept_streams(
        listener,
        acceptor,
        peer,
        setup.tcp_congestion.clone(),
        counters,
        role,
    ));
    Ok(port)
}

/// How long an accept that failed for want of a resource waits to try
/// again: long enough not to spin on a listen queue that stays readable,
/// short next to a trial.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// accept(2) reports some errors of the pending connection itself (Linux
/// passes its network errors on, and ECONNABORTED is a connection reset
/// while queued): that connection is gone, the listener is fine.
fn is_pending_connections_own(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EPROTO
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETDOWN
                | libc::ENETUNREACH
                | libc::EPERM
                | libc::EINTR
        )
    )
}

/// An accept's error in words, with what it means for the trial when the
/// receiver ran out of something.
struct AcceptFailure(std::io::Error);

impl std::fmt::Display for AcceptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.0;
        match e.raw_os_error() {
            Some(libc::EMFILE) => write!(
                f,
                "{e} (EMFILE): the receiver ran out of file descriptors (its `ulimit -n`); the sender's \
                 connections waited in the listen queue"
            ),
            Some(libc::ENFILE) => write!(
                f,
                "{e} (ENFILE): the receiver's host ran out of file descriptors (fs.file-max); the sender's \
                 connections waited in the listen queue"
            ),
            Some(libc::ENOMEM | libc::ENOBUFS) => write!(
                f,
                "{e}: the receiver's kernel ran out of memory for sockets; the sender's connections waited \
                 in the listen queue"
            ),
            _ => write!(f, "{e}"),
        }
    }
}

/// How long a data connection may take to show the trial's token: the
/// sender sends it the moment it is connected.
const TOKEN_WAIT: Duration = Duration::from_secs(5);

/// Whether the connection opens with the trial's token, within
/// [`TOKEN_WAIT`]. Nothing else is read, and nothing is sent, before.
async fn shows_token(tcp: &mut TcpStream, token: TrialToken) -> bool {
    let mut shown = [0u8; TOKEN_LEN];
    let read = tokio::time::timeout(TOKEN_WAIT, tcp.read_exact(&mut shown)).await;
    matches!(read, Ok(Ok(_))) && token.matches(&shown)
}

/// What a data connection is for.
#[derive(Clone)]
pub enum ConnectionRole {
    /// Request/response: answer every request with `size` bytes.
    Serve(usize),
    /// Multistream over one connection: record every message of every stream.
    ReadMux(Recording),
    /// Multistream, one connection per stream.
    ReadFramed(Recording),
    /// Churn: answer the one request, then close as the sender asked.
    Transaction(usize, CloseMode),
    /// Bulk: read a flow to its end, or write it, counting its bytes.
    Bulk(Arc<super::bulk::BulkFlows>),
}

impl ConnectionRole {
    async fn run<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        self,
        io: S,
        token: TrialToken,
        counters: Arc<ServeCounters>,
    ) -> std::io::Result<()> {
        match self {
            ConnectionRole::Serve(size) => {
                let (r, w) = tokio::io::split(io);
                stream::serve(r, w, size, token, counters).await
            }
            ConnectionRole::ReadMux(rec) => {
                let (r, w) = tokio::io::split(io);
                multi::read_mux(r, rec.echo.then_some(w), rec).await
            }
            ConnectionRole::ReadFramed(rec) => {
                let (r, w) = tokio::io::split(io);
                multi::read_framed(r, rec.echo.then_some(w), rec).await
            }
            ConnectionRole::Transaction(size, close) => {
                let mut io = io;
                churn::answer(&mut io, size, close, token, &counters).await?;
                churn::await_fin(&mut io).await
            }
            ConnectionRole::Bulk(flows) => flows.serve(io, &counters).await,
        }
    }
}

async fn accept_streams(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    peer: TrialPeer,
    congestion: Option<String>,
    counters: Arc<ServeCounters>,
    role: ConnectionRole,
) {
    // Accepted sockets inherit the namespace default: no pin needed for it.
    let congestion =
        congestion.filter(|name| !crate::transport::congestion::is_namespace_default(Some(name)));
    let mut conns = JoinSet::new();
    // Connections that showed the token and are being served.
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let (tcp, from) = match listener.accept().await {
            Ok(a) => a,
            Err(e) if is_pending_connections_own(&e) => continue,
            Err(e) => {
                // Out of descriptors (or memory): what waits stays in the
                // listen queue, and is taken once something closes. The
                // listener keeps serving; the sender hears of it in the report.
                let why = AcceptFailure(e);
                if counters.failure("accepting a data connection", &why) == 1 {
                    tracing::warn!(
                        "accepting a data connection failed: {why}; retrying every {ACCEPT_BACKOFF:?}"
                    );
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        if from.ip() != peer.ip {
            counters.rejected();
            continue;
        }
        let (tls, counters, role, congestion, open) = (
            tls.clone(),
            counters.clone(),
            role.clone(),
            congestion.clone(),
            open.clone(),
        );
        // In a task of its own: a connection slow to show its token holds
        // up no other.
        conns.spawn(async move {
            let mut tcp = tcp;
            if !shows_token(&mut tcp, peer.token).await {
                counters.rejected();
                return;
            }
            let Some(_open) = OpenConnection::take(&open, peer.most_open) else {
                counters.rejected();
                return;
            };
            admit(&tcp, &role, tls.is_some(), congestion.as_deref(), &counters);
            let served = match (role, tls) {
                (ConnectionRole::Transaction(size, close), Some(acceptor)) => {
                    tls_transaction(tcp, acceptor, size, close, peer.token, &counters).await
                }
                (role, None) => role.run(tcp, peer.token, counters).await,
                (role, Some(acceptor)) => match acceptor.accept(tcp).await {
                    Ok(tls) => role.run(tls, peer.token, counters).await,
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = served {
                tracing::debug!("data connection ended: {}", printable(&e.to_string()));
            }
        });
    }
}

/// Counts a served connection while it lives, if there is room for it.
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn take(open: &Arc<AtomicUsize>, most: usize) -> Option<Self> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < most).then_some(n + 1)
        })
        .ok()?;
        Some(OpenConnection(open.clone()))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection that showed the trial's token: its socket options, and
/// its count.
fn admit(
    tcp: &TcpStream,
    role: &ConnectionRole,
    tls: bool,
    congestion: Option<&str>,
    counters: &ServeCounters,
) {
    // A plain TCP transaction writes once, which Nagle never holds back.
    if tls || !matches!(role, ConnectionRole::Transaction(..)) {
        let _ = tcp.set_nodelay(true);
    }
    if let Some(name) = congestion {
        if let Err(e) = crate::transport::congestion::set(tcp, name) {
            tracing::warn!(
                "cannot pin congestion control {} as the sender asked: {e}",
                printable(name)
            );
        }
    }
    // Once is enough for the record (churn accepts thousands per second).
    if !counters.has_tcp_congestion() {
        if let Ok(name) = crate::transport::congestion::get(tcp) {
            counters.tcp_congestion(name);
        }
    }
    counters.connection();
}

/// Churn over TLS: one transaction, then the client's FIN read on the TCP
/// stream underneath (see [`churn::await_fin`]).
async fn tls_transaction(
    tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    size: usize,
    close: CloseMode,
    token: TrialToken,
    counters: &ServeCounters,
) -> std::io::Result<()> {
    let mut tls = acceptor.accept(tcp).await?;
    churn::answer(&mut tls, size, close, token, counters).await?;
    let (mut tcp, _) = tls.into_inner();
    churn::await_fin(&mut tcp).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_is_the_receivers_failure_a_connection_lost_in_the_queue_is_not() {
        let e = |code| std::io::Error::from_raw_os_error(code);
        assert!(is_pending_connections_own(&e(libc::ECONNABORTED)));
        for code in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOMEM,
            libc::ENOBUFS,
            libc::EBADF,
        ] {
            assert!(!is_pending_connections_own(&e(code)), "{code}");
        }
        let said = AcceptFailure(e(libc::EMFILE)).to_string();
        assert!(
            said.contains("EMFILE") && said.contains("out of file descriptors"),
            "{said}"
        );
    }
}
