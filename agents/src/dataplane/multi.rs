//! The data plane of the multistream workload: N logical streams of
//! messages, one way. The sender's pacer hands each message to a writer
//! task without waiting (so one blocked stream or connection never delays
//! the schedule of the others); the receiver reads every stream
//! concurrently and records when each message reached it.
//!
//! - `tcp-mux`, `tcp+tls-mux`: one connection, HTTP/2-style frames
//!   ([`transbench_wire::mux`]), a round-robin writer over the streams;
//! - `tcp-n`: one connection per stream, length-prefixed messages;
//! - `quic`: one unidirectional QUIC stream per logical stream;
//! - `udp`: one flow (socket) per stream, a datagram per message.

use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use transbench_wire::delivery::Delivery;
use transbench_wire::frame::PREFIX_LEN;
use transbench_wire::mux::{MuxReader, MuxWriter, MAX_FRAME_PAYLOAD};
use transbench_wire::{printable, LengthPrefix, MessageHeader, MessageKind, TrialToken, HEADER_LEN};

use super::stream::read_frame;
use super::{ErrorLog, ServeCounters, TrialPeer};
use crate::clock::mono_now_ns;

/// Most logical streams in a trial.
pub const MAX_STREAMS: u32 = 64;

/// A message on its way to a writer: its stream and its bytes.
type Outgoing = (u32, Vec<u8>);

/// Where the pacer hands messages: a channel per writer task (one for all
/// streams on `tcp-mux`, one per stream elsewhere).
#[derive(Default)]
pub struct Writers {
    channels: Vec<mpsc::UnboundedSender<Outgoing>>,
    tasks: JoinSet<io::Result<()>>,
}

impl Writers {
    /// Starts a writer task fed by a channel of its own.
    pub fn spawn<F>(&mut self, writer: impl FnOnce(mpsc::UnboundedReceiver<Outgoing>) -> F)
    where
        F: Future<Output = io::Result<()>> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        self.channels.push(tx);
        self.tasks.spawn(writer(rx));
    }

    /// Queues `message` for `stream`; `false` if its writer has failed.
    pub fn offer(&self, stream: u32, message: Vec<u8>) -> bool {
        let channel = &self.channels[stream as usize % self.channels.len()];
        channel.send((stream, message)).is_ok()
    }

    /// Closes the channels and waits, at most `within`, for every writer to
    /// hand its last message to the transport; what a writer still holds
    /// then is abandoned (and never delivered).
    pub async fn finish(mut self, within: Duration) -> ErrorLog {
        self.channels.clear();
        let mut log = ErrorLog::default();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(None) => break,
                Ok(Some(Ok(Ok(())))) => {}
                Ok(Some(Ok(Err(e)))) => log.note("send", &e),
                Ok(Some(Err(e))) => log.note("writer task", &e),
                Err(_) => {
                    // Not an error of the measurement: the transport did not
                    // carry the offered load, and what it still held counts
                    // as lost.
                    tracing::warn!(
                        "messages were still queued {within:?} after the last one was due: the \
                         transport fell behind the offered load, or its connection stalled"
                    );
                    break;
                }
            }
        }
        log
    }
}

/// One connection for all streams: frames in round-robin order, one
/// frame per stream with data per turn.
pub async fn mux_writer<W: AsyncWrite + Unpin>(
    mut w: W,
    streams: u32,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) -> io::Result<()> {
    let mut mux = MuxWriter::new(streams);
    let mut batch = Vec::with_capacity(streams as usize * (MAX_FRAME_PAYLOAD + 8));
    loop {
        if mux.pending() == 0 {
            match rx.recv().await {
                Some((s, m)) => mux.push(s, m),
                None => break,
            }
        }
        // Whatever queued while the socket was busy joins this round.
        while let Ok((s, m)) = rx.try_recv() {
            mux.push(s, m);
        }
        batch.clear();
        for _ in 0..streams {
            if !mux.next_frame(&mut batch) {
                break;
            }
        }
        w.write_all(&batch).await?;
        w.flush().await?;
    }
    w.shutdown().await
}

/// One byte stream for one logical stream: length-prefixed messages of
/// `size` bytes.
pub async fn framed_writer<W: AsyncWrite + Unpin>(
    mut w: W,
    size: usize,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) -> io::Result<()> {
    let framing = LengthPrefix::new(size as u32);
    let mut frame = Vec::with_capacity(PREFIX_LEN + size);
    while let Some((_, m)) = rx.recv().await {
        frame.clear();
        framing
            .encode(&m, &mut frame)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        w.write_all(&frame).await?;
        w.flush().await?;
    }
    w.shutdown().await
}

/// One flow for one logical stream: a datagram per message.
pub async fn datagram_writer(
    sock: Arc<UdpSocket>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) -> io::Result<()> {
    let mut errors = 0u64;
    while let Some((_, m)) = rx.recv().await {
        // A datagram that cannot be sent is lost, as on the wire.
        if sock.send(&m).await.is_err() {
            errors += 1;
        }
    }
    if errors > 0 {
        return Err(io::Error::other(format!("{errors} datagrams could not be sent")));
    }
    Ok(())
}

/// Receiver side: every message delivered to the application and when, in
/// delivery order, up to a cap.
#[derive(Debug)]
pub struct DeliveryLog {
    inner: Mutex<LogInner>,
    cap: usize,
}

impl Default for DeliveryLog {
    fn default() -> Self {
        DeliveryLog::with_cap(MAX_RECORDS)
    }
}

#[derive(Debug, Default)]
struct LogInner {
    records: Vec<Delivery>,
    distinct: HashSet<(u32, u64)>,
}

/// Records kept per trial at most (with the set of distinct messages,
/// about 300 MB); beyond, messages are counted as discarded.
pub const MAX_RECORDS: usize = 5_000_000;

impl DeliveryLog {
    /// Keeps at most `cap` records (and never more than [`MAX_RECORDS`]).
    pub fn with_cap(cap: usize) -> Self {
        DeliveryLog {
            inner: Mutex::default(),
            cap: cap.min(MAX_RECORDS),
        }
    }

    /// [`DeliveryLog::with_cap`], with room for `expected` records made
    /// now: growing by doubling mid-trial copies every record (and rehashes
    /// the set) while nobody reads the socket, tens of ms at a million
    /// datagrams, enough to overflow its buffer.
    pub fn sized(expected: usize, cap: usize) -> Self {
        let log = DeliveryLog::with_cap(cap);
        let room = expected.min(log.cap);
        {
            let mut inner = log.inner.lock().expect("delivery log lock");
            inner.records.reserve_exact(room);
            inner.distinct.reserve(room);
        }
        log
    }

    fn record(&self, h: &MessageHeader, t: u64, counters: &ServeCounters, bytes: usize) {
        let mut inner = self.inner.lock().expect("delivery log lock");
        if inner.records.len() >= self.cap {
            counters.discarded();
            return;
        }
        inner.records.push(Delivery {
            stream: h.stream,
            seq: h.seq,
            delivered_ns: t,
        });
        inner.distinct.insert((h.stream, h.seq));
        counters.request(bytes);
    }

    /// Distinct messages delivered so far.
    pub fn distinct(&self) -> u64 {
        self.inner.lock().expect("delivery log lock").distinct.len() as u64
    }

    /// Waits until `expect` distinct messages have arrived, at most `within`.
    pub async fn await_distinct(&self, expect: u64, within: Duration) {
        super::poll_until(within, || self.distinct() >= expect).await;
    }

    pub fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut self.inner.lock().expect("delivery log lock").records)
    }
}

/// What a receiving task needs: the stream count, the message size, what
/// the messages must be, whether to echo them, and where to record.
#[derive(Clone)]
pub struct Recording {
    pub streams: u32,
    pub size: usize,
    /// Requests at the receiver; responses (echoes) at a sender that
    /// measures round trips.
    pub kind: MessageKind,
    /// Receiver of a round-trip trial: answer each message with its
    /// header, at once, on the same stream or flow.
    pub echo: bool,
    /// The trial's: every message must carry it.
    pub token: TrialToken,
    pub log: Arc<DeliveryLog>,
    pub counters: Arc<ServeCounters>,
}

impl Recording {
    /// Checks and records one of the trial's own messages (it came on a
    /// connection that showed the token, or carries it); an error means
    /// garbage from the trial's own peer (counted as discarded).
    pub(crate) fn deliver(&self, message: &[u8], t: u64) -> io::Result<MessageHeader> {
        match MessageHeader::decode(message) {
            Ok(h) if h.kind == self.kind && h.stream < self.streams && h.token == self.token => {
                self.log.record(&h, t, &self.counters, message.len());
                Ok(h)
            }
            _ => {
                self.counters.discarded();
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "peer sent a message that is not a transbench multistream message",
                ))
            }
        }
    }
}

/// The echo of a message: its header as a response.
pub(crate) fn echo_of(h: &MessageHeader) -> [u8; HEADER_LEN] {
    let mut bytes = [0u8; HEADER_LEN];
    h.response().encode(&mut bytes);
    bytes
}

/// Reads a `tcp-mux` connection until it ends; with `echo_to`, answers
/// every message there, in mux frames.
pub async fn read_mux<R, W>(mut r: R, mut echo_to: Option<W>, rec: Recording) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = MuxReader::new(rec.streams, rec.size);
    let echoing = echo_to.is_some();
    let mut echoes = MuxWriter::new(rec.streams);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        // Everything completed by this read reached the application now.
        let t = mono_now_ns();
        let mut outcome = Ok(());
        reader
            .feed(&buf[..n], |_, m| {
                if outcome.is_ok() {
                    outcome = rec.deliver(m, t).map(|h| {
                        if echoing {
                            echoes.push(h.stream, echo_of(&h).to_vec());
                        }
                    });
                }
            })
            .map_err(|e| {
                rec.counters.discarded();
                io::Error::new(io::ErrorKind::InvalidData, e)
            })?;
        outcome?;
        if let Some(w) = echo_to.as_mut() {
            out.clear();
            while echoes.next_frame(&mut out) {}
            w.write_all(&out).await?;
            w.flush().await?;
        }
    }
}

/// Reads one length-prefixed stream (`tcp-n`, a QUIC stream) until it
/// ends; with `echo_to`, answers every message there.
pub async fn read_framed<R, W>(mut r: R, mut echo_to: Option<W>, rec: Recording) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let framing = LengthPrefix::new(rec.size as u32);
    let mut msg = Vec::with_capacity(rec.size);
    let mut out = Vec::with_capacity(PREFIX_LEN + HEADER_LEN);
    while read_frame(&mut r, framing, &mut msg).await?.is_some() {
        let h = rec.deliver(&msg, mono_now_ns())?;
        if let Some(w) = echo_to.as_mut() {
            out.clear();
            framing
                .encode(&echo_of(&h), &mut out)
                .expect("an echo is shorter than any message");
            w.write_all(&out).await?;
            w.flush().await?;
        }
    }
    Ok(())
}

/// Reads datagrams from the peer's flows, one per stream; with
/// `rec.echo`, answers each to its flow. A datagram counts as the trial's
/// only if it comes from the peer's address and carries the trial's token;
/// a stream's flow is the address and port its first such datagram came
/// from, and the only one answered. Anything else is a stranger's:
/// dropped, counted as rejected, never answered.
pub async fn read_datagrams(sock: Arc<UdpSocket>, peer_ip: IpAddr, rec: Recording) -> io::Result<()> {
    let mut receiver = super::udp::BatchReceiver::new(&sock)?;
    let mut flows: Vec<Option<SocketAddr>> = vec![None; rec.streams as usize];
    let mut echoes: Vec<([u8; HEADER_LEN], SocketAddr)> = Vec::new();
    loop {
        receiver
            .recv(&sock, |datagram, from, t| {
                let shown = match MessageHeader::decode(datagram) {
                    Ok(h) if from.ip() == peer_ip && h.token == rec.token => h,
                    _ => return rec.counters.rejected(),
                };
                if let Some(flow) = flows.get_mut(shown.stream as usize) {
                    if *flow.get_or_insert(from) != from {
                        return rec.counters.rejected();
                    }
                }
                // Garbage in a datagram costs only that datagram.
                if let Ok(h) = rec.deliver(datagram, t) {
                    if rec.echo {
                        echoes.push((echo_of(&h), from));
                    }
                }
            })
            .await?;
        // So does an echo the kernel refuses.
        for (echo, to) in echoes.drain(..) {
            let _ = sock.send_to(&echo, to).await;
        }
    }
}

/// Accepts the sender's QUIC connection and reads every stream in a task
/// of its own: a sequential reader would put back the head-of-line
/// blocking QUIC removes.
pub async fn serve_quic(endpoint: quinn::Endpoint, peer: TrialPeer, rec: Recording) {
    let counters = rec.counters.clone();
    super::quic::accept_from(endpoint, peer, &counters, move |incoming| {
        let rec = rec.clone();
        async move {
            let Ok(conn) = incoming.await else { return };
            rec.counters.connection();
            let mut readers = JoinSet::new();
            while let Ok((send, recv)) = conn.accept_bi().await {
                let rec = rec.clone();
                readers.spawn(async move {
                    let echo_to = rec.echo.then_some(send);
                    if let Err(e) = read_framed(recv, echo_to, rec).await {
                        tracing::debug!("QUIC stream ended: {}", printable(&e.to_string()));
                    }
                });
            }
            while readers.join_next().await.is_some() {}
        }
    })
    .await
}

/// The message bytes for `header`, padded to `size`.
pub fn message(header: MessageHeader, size: usize) -> Vec<u8> {
    let mut m = vec![0u8; size];
    header.encode(&mut m);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: TrialToken = TrialToken::from_bytes(*b"trial-42");

    fn recording(streams: u32) -> Recording {
        Recording {
            streams,
            size: 100,
            kind: MessageKind::Request,
            echo: false,
            token: T,
            log: Arc::new(DeliveryLog::default()),
            counters: Arc::new(ServeCounters::default()),
        }
    }

    #[tokio::test]
    async fn mux_carries_every_stream_over_one_pipe() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let rec = recording(3);
        let reader = tokio::spawn(read_mux(server, None::<tokio::io::Sink>, rec.clone()));
        let mut writers = Writers::default();
        writers.spawn(|rx| mux_writer(client, 3, rx));
        for seq in 0..4 {
            for s in 0..3 {
                assert!(writers.offer(s, message(MessageHeader::request(T, s, seq, 1), 100)));
            }
        }
        assert_eq!(writers.finish(Duration::from_secs(5)).await.count, 0);
        reader.await.unwrap().unwrap();
        let got = rec.log.take();
        assert_eq!(got.len(), 12);
        for s in 0..3 {
            let seqs: Vec<u64> = got.iter().filter(|d| d.stream == s).map(|d| d.seq).collect();
            assert_eq!(seqs, vec![0, 1, 2, 3]);
        }
        assert_eq!(rec.counters.report(0).bytes, 1200);
    }

    #[tokio::test]
    async fn a_round_trip_receiver_echoes_every_message_on_its_stream() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (server_r, server_w) = tokio::io::split(server);
        let receiver = Recording {
            echo: true,
            ..recording(2)
        };
        tokio::spawn(read_mux(server_r, Some(server_w), receiver.clone()));
        let (client_r, client_w) = tokio::io::split(client);
        let sender = Recording {
            kind: MessageKind::Response,
            ..recording(2)
        };
        let echoes = tokio::spawn(read_mux(client_r, None::<tokio::io::Sink>, sender.clone()));
        let mut writers = Writers::default();
        writers.spawn(|rx| mux_writer(client_w, 2, rx));
        for seq in 0..3 {
            for s in 0..2 {
                writers.offer(s, message(MessageHeader::request(T, s, seq, 5), 100));
            }
        }
        writers.finish(Duration::from_secs(5)).await;
        for _ in 0..500 {
            if sender.log.distinct() == 6 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        echoes.abort();
        assert_eq!(receiver.log.distinct(), 6);
        let got = sender.log.take();
        assert_eq!(got.len(), 6, "every message echoed once");
        assert!(got.iter().filter(|d| d.stream == 1).map(|d| d.seq).eq(0..3));
        assert_eq!(
            sender.counters.report(0).bytes,
            6 * HEADER_LEN as u64,
            "echoes are headers"
        );
    }

    #[tokio::test]
    async fn datagrams_count_only_with_the_token_and_from_their_streams_flow() {
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let port = sock.local_addr().unwrap().port();
        let rec = Recording {
            echo: true,
            ..recording(2)
        };
        let reader = tokio::spawn(read_datagrams(sock, "127.0.0.1".parse().unwrap(), rec.clone()));
        let flow = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = ("127.0.0.1", port);
        let datagram = |token, stream, seq| message(MessageHeader::request(token, stream, seq, 1), 100);
        let mut echo = [0u8; 100];
        flow.send_to(&datagram(T, 0, 0), to).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(10), flow.recv(&mut echo))
            .await
            .expect("the flow's own message is echoed")
            .unwrap();
        assert_eq!(
            MessageHeader::decode(&echo[..n]).unwrap().kind,
            MessageKind::Response
        );
        // Stream 0's flow is taken; another port is a stranger even with
        // the token, and so is any datagram without it.
        other.send_to(&datagram(T, 0, 1), to).await.unwrap();
        other
            .send_to(&datagram(TrialToken::from_bytes([0; 8]), 1, 0), to)
            .await
            .unwrap();
        other.send_to(b"hello", to).await.unwrap();
        // Stream 1's flow is the first port that shows the token for it.
        other.send_to(&datagram(T, 1, 0), to).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), other.recv(&mut echo))
            .await
            .expect("stream 1's message is echoed")
            .unwrap();
        assert_eq!(
            MessageHeader::decode(&echo[..n]).unwrap().stream,
            1,
            "the first echo the other port gets is stream 1's"
        );
        reader.abort();
        let report = rec.counters.report(0);
        assert_eq!((report.requests, report.rejected, report.discarded), (2, 3, 0));
    }

    #[tokio::test]
    async fn framed_stream_records_and_refuses_garbage() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let rec = recording(2);
        let reader = tokio::spawn(read_framed(server, None::<tokio::io::Sink>, rec.clone()));
        let mut writers = Writers::default();
        writers.spawn(|rx| framed_writer(client, 100, rx));
        writers.offer(1, message(MessageHeader::request(T, 1, 0, 1), 100));
        // A stream id beyond the trial's count is garbage.
        writers.offer(1, message(MessageHeader::request(T, 7, 1, 1), 100));
        writers.finish(Duration::from_secs(5)).await;
        assert!(reader.await.unwrap().is_err());
        assert_eq!(rec.log.distinct(), 1);
        assert_eq!(rec.counters.report(0).discarded, 1);
    }
}
