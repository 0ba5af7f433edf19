//! A connection per transaction (churn, handshake): on the sender, dial,
//! send one request, time the response, close as the trial says; on the
//! receiver, answer the one request and close as the trial says.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use transbench_wire::frame::PREFIX_LEN;
use transbench_wire::{printable, CloseMode, LengthPrefix, MessageHeader, MessageKind, TrialToken};

use super::{ServeCounters, TrialPeer};
use crate::clock::mono_now_ns;
use crate::read_growing::read_growing;

/// How long one step of a close waits for the peer (its FIN, its close,
/// a session ticket).
pub const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Receiver: answers the connection's one request; with `server`, it then
/// closes its side first (TLS: close_notify, then FIN), so TIME_WAIT lands
/// here. `false` if the peer left before asking anything. The caller then
/// waits for the client's FIN ([`await_fin`]) before letting go, so
/// nothing arrives at a closed socket (which would answer with RST and
/// skip TIME_WAIT).
pub async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    size: usize,
    close: CloseMode,
    token: TrialToken,
    counters: &ServeCounters,
) -> io::Result<bool> {
    let framing = LengthPrefix::new(size as u32);
    // The request is the whole frame, prefix and message: read as one (a
    // read per part would cost a system call more per connection), into a
    // buffer that grows only as its bytes come.
    let mut frame = Vec::new();
    match read_growing(io, &mut frame, PREFIX_LEN + size).await? {
        0 => return Ok(false),
        got if got < PREFIX_LEN + size => return Err(io::ErrorKind::UnexpectedEof.into()),
        _ => {}
    }
    let prefix: [u8; PREFIX_LEN] = frame[..PREFIX_LEN].try_into().expect("prefix length");
    let header = match (
        framing.decode_len(prefix),
        MessageHeader::decode(&frame[PREFIX_LEN..]),
    ) {
        (Ok(len), Ok(h)) if len == size && h.kind == MessageKind::Request && h.token == token => h,
        // The connection showed the trial's token: this is its own garbage.
        _ => {
            counters.discarded();
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a transbench request",
            ));
        }
    };
    counters.request(size);
    header.response().encode(&mut frame[PREFIX_LEN..]);
    io.write_all(&frame).await?;
    io.flush().await?;
    counters.response();
    if close == CloseMode::Server {
        io.shutdown().await?;
    }
    Ok(true)
}

/// Reads and drops whatever comes until the peer's FIN or RST, at most
/// [`CLOSE_WAIT`]. Over TLS, call it on the TCP stream underneath: TLS
/// reports the end at the peer's close_notify, which comes just before its
/// FIN, and closing in between would make this side the first to send FIN.
pub async fn await_fin<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<()> {
    let mut sink = [0u8; 512];
    let drained = tokio::time::timeout(CLOSE_WAIT, async {
        loop {
            match r.read(&mut sink).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                // The client's RST (close rst) ends it as well as a FIN.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    drained.unwrap_or(Ok(()))
}

/// Receiver: every QUIC connection of a churn trial carries one request on
/// one stream. With `server` the receiver closes the connection once the
/// client has acknowledged the response; otherwise it waits for the
/// client's close. `zero_rtt` serves requests that came as 0-RTT data at
/// once (0.5-RTT), without waiting for the handshake to finish.
pub async fn serve_quic(
    endpoint: quinn::Endpoint,
    peer: TrialPeer,
    size: usize,
    close: CloseMode,
    zero_rtt: bool,
    counters: Arc<ServeCounters>,
) {
    let shared = counters.clone();
    super::quic::accept_from(endpoint, peer, &counters, move |incoming| {
        let counters = shared.clone();
        async move {
            let connecting = match incoming.accept() {
                Ok(c) => c,
                Err(e) => return tracing::debug!("QUIC connection refused: {}", printable(&e.to_string())),
            };
            let conn = if zero_rtt {
                match connecting.into_0rtt() {
                    Ok((conn, _)) => conn,
                    Err(connecting) => match connecting.await {
                        Ok(c) => c,
                        Err(e) => {
                            return tracing::debug!("QUIC handshake failed: {}", printable(&e.to_string()))
                        }
                    },
                }
            } else {
                match connecting.await {
                    Ok(c) => c,
                    Err(e) => return tracing::debug!("QUIC handshake failed: {}", printable(&e.to_string())),
                }
            };
            counters.connection();
            let Ok((mut send, recv)) = conn.accept_bi().await else {
                return;
            };
            let served = super::stream::serve(recv, &mut send, size, peer.token, counters).await;
            if served.is_ok() && send.finish().is_ok() && close == CloseMode::Server {
                // Closing at once would discard a response not yet acknowledged.
                let _ = tokio::time::timeout(CLOSE_WAIT, send.stopped()).await;
                conn.close(0u32.into(), b"transaction done");
            }
            let _ = tokio::time::timeout(CLOSE_WAIT, conn.closed()).await;
        }
    })
    .await
}

/// How the sender reaches the receiver for each transaction.
pub enum Dialer {
    Tcp {
        /// The congestion control to pin on each socket (see
        /// `congestion::pin`); `None` when the namespace default already is it.
        congestion: Option<Option<String>>,
        tls: Option<tokio_rustls::TlsConnector>,
        ports: PortChoice,
        /// What each connection opens with, before TLS and the request.
        token: TrialToken,
        /// The congestion control the kernel reports for the first
        /// connection, for the record.
        pinned: std::sync::OnceLock<String>,
    },
    Quic {
        endpoint: quinn::Endpoint,
        /// quic-0rtt: resumes sessions and sends the request as 0-RTT data.
        zero_rtt: Option<Box<crate::transport::tls::ZeroRttClient>>,
    },
}

/// Which local port a TCP transaction uses.
#[derive(Debug, Clone)]
pub enum PortChoice {
    /// connect() picks, within this range if given (IP_LOCAL_PORT_RANGE on
    /// the socket) or the namespace's.
    Kernel { socket_range: Option<(u16, u16)> },
    /// The client binds each port of the range in turn, with SO_REUSEADDR
    /// (as netperf's TCP_CRR does), passing over `skip` (the control
    /// connection's, which may lie in the range).
    Cycle {
        range: (u16, u16),
        next: Arc<std::sync::atomic::AtomicU32>,
        skip: u16,
    },
}

/// IP_LOCAL_PORT_RANGE (Linux 6.3+): bounds the ports connect() may pick
/// for one socket; not yet in the libc crate.
const IP_LOCAL_PORT_RANGE: libc::c_int = 51;

impl PortChoice {
    fn apply(&self, socket: &tokio::net::TcpSocket, local_ip: IpAddr) -> io::Result<()> {
        match self {
            PortChoice::Kernel { socket_range: None } => Ok(()),
            PortChoice::Kernel {
                socket_range: Some((lo, hi)),
            } => {
                let value = u32::from(*lo) | (u32::from(*hi) << 16);
                crate::transport::sockopt::set_int(
                    socket,
                    libc::IPPROTO_IP,
                    IP_LOCAL_PORT_RANGE,
                    value as libc::c_int,
                )
            }
            PortChoice::Cycle { range, next, skip } => {
                let span = u32::from(range.1 - range.0) + 1;
                let mut port = *skip;
                while port == *skip && span > 1 {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % span;
                    port = range.0 + k as u16;
                }
                socket.set_reuseaddr(true)?;
                socket.bind(SocketAddr::new(local_ip, port))
            }
        }
    }
}

/// What one transaction took, CLOCK_MONOTONIC ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    pub connect_start: u64,
    pub connected: u64,
    pub secured: u64,
    pub first_byte: u64,
    pub done: u64,
    /// quic-0rtt: `Some(accepted)` when the request went as 0-RTT data.
    pub zero_rtt: Option<bool>,
}

/// Why a transaction failed: an errno name, or what else went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub cause: String,
    pub at_ns: u64,
}

impl Failure {
    fn new(cause: impl Into<String>) -> Self {
        Failure {
            cause: cause.into(),
            at_ns: mono_now_ns(),
        }
    }

    fn io(e: &io::Error, otherwise: &str) -> Self {
        Failure::new(io_cause(e, otherwise))
    }
}

/// The errno's name when the kernel said no; else the kind of failure.
fn io_cause(e: &io::Error, otherwise: &str) -> String {
    if let Some(name) = e.raw_os_error().and_then(errno_name) {
        return name.to_string();
    }
    if let Some(code) = e.raw_os_error() {
        return format!("errno {code}");
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "eof".into(),
        io::ErrorKind::TimedOut => "timeout".into(),
        io::ErrorKind::ConnectionReset => "ECONNRESET".into(),
        _ => otherwise.into(),
    }
}

/// Names of the errnos a connection can fail with.
pub fn errno_name(code: i32) -> Option<&'static str> {
    Some(match code {
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EPIPE => "EPIPE",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOMEM => "ENOMEM",
        libc::EAGAIN => "EAGAIN",
        libc::EINTR => "EINTR",
        libc::EINVAL => "EINVAL",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        _ => return None,
    })
}

fn quic_cause(e: &quinn::ConnectionError) -> String {
    match e {
        quinn::ConnectionError::TimedOut => "timeout".into(),
        quinn::ConnectionError::Reset => "quic_reset".into(),
        quinn::ConnectionError::ConnectionClosed(_) | quinn::ConnectionError::ApplicationClosed(_) => {
            "quic_closed".into()
        }
        _ => "quic".into(),
    }
}

/// One request frame of `size` bytes carrying `header`.
fn request_frame(header: MessageHeader, size: usize) -> Vec<u8> {
    let mut msg = vec![0u8; size];
    header.encode(&mut msg);
    let mut frame = Vec::with_capacity(PREFIX_LEN + size);
    LengthPrefix::new(size as u32)
        .encode(&msg, &mut frame)
        .expect("size is validated against the frame limit");
    frame
}

/// Reads the response frame; returns when its first byte arrived.
async fn read_response<R: AsyncRead + Unpin>(r: &mut R, size: usize) -> io::Result<u64> {
    let mut buf = vec![0u8; PREFIX_LEN + size];
    let n = r.read(&mut buf).await?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let first_byte = mono_now_ns();
    r.read_exact(&mut buf[n..]).await?;
    let len = LengthPrefix::new(size as u32)
        .decode_len(buf[..PREFIX_LEN].try_into().expect("prefix length"))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    match MessageHeader::decode(&buf[PREFIX_LEN..]) {
        Ok(h) if h.kind == MessageKind::Response && len == size => Ok(first_byte),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a transbench response",
        )),
    }
}

impl Dialer {
    /// Runs one transaction against `peer`: connect, request and response
    /// within `limit` (else it fails as `timeout`), then the close as
    /// `close` says, each of its steps bounded on its own and all of them
    /// by `close_by` (the trial's end: the outcome is known by then).
    #[allow(clippy::too_many_arguments)]
    pub async fn transaction(
        &self,
        peer: SocketAddr,
        local_ip: IpAddr,
        header: MessageHeader,
        size: usize,
        close: CloseMode,
        limit: Duration,
        close_by: tokio::time::Instant,
    ) -> Result<Timings, Failure> {
        let deadline = tokio::time::Instant::now() + limit;
        match self {
            Dialer::Tcp {
                congestion,
                tls,
                ports,
                token,
                pinned,
            } => {
                let socket = if peer.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()
                } else {
                    tokio::net::TcpSocket::new_v6()
                }
                .map_err(|e| Failure::io(&e, "socket"))?;
                if let Some(cc) = congestion {
                    crate::transport::congestion::pin(&socket, cc.as_deref())
                        .map_err(|e| Failure::io(&e, "cc"))?;
                }
                // Plain TCP writes once each way, which Nagle never holds
                // back; TLS writes its handshake flight first.
                if tls.is_some() {
                    socket.set_nodelay(true).map_err(|e| Failure::io(&e, "socket"))?;
                }
                if close == CloseMode::Rst {
                    socket2::SockRef::from(&socket)
                        .set_linger(Some(Duration::ZERO))
                        .map_err(|e| Failure::io(&e, "socket"))?;
                }
                ports
                    .apply(&socket, local_ip)
                    .map_err(|e| Failure::io(&e, "bind"))?;
                let connect_start = mono_now_ns();
                let tcp = within(deadline, socket.connect(peer))
                    .await?
                    .map_err(|e| Failure::io(&e, "connect"))?;
                let connected = mono_now_ns();
                if pinned.get().is_none() {
                    if let Ok(name) = crate::transport::congestion::get(&tcp) {
                        let _ = pinned.set(name);
                    }
                }
                let mut tcp = tcp;
                let frame = request_frame(header, size);
                let timings = |secured, first_byte, done| Timings {
                    connect_start,
                    connected,
                    secured,
                    first_byte,
                    done,
                    zero_rtt: None,
                };
                match tls {
                    None => {
                        // The token and the request in one write, as one request was.
                        let opening = [token.as_bytes().as_slice(), &frame].concat();
                        let first_byte = within(deadline, exchange(&mut tcp, &opening, size)).await??;
                        let done = mono_now_ns();
                        // Client: the close sends FIN. Rst: SO_LINGER 0 is set.
                        if close == CloseMode::Server {
                            closing(close_by, await_fin(&mut tcp)).await;
                        }
                        Ok(timings(connected, first_byte, done))
                    }
                    Some(connector) => {
                        within(deadline, tcp.write_all(token.as_bytes()))
                            .await?
                            .map_err(|e| Failure::io(&e, "send"))?;
                        let mut tls = within(
                            deadline,
                            connector.connect(crate::transport::tls::server_name(), tcp),
                        )
                        .await?
                        .map_err(|e| Failure::io(&e, "tls"))?;
                        let secured = mono_now_ns();
                        let first_byte = within(deadline, exchange(&mut tls, &frame, size)).await??;
                        let done = mono_now_ns();
                        match close {
                            // close_notify, then FIN.
                            CloseMode::Client => closing(close_by, tls.shutdown()).await,
                            CloseMode::Server => {
                                closing(close_by, await_fin(&mut tls)).await;
                                let (mut tcp, _) = tls.into_inner();
                                closing(close_by, await_fin(&mut tcp)).await;
                            }
                            CloseMode::Rst => {}
                        }
                        Ok(timings(secured, first_byte, done))
                    }
                }
            }
            Dialer::Quic { endpoint, zero_rtt } => {
                let connect_start = mono_now_ns();
                let (connecting, tickets) = match zero_rtt {
                    None => (endpoint.connect(peer, crate::transport::tls::SERVER_NAME), None),
                    Some(client) => {
                        let (config, tickets) = client.connection().map_err(|_| Failure::new("tls"))?;
                        (
                            endpoint.connect_with(config, peer, crate::transport::tls::SERVER_NAME),
                            Some(tickets),
                        )
                    }
                };
                let connecting = connecting.map_err(|_| Failure::new("quic_connect"))?;
                let attempt = if tickets.is_some() {
                    connecting.into_0rtt()
                } else {
                    Err(connecting)
                };
                let (conn, accepted) = match attempt {
                    Ok((conn, accepted)) => (conn, Some(accepted)),
                    Err(connecting) => (
                        within(deadline, connecting)
                            .await?
                            .map_err(|e| Failure::new(quic_cause(&e)))?,
                        None,
                    ),
                };
                // 0-RTT: the handshake completes while the request is out.
                let handshake = accepted.map(|a| tokio::spawn(async move { (a.await, mono_now_ns()) }));
                let handshaken = mono_now_ns();
                let frame = request_frame(header, size);
                let quic_io = |e: io::Error| Failure::io(&e, "quic");
                let exchanged = within(deadline, async {
                    let mut first_byte = quic_exchange(&conn, &frame, size).await;
                    let (zero_rtt, secured) = match handshake {
                        Some(h) => {
                            let (ok, at) = h.await.map_err(|_| Failure::new("quic"))?;
                            if !ok {
                                // Rejected 0-RTT data never reached the
                                // receiver: ask again, now in 1-RTT.
                                first_byte = quic_exchange(&conn, &frame, size).await;
                            }
                            (Some(ok), at)
                        }
                        None => (None, handshaken),
                    };
                    Ok((first_byte.map_err(quic_io)?, zero_rtt, secured))
                })
                .await;
                let (first_byte, zero_rtt, secured) = match exchanged {
                    Ok(Ok(x)) => x,
                    Ok(Err(f)) | Err(f) => {
                        conn.close(0u32.into(), b"transaction failed");
                        return Err(f);
                    }
                };
                let done = mono_now_ns();
                if let Some(tickets) = tickets {
                    // The connections to come resume with the tickets this
                    // one brings, a round trip after its response.
                    closing(close_by, tickets.arrived(CLOSE_WAIT)).await;
                }
                match close {
                    CloseMode::Server => {
                        closing(close_by, tokio::time::timeout(CLOSE_WAIT, conn.closed())).await
                    }
                    CloseMode::Client | CloseMode::Rst => conn.close(0u32.into(), b"transaction done"),
                }
                Ok(Timings {
                    connect_start,
                    connected: secured,
                    secured,
                    first_byte,
                    done,
                    zero_rtt,
                })
            }
        }
    }
}

/// A step of a close, cut short at `close_by`: what it waits for changes
/// nothing measured.
async fn closing<T>(close_by: tokio::time::Instant, step: impl std::future::Future<Output = T>) {
    let _ = tokio::time::timeout_at(close_by, step).await;
}

/// `fut`, or a `timeout` failure at `deadline`.
async fn within<T>(
    deadline: tokio::time::Instant,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, Failure> {
    tokio::time::timeout_at(deadline, fut)
        .await
        .map_err(|_| Failure::new("timeout"))
}

/// The request on a new stream, and the response's first byte time.
async fn quic_exchange(conn: &quinn::Connection, frame: &[u8], size: usize) -> io::Result<u64> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(frame).await?;
    send.finish().map_err(io::Error::other)?;
    read_response(&mut recv, size).await
}

/// Sends the request and reads the response; returns when its first
/// byte arrived.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    frame: &[u8],
    size: usize,
) -> Result<u64, Failure> {
    io.write_all(frame).await.map_err(|e| Failure::io(&e, "send"))?;
    io.flush().await.map_err(|e| Failure::io(&e, "send"))?;
    read_response(io, size)
        .await
        .map_err(|e| Failure::io(&e, "protocol"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: TrialToken = TrialToken::from_bytes(*b"trial-42");

    #[test]
    fn errno_names_are_the_kernels() {
        assert_eq!(errno_name(libc::EADDRNOTAVAIL), Some("EADDRNOTAVAIL"));
        assert_eq!(errno_name(libc::ECONNRESET), Some("ECONNRESET"));
        assert_eq!(errno_name(100_000), None);
        let e = io::Error::from_raw_os_error(libc::EADDRNOTAVAIL);
        assert_eq!(io_cause(&e, "x"), "EADDRNOTAVAIL");
        assert_eq!(io_cause(&io::ErrorKind::UnexpectedEof.into(), "x"), "eof");
        assert_eq!(io_cause(&io::Error::other("tls alert"), "tls"), "tls");
    }

    #[tokio::test]
    async fn a_transaction_over_a_pipe_is_answered_and_closed_as_told() {
        for close in CloseMode::ALL {
            let (mut client, mut server) = tokio::io::duplex(4096);
            let counters = Arc::new(ServeCounters::default());
            let c = counters.clone();
            let served = tokio::spawn(async move {
                let answered = answer(&mut server, 100, close, T, &c).await?;
                await_fin(&mut server).await.map(|()| answered)
            });
            let frame = request_frame(MessageHeader::request(T, 0, 1, 5), 100);
            let first_byte = exchange(&mut client, &frame, 100).await.unwrap();
            assert!(first_byte > 0);
            if close == CloseMode::Server {
                // The receiver's end comes first.
                await_fin(&mut client).await.unwrap();
            }
            drop(client);
            assert!(served.await.unwrap().unwrap(), "{close}");
            let report = counters.report(0);
            assert_eq!((report.requests, report.responses), (1, 1), "{close}");
        }
    }
}
