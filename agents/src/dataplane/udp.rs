//! Raw UDP: one datagram per request and per response.

use std::io;
use std::sync::Arc;
use tokio::net::UdpSocket;
use transbench_wire::{MessageHeader, MessageKind};

use super::{RequestSink, ResponseSource, ServeCounters};
use crate::clock::mono_now_ns;

/// Largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65_507;

pub struct UdpSink {
    sock: Arc<UdpSocket>,
    buf: Vec<u8>,
}

pub struct UdpSource {
    sock: Arc<UdpSocket>,
    buf: Vec<u8>,
}

/// Both halves over one socket already connected to the receiver's data port.
pub fn client(sock: UdpSocket, size: usize) -> (UdpSink, UdpSource) {
    let sock = Arc::new(sock);
    (
        UdpSink {
            sock: sock.clone(),
            buf: vec![0; size],
        },
        UdpSource {
            sock,
            buf: vec![0; MAX_DATAGRAM],
        },
    )
}

impl RequestSink for UdpSink {
    const FATAL_ERRORS: bool = false;

    async fn send(&mut self, header: MessageHeader) -> io::Result<()> {
        header.encode(&mut self.buf);
        self.sock.send(&self.buf).await.map(|_| ())
    }
}

impl ResponseSource for UdpSource {
    async fn recv(&mut self) -> io::Result<(MessageHeader, u64)> {
        loop {
            let n = self.sock.recv(&mut self.buf).await?;
            let t = mono_now_ns();
            if let Ok(h) = MessageHeader::decode(&self.buf[..n]) {
                if h.kind == MessageKind::Response {
                    return Ok((h, t));
                }
            }
        }
    }
}

/// Answers requests on a socket connected to the one peer registered for
/// the trial (the kernel drops datagrams from anyone else). A response is
/// never longer than its request: no amplification.
pub async fn serve(sock: UdpSocket, size: usize, counters: Arc<ServeCounters>) -> io::Result<()> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let n = match sock.recv(&mut buf).await {
            Ok(n) => n,
            // ICMP port unreachable from a sender that already left.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(e),
        };
        match MessageHeader::decode(&buf[..n]) {
            Ok(h) if h.kind == MessageKind::Request => {
                counters.request(n);
                h.response().encode(&mut buf);
                match sock.send(&buf[..n.min(size)]).await {
                    Ok(_) => counters.response(),
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                    Err(e) => return Err(e),
                }
            }
            _ => counters.rejected(),
        }
    }
}
