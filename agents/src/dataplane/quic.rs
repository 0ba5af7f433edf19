//! QUIC (quinn): by default a new bidirectional stream per request, each
//! carrying one length-prefixed request and its response; optionally one
//! long-lived stream carrying all of them, like TCP.

use futures_util::stream::{FuturesUnordered, StreamExt};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use tokio::task::JoinSet;
use transbench_wire::frame::PREFIX_LEN;
use transbench_wire::{printable, LengthPrefix, MessageHeader, MessageKind, TOKEN_LEN};

use super::handover::{handover, HandoverReceiver, HandoverSender};
use super::stream::read_frame;
use super::{ErrorLog, RequestSink, ResponseSource, ServeCounters, TrialPeer};
use crate::clock::mono_now_ns;

/// Opens a stream per request and writes the request on it; the stream's
/// receiving side goes to the [`ExchangeSource`], which reads every open
/// exchange at once, so a stalled stream delays only its own request.
/// Opening waits for stream credit (like a TCP write waits for window):
/// that wait is send lag.
pub struct PerRequestSink {
    conn: quinn::Connection,
    size: usize,
    opened: HandoverSender<quinn::RecvStream>,
    stream_errors: Arc<Mutex<ErrorLog>>,
    reconnecting: bool,
    /// The request being written, and its frame: kept between requests.
    msg: Vec<u8>,
    frame: Vec<u8>,
}

type Exchange = Pin<Box<dyn Future<Output = io::Result<(MessageHeader, u64)>> + Send>>;

/// Reads the responses of the exchanges the sink opened, in the order
/// they arrive. The exchanges are futures polled by whoever awaits
/// [`ResponseSource::recv`], not tasks: an answer wakes the reader
/// directly, and dropping the source stops them.
pub struct ExchangeSource {
    opened: HandoverReceiver<quinn::RecvStream>,
    exchanges: FuturesUnordered<Exchange>,
    size: usize,
    stream_errors: Arc<Mutex<ErrorLog>>,
    reconnecting: bool,
}

/// The sink and the source; failed streams go to `stream_errors`. With
/// `reconnecting`, a stream cut by its connection's loss is that loss's
/// news, which the client redials, not a data-plane error of its own.
pub fn per_request_client(
    conn: quinn::Connection,
    size: usize,
    stream_errors: Arc<Mutex<ErrorLog>>,
    reconnecting: bool,
) -> (PerRequestSink, ExchangeSource) {
    // Not a channel: see `handover`.
    let (opened_tx, opened_rx) = handover();
    (
        PerRequestSink {
            conn,
            size,
            opened: opened_tx,
            stream_errors: stream_errors.clone(),
            reconnecting,
            msg: Vec::with_capacity(size),
            frame: Vec::with_capacity(PREFIX_LEN + size),
        },
        ExchangeSource {
            opened: opened_rx,
            exchanges: FuturesUnordered::new(),
            size,
            stream_errors,
            reconnecting,
        },
    )
}

/// Writes one request, whole, and ends the stream's sending side. Done in
/// the caller's task, before any task switch, so the connection's driver,
/// woken by the write, sends the request next.
async fn write_request(send: &mut quinn::SendStream, frame: &[u8]) -> io::Result<()> {
    send.write_all(frame).await?;
    send.finish().map_err(io::Error::other)
}

async fn read_response(mut recv: quinn::RecvStream, size: usize) -> io::Result<(MessageHeader, u64)> {
    let mut msg = Vec::with_capacity(size);
    read_frame(&mut recv, LengthPrefix::new(size as u32), &mut msg)
        .await?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "stream ended without a response"))?;
    let t = mono_now_ns();
    // Read on to the stream's end (it comes with the response): quinn stops
    // a stream dropped unread and wakes its connection, which then sends a
    // packet of its own instead of leaving the ACK to the next request.
    recv.read_to_end(0).await.map_err(io::Error::other)?;
    let h = MessageHeader::decode(&msg).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if h.kind != MessageKind::Response {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "expected a response"));
    }
    Ok((h, t))
}

fn note_stream_failure(log: &Mutex<ErrorLog>, e: &io::Error, reconnecting: bool) {
    let mut log = log.lock().expect("error log lock");
    let at = mono_now_ns();
    if reconnecting && super::failure::lost_quic_connection(e) {
        log.note_lost_connection(e, at);
    } else {
        log.note_at("QUIC stream", e, at);
    }
}

impl RequestSink for PerRequestSink {
    /// Opening a stream fails only on a closed connection.
    const FATAL_ERRORS: bool = true;

    async fn send(&mut self, header: MessageHeader) -> io::Result<()> {
        let (mut send, recv) = self.conn.open_bi().await?;
        self.msg.resize(self.size, 0);
        header.encode(&mut self.msg);
        self.frame.clear();
        LengthPrefix::new(self.size as u32)
            .encode(&self.msg, &mut self.frame)
            .map_err(io::Error::other)?;
        // A stream's failure is the request's, not the trial's: it is
        // logged, and the tracker counts the request lost.
        if let Err(e) = write_request(&mut send, &self.frame).await {
            note_stream_failure(&self.stream_errors, &e, self.reconnecting);
            return Ok(());
        }
        // The source is gone only when the trial is over.
        self.opened.send(recv);
        Ok(())
    }
}

impl ResponseSource for ExchangeSource {
    /// A stream's failure is logged and loses only its request; the source
    /// ends once the sink is gone and every exchange it opened has ended.
    async fn recv(&mut self) -> io::Result<(MessageHeader, u64)> {
        std::future::poll_fn(|cx| loop {
            let (exchanges, size) = (&mut self.exchanges, self.size);
            let sink_gone = self
                .opened
                .take(|recv| exchanges.push(Box::pin(read_response(recv, size))));
            loop {
                match self.exchanges.poll_next_unpin(cx) {
                    Poll::Ready(Some(Ok(response))) => return Poll::Ready(Ok(response)),
                    Poll::Ready(Some(Err(e))) => {
                        note_stream_failure(&self.stream_errors, &e, self.reconnecting)
                    }
                    Poll::Ready(None) if sink_gone => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::BrokenPipe,
                            "the QUIC request sink is gone",
                        )))
                    }
                    Poll::Ready(None) | Poll::Pending => break,
                }
            }
            // Unless a stream came (or the sink went) meanwhile.
            if self.opened.wait(cx) {
                return Poll::Pending;
            }
        })
        .await
    }
}

/// Accepts a trial endpoint's connections until it closes, each handed to
/// `serve` in a task of its own (reaped as they end). Only the trial's
/// sender: anyone else would load this session's thread and skew its
/// measurement. A connection attempt from another address, or whose first
/// destination connection ID does not start with the trial's token
/// ([`transbench_wire::token`]), is dropped unanswered, before any
/// handshake, and counted as rejected; so is one past the trial's
/// [`TrialPeer::most_open`] (refused).
pub async fn accept_from<F, Fut>(
    endpoint: quinn::Endpoint,
    peer: TrialPeer,
    counters: &ServeCounters,
    mut serve: F,
) where
    F: FnMut(quinn::Incoming) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut conns = JoinSet::new();
    while let Some(incoming) = endpoint.accept().await {
        while conns.try_join_next().is_some() {}
        let shown = incoming.orig_dst_cid();
        let token_shown = shown.get(..TOKEN_LEN).is_some_and(|t| peer.token.matches(t));
        if incoming.remote_address().ip() != peer.ip || !token_shown {
            counters.rejected();
            incoming.ignore();
            continue;
        }
        if conns.len() >= peer.most_open {
            counters.rejected();
            incoming.refuse();
            continue;
        }
        conns.spawn(serve(incoming));
    }
}

/// Serves every connection and stream of a trial's endpoint.
pub async fn serve(endpoint: quinn::Endpoint, peer: TrialPeer, size: usize, counters: Arc<ServeCounters>) {
    let shared = counters.clone();
    accept_from(endpoint, peer, &counters, move |incoming| {
        let counters = shared.clone();
        async move {
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!("QUIC handshake failed: {}", printable(&e.to_string()));
                    return;
                }
            };
            counters.connection();
            // The connection's streams are served in its own task, as
            // futures: no task per stream, and a request's arrival wakes
            // the code that answers it.
            let mut streams = FuturesUnordered::new();
            loop {
                tokio::select! {
                    accepted = conn.accept_bi() => {
                        let Ok((mut send, recv)) = accepted else { break };
                        let counters = counters.clone();
                        streams.push(async move {
                            if super::stream::serve(recv, &mut send, size, peer.token, counters)
                                .await
                                .is_ok()
                            {
                                let _ = send.finish();
                            }
                        });
                    }
                    Some(()) = streams.next(), if !streams.is_empty() => {}
                }
            }
        }
    })
    .await
}
