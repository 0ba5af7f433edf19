//! `quic-dgram`: a message per QUIC DATAGRAM frame (RFC 9221) through
//! quinn, in one connection: encrypted and congestion controlled like the
//! connection's streams, never retransmitted. What quinn does with a
//! datagram it cannot send is counted apart from what the path loses: a
//! datagram larger than the path's `max_datagram_size` is refused at once
//! (`too_large`); one the congestion window holds back waits in quinn's
//! send buffer, whose oldest is dropped when it is full (offered, never
//! `sent`); one the application reads too slowly is dropped from quinn's
//! receive buffer (`received`, never `read`).

use bytes::Bytes;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use transbench_wire::{DatagramCounts, MessageHeader, MessageKind, TrialToken};

use super::multi::{echo_of, Recording};
use super::{RequestSink, ResponseSource, ServeCounters, TrialPeer};
use crate::clock::mono_now_ns;

/// One side's datagrams: what its application handed to quinn and read,
/// and the connections whose frame counts complete the picture.
#[derive(Default)]
pub struct DatagramLedger {
    offered: AtomicU64,
    too_large: AtomicU64,
    read: AtomicU64,
    conns: Mutex<Vec<quinn::Connection>>,
}

impl DatagramLedger {
    /// Counts `conn`'s frames in [`DatagramLedger::counts`].
    pub fn watch(&self, conn: &quinn::Connection) {
        self.conns.lock().expect("ledger lock").push(conn.clone());
    }

    /// Hands one datagram to quinn: `Ok(false)` when quinn refused it as
    /// larger than the path's `max_datagram_size` now (counted; path MTU
    /// discovery may raise it later), an error when the connection cannot
    /// send at all.
    pub fn send(&self, conn: &quinn::Connection, datagram: &[u8]) -> io::Result<bool> {
        match conn.send_datagram(Bytes::copy_from_slice(datagram)) {
            Ok(()) => {
                self.offered.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Err(quinn::SendDatagramError::TooLarge) => {
                self.too_large.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => Err(io::Error::other(e)),
        }
    }

    /// The next datagram `conn` received, and when.
    pub async fn recv(&self, conn: &quinn::Connection) -> io::Result<(Bytes, u64)> {
        let d = conn.read_datagram().await.map_err(io::Error::other)?;
        self.read.fetch_add(1, Ordering::Relaxed);
        Ok((d, mono_now_ns()))
    }

    /// The counts so far: the application's, and quinn's frames on every
    /// connection watched.
    pub fn counts(&self) -> DatagramCounts {
        let (mut sent, mut received) = (0, 0);
        for c in self.conns.lock().expect("ledger lock").iter() {
            let stats = c.stats();
            sent += stats.frame_tx.datagram;
            received += stats.frame_rx.datagram;
        }
        DatagramCounts {
            offered: self.offered.load(Ordering::Relaxed),
            too_large: self.too_large.load(Ordering::Relaxed),
            sent,
            received,
            read: self.read.load(Ordering::Relaxed),
        }
    }
}

/// Request/response: each request a datagram, each response one back.
pub struct DatagramSink {
    conn: quinn::Connection,
    ledger: Arc<DatagramLedger>,
    buf: Vec<u8>,
}

pub struct DatagramSource {
    conn: quinn::Connection,
    ledger: Arc<DatagramLedger>,
}

pub fn client(
    conn: quinn::Connection,
    size: usize,
    ledger: Arc<DatagramLedger>,
) -> (DatagramSink, DatagramSource) {
    ledger.watch(&conn);
    (
        DatagramSink {
            conn: conn.clone(),
            ledger: ledger.clone(),
            buf: vec![0; size],
        },
        DatagramSource { conn, ledger },
    )
}

impl RequestSink for DatagramSink {
    const FATAL_ERRORS: bool = false;

    /// A request quinn refuses as too large is lost, and counted as such.
    async fn send(&mut self, header: MessageHeader) -> io::Result<()> {
        header.encode(&mut self.buf);
        self.ledger.send(&self.conn, &self.buf).map(|_| ())
    }
}

impl ResponseSource for DatagramSource {
    async fn recv(&mut self) -> io::Result<(MessageHeader, u64)> {
        loop {
            let (d, t) = self.ledger.recv(&self.conn).await?;
            if let Ok(h) = MessageHeader::decode(&d) {
                if h.kind == MessageKind::Response {
                    return Ok((h, t));
                }
            }
        }
    }
}

/// The receiver's side of request/response: answers each request of the
/// trial with a datagram of `size` bytes (or the request's, if smaller).
pub async fn serve(
    endpoint: quinn::Endpoint,
    peer: TrialPeer,
    size: usize,
    counters: Arc<ServeCounters>,
    ledger: Arc<DatagramLedger>,
) {
    let (shared, token) = (counters.clone(), peer.token);
    super::quic::accept_from(endpoint, peer, &counters, move |incoming| {
        let (counters, ledger) = (shared.clone(), ledger.clone());
        async move {
            let Ok(conn) = incoming.await else { return };
            counters.connection();
            ledger.watch(&conn);
            let mut buf = vec![0u8; size];
            while let Ok((d, _)) = ledger.recv(&conn).await {
                match answer(&d, token, &mut buf) {
                    Some((request, n)) => {
                        counters.request_arrived(&request, d.len());
                        if let Ok(true) = ledger.send(&conn, &buf[..n]) {
                            counters.response();
                        }
                    }
                    None => counters.discarded(),
                }
            }
        }
    })
    .await
}

/// The request's header, and its response in `buf` with the response's
/// length; `None` when it is not a request of the trial.
fn answer(request: &[u8], token: TrialToken, buf: &mut [u8]) -> Option<(MessageHeader, usize)> {
    let h = MessageHeader::decode(request).ok()?;
    if h.token != token || h.kind != MessageKind::Request {
        return None;
    }
    h.response().encode(buf);
    Some((h, request.len().min(buf.len())))
}

/// The receiver's side of one-way workloads: records every datagram of
/// the trial, echoing its header when the trial measures round trips.
pub async fn record(endpoint: quinn::Endpoint, peer: TrialPeer, rec: Recording, ledger: Arc<DatagramLedger>) {
    let counters = rec.counters.clone();
    super::quic::accept_from(endpoint, peer, &counters, move |incoming| {
        let (rec, ledger) = (rec.clone(), ledger.clone());
        async move {
            let Ok(conn) = incoming.await else { return };
            rec.counters.connection();
            ledger.watch(&conn);
            read_into(&conn, &rec, &ledger).await;
        }
    })
    .await
}

/// Records every datagram `conn` brings, until it closes; with
/// `rec.echo`, answers each with its header.
pub async fn read_into(conn: &quinn::Connection, rec: &Recording, ledger: &DatagramLedger) {
    while let Ok((d, t)) = ledger.recv(conn).await {
        // Garbage costs only its datagram; so does an echo quinn refuses.
        if let Ok(h) = rec.deliver(&d, t) {
            if rec.echo {
                let _ = ledger.send(conn, &echo_of(&h));
            }
        }
    }
}

/// One-way sender: every logical stream's messages as datagrams on one
/// connection, in the order offered. One quinn refuses as too large is
/// lost, and counted as such; a connection that cannot send ends it.
pub async fn writer(
    conn: quinn::Connection,
    ledger: Arc<DatagramLedger>,
    mut rx: mpsc::UnboundedReceiver<(u32, Vec<u8>)>,
) -> io::Result<()> {
    while let Some((_, m)) = rx.recv().await {
        ledger.send(&conn, &m)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_trials_requests_are_answered() {
        let token = TrialToken::from_bytes(*b"trial-42");
        let mut request = vec![0u8; 100];
        MessageHeader::request(token, 0, 7, 1).encode(&mut request);
        let mut buf = vec![0u8; 64];
        assert_eq!(
            answer(&request, token, &mut buf).map(|(h, n)| (h.seq, n)),
            Some((7, 64)),
            "at most the trial's size"
        );
        let h = MessageHeader::decode(&buf).unwrap();
        assert_eq!((h.kind, h.seq), (MessageKind::Response, 7));
        let other = TrialToken::from_bytes(*b"trial-43");
        assert_eq!(answer(&request, other, &mut buf), None);
        assert_eq!(answer(&request[..10], token, &mut buf), None, "garbage");
        let mut response = vec![0u8; 64];
        MessageHeader::request(token, 0, 7, 1)
            .response()
            .encode(&mut response);
        assert_eq!(
            answer(&response, token, &mut buf),
            None,
            "a response is no request"
        );
    }
}
