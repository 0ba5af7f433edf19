//! The transports' connection set-up on both agents: how a sender dials
//! each one (TCP with its congestion control pinned, TLS with the
//! receiver's certificate pinned, a QUIC client endpoint) and the limits
//! each carrier puts on a message. What each transport *is* lives with its
//! name, in `transbench_wire::transport`.

pub mod congestion;
pub mod sockopt;
pub mod tcp_info;
pub mod tls;

use anyhow::Context;
use std::net::{IpAddr, SocketAddr};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use transbench_wire::{Carrier, Transport, TrialToken};

/// Largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65_507;
/// Largest message on a byte stream (TCP, TLS, a QUIC stream).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// The largest message, header included, that `transport` carries.
pub fn max_message(transport: Transport) -> usize {
    match transport.capabilities().carrier {
        Carrier::Udp => MAX_DATAGRAM,
        Carrier::Tcp | Carrier::Quic => MAX_MESSAGE,
    }
}

/// The certificate fingerprint the receiver sent for a TLS transport.
pub fn pinned(cert: Option<String>) -> anyhow::Result<String> {
    cert.context("receiver sent no certificate fingerprint for a TLS transport")
}

/// A data connection of a trial: TCP with TCP_NODELAY and its congestion
/// control pinned before the handshake, opened with the trial's token (the
/// receiver serves no connection before it has seen it; TLS, where the
/// transport has it, starts after).
pub async fn connect_tcp(
    addr: SocketAddr,
    congestion: Option<&str>,
    token: TrialToken,
) -> anyhow::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    congestion::pin(&socket, congestion)?;
    socket.set_nodelay(true)?;
    let mut tcp = socket.connect(addr).await?;
    tcp.write_all(token.as_bytes())
        .await
        .context("sending the trial's token")?;
    Ok(tcp)
}

/// A TLS client that accepts exactly the receiver's certificate.
pub fn tls_connector(cert: Option<String>) -> anyhow::Result<tokio_rustls::TlsConnector> {
    Ok(tokio_rustls::TlsConnector::from(tls::tls_client_config(
        &pinned(cert)?,
    )?))
}

/// TLS over an open TCP connection, the receiver's certificate pinned.
pub async fn tls_handshake(
    connector: &tokio_rustls::TlsConnector,
    tcp: TcpStream,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    connector
        .connect(tls::server_name(), tcp)
        .await
        .context("TLS handshake with the receiver (certificate pinned from the control channel)")
}

/// A QUIC client endpoint on `local_ip` whose connections pin the
/// receiver's certificate, run congestion controller `cc` and show the
/// trial's token.
pub fn quic_client(
    local_ip: IpAddr,
    cert: Option<String>,
    cc: Option<&str>,
    token: TrialToken,
) -> anyhow::Result<quinn::Endpoint> {
    let mut endpoint =
        quic_endpoint(SocketAddr::new(local_ip, 0), None).context("opening the QUIC endpoint")?;
    endpoint.set_default_client_config(tls::quic_client_config(&pinned(cert)?, cc, token)?);
    Ok(endpoint)
}

/// Socket buffer of a QUIC endpoint each way, quinn's perf tool's: the
/// receive buffer is a QUIC receiver's only queue, and the kernel's default
/// (~200 KB) overflows in a bulk flow's bursts on loopback, which quinn then
/// takes for congestion.
pub const QUIC_SOCKET_BUFFER: usize = 2 * 1024 * 1024;

/// A QUIC endpoint on `addr` (a server with `server`'s configuration) with
/// [`QUIC_SOCKET_BUFFER`] bytes of socket buffer each way.
pub fn quic_endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(addr)?;
    crate::dataplane::udp::enlarge_receive_buffer(&socket, QUIC_SOCKET_BUFFER);
    // Up to `net.core.wmem_max`; the default is only a slower sender.
    let _ = socket2::SockRef::from(&socket).set_send_buffer_size(QUIC_SOCKET_BUFFER);
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        socket,
        std::sync::Arc::new(quinn::TokioRuntime),
    )
}

/// A QUIC connection to the receiver from `endpoint`.
pub async fn quic_connect(endpoint: &quinn::Endpoint, peer: SocketAddr) -> anyhow::Result<quinn::Connection> {
    endpoint
        .connect(peer, tls::SERVER_NAME)?
        .await
        .context("QUIC handshake with the receiver (certificate pinned from the control channel)")
}

/// Closes a trial's QUIC connection and gives the close a second to reach
/// the receiver.
pub async fn quic_close(endpoint: &quinn::Endpoint, conn: Option<&quinn::Connection>) {
    match conn {
        Some(c) => c.close(0u32.into(), b"trial over"),
        None => endpoint.close(0u32.into(), b"trial over"),
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), endpoint.wait_idle()).await;
}
