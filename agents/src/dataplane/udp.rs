//! Raw UDP: one datagram per request and per response.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use tokio::net::UdpSocket;
use transbench_wire::{MessageHeader, MessageKind, TrialToken};

use super::{RequestSink, ResponseSource, ServeCounters};
use crate::clock::mono_now_ns;
use crate::transport::MAX_DATAGRAM;

pub struct UdpSink {
    sock: Arc<UdpSocket>,
    buf: Vec<u8>,
}

pub struct UdpSource {
    sock: Arc<UdpSocket>,
    buf: Vec<u8>,
}

/// Both halves over one socket already connected to the receiver's data
/// port. The socket asks for the path's ICMP errors (IP_RECVERR), as an
/// application that wants to hear of an unreachable peer does: without
/// it Linux keeps host unreachable, a soft error, from a UDP socket, and
/// a rejecting path looks like a blackhole.
pub fn client(sock: UdpSocket, size: usize) -> io::Result<(UdpSink, UdpSource)> {
    let (level, option) = match sock.local_addr()? {
        std::net::SocketAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_RECVERR),
        std::net::SocketAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_RECVERR),
    };
    crate::transport::sockopt::set_int(&sock, level, option, 1)?;
    let sock = Arc::new(sock);
    Ok((
        UdpSink {
            sock: sock.clone(),
            buf: vec![0; size],
        },
        UdpSource {
            sock,
            buf: vec![0; MAX_DATAGRAM],
        },
    ))
}

/// After an ICMP report: empties the socket's error queue, where
/// IP_RECVERR keeps each ICMP error, charged to the socket's receive
/// buffer, until read; left there they would crowd out responses.
fn drain_error_queue(sock: &UdpSocket) {
    let mut buf = [0u8; 64];
    loop {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: a zeroed msghdr is valid (no name, no control).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        // SAFETY: recvmsg into buffers we own, on a socket we hold open.
        let n = unsafe {
            libc::recvmsg(
                sock.as_raw_fd(),
                &mut msg,
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return;
        }
    }
}

/// `e`, having emptied the error queue if it is an ICMP report.
fn after_error(sock: &UdpSocket, e: io::Error) -> io::Error {
    if super::failure::reported_by_icmp(&e) {
        drain_error_queue(sock);
    }
    e
}

impl RequestSink for UdpSink {
    const FATAL_ERRORS: bool = false;

    async fn send(&mut self, header: MessageHeader) -> io::Result<()> {
        header.encode(&mut self.buf);
        match self.sock.send(&self.buf).await {
            Ok(_) => Ok(()),
            Err(e) => Err(after_error(&self.sock, e)),
        }
    }
}

impl ResponseSource for UdpSource {
    /// An ICMP report is news of one datagram: the socket works on.
    const FATAL_ERRORS: bool = false;

    async fn recv(&mut self) -> io::Result<(MessageHeader, u64)> {
        loop {
            let n = self
                .sock
                .recv(&mut self.buf)
                .await
                .map_err(|e| after_error(&self.sock, e))?;
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
/// the trial (the kernel drops datagrams from anyone else), and only those
/// that carry the trial's token. A response is never longer than its
/// request: no amplification.
pub async fn serve(
    sock: UdpSocket,
    size: usize,
    token: TrialToken,
    counters: Arc<ServeCounters>,
) -> io::Result<()> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let n = match sock.recv(&mut buf).await {
            Ok(n) => n,
            // ICMP port unreachable from a sender that already left.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(e),
        };
        match MessageHeader::decode(&buf[..n]) {
            Ok(h) if h.token == token && h.kind == MessageKind::Request => {
                counters.request_arrived(&h, n);
                h.response().encode(&mut buf);
                match sock.send(&buf[..n.min(size)]).await {
                    Ok(_) => counters.response(),
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(h) if h.token == token => counters.discarded(),
            _ => counters.rejected(),
        }
    }
}
/// Receive buffer asked for on one-way UDP receivers: at a gigabit,
/// the kernel's default (~200 KB) overflows in under 2 ms of scheduling
/// delay.
pub const RECEIVE_BUFFER: usize = 16 * 1024 * 1024;

/// Enlarges the socket's receive buffer: beyond `net.core.rmem_max` when
/// privileged (SO_RCVBUFFORCE), else up to it.
pub fn enlarge_receive_buffer<S: AsFd + AsRawFd>(sock: &S, bytes: usize) {
    let forced = crate::transport::sockopt::set_int(
        sock,
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        bytes as libc::c_int,
    );
    if forced.is_err() {
        let _ = socket2::SockRef::from(sock).set_recv_buffer_size(bytes);
    }
}

/// Sends equal-sized datagrams to one destination, many per system call
/// with UDP GSO (generic segmentation offload) where asked for and the
/// kernel has it; one per call otherwise.
pub struct DatagramBatcher {
    sock: UdpSocket,
    state: quinn_udp::UdpSocketState,
    destination: std::net::SocketAddr,
    gso: bool,
}

impl DatagramBatcher {
    /// `sock` is connected to `destination`.
    pub fn new(sock: UdpSocket, destination: std::net::SocketAddr, gso: bool) -> io::Result<Self> {
        let state = quinn_udp::UdpSocketState::new((&sock).into())?;
        Ok(DatagramBatcher {
            sock,
            state,
            destination,
            gso,
        })
    }

    /// Datagrams of `size` bytes one call can carry: with GSO, as many as
    /// the kernel segments at once within 64 KiB; else 1.
    pub fn max_batch(&self, size: usize) -> usize {
        if self.gso {
            self.state.max_gso_segments().min(65_000 / size).max(1)
        } else {
            1
        }
    }

    /// Sends `contents`: back-to-back datagrams of `size` bytes.
    pub async fn send(&self, contents: &[u8], size: usize) -> io::Result<()> {
        let transmit = quinn_udp::Transmit {
            destination: self.destination,
            ecn: None,
            contents,
            segment_size: (contents.len() > size).then_some(size),
            src_ip: None,
        };
        loop {
            self.sock.writable().await?;
            match self.sock.try_io(tokio::io::Interest::WRITABLE, || {
                self.state.try_send((&self.sock).into(), &transmit)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }
}

/// Buffers a [`BatchReceiver`] reads into at once (recvmmsg).
const RECEIVE_BATCH: usize = 16;
/// Each buffer holds a datagram, or with GRO up to 64 KiB of one flow's.
const RECEIVE_BUFFER_BYTES: usize = 64 * 1024;

/// Reads datagrams many at a time: several per system call (recvmmsg)
/// and, where the kernel has UDP GRO, many of one flow per buffer, cut at
/// their original boundaries. Every datagram of a call gets the call's
/// arrival time.
pub struct BatchReceiver {
    state: quinn_udp::UdpSocketState,
    bufs: Vec<Vec<u8>>,
    meta: Vec<quinn_udp::RecvMeta>,
}

impl BatchReceiver {
    pub fn new(sock: &UdpSocket) -> io::Result<Self> {
        Ok(BatchReceiver {
            state: quinn_udp::UdpSocketState::new(sock.into())?,
            bufs: vec![vec![0; RECEIVE_BUFFER_BYTES]; RECEIVE_BATCH],
            meta: vec![quinn_udp::RecvMeta::default(); RECEIVE_BATCH],
        })
    }

    /// Waits for datagrams and hands each to `each` with its source and
    /// arrival time (CLOCK_MONOTONIC ns).
    pub async fn recv(
        &mut self,
        sock: &UdpSocket,
        mut each: impl FnMut(&[u8], std::net::SocketAddr, u64),
    ) -> io::Result<()> {
        let BatchReceiver { state, bufs, meta } = self;
        let n = loop {
            sock.readable().await?;
            let mut slices: Vec<io::IoSliceMut<'_>> =
                bufs.iter_mut().map(|b| io::IoSliceMut::new(b)).collect();
            match sock.try_io(tokio::io::Interest::READABLE, || {
                state.recv(sock.into(), &mut slices, meta)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        let t = mono_now_ns();
        for (m, buf) in meta[..n].iter().zip(bufs.iter()) {
            for datagram in buf[..m.len].chunks(m.stride.max(1)) {
                each(datagram, m.addr, t);
            }
        }
        Ok(())
    }
}
