//! Bulk flows: one side writes an open byte stream as fast as the
//! transport takes it; the other's application reads it. Each side counts
//! the bytes of each flow its application handled (read, or written) in
//! bins of [`BIN_NS`] from the trial's start. The sender opens every flow,
//! whichever way it runs, and begins it with the flow's index (4 bytes,
//! big-endian), which tells the receiver whether to read the flow or to
//! write it ([`BulkDirection::of_flow`]). An up flow ends when the sender
//! finishes it; the receiver then closes its side, which tells a TCP
//! sender that every byte was read. A down flow ends when the receiver
//! has written for the trial's warm-up and duration from its Start.

use bytes::Bytes;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use transbench_wire::control::BIN_NS;
use transbench_wire::BulkDirection;

use super::ServeCounters;
use crate::clock::mono_now_ns;

/// What the receiver reads at once.
pub const READ_BUFFER: usize = 256 * 1024;

/// Bytes each flow's application read or wrote, per bin, from
/// [`FlowMeter::start`].
pub struct FlowMeter {
    start_ns: AtomicU64,
    started: AtomicBool,
    /// Wakes the flows waiting for the start, and waiters for the end.
    changed: tokio::sync::Notify,
    bins: Vec<Vec<AtomicU64>>,
    /// Flows read to their end, or written to it.
    finished: AtomicU32,
}

impl FlowMeter {
    /// `flows` flows of `bins` bins each; bytes past the last bin count in
    /// it.
    pub fn new(flows: u32, bins: usize) -> Self {
        FlowMeter {
            start_ns: AtomicU64::new(mono_now_ns()),
            started: AtomicBool::new(false),
            changed: tokio::sync::Notify::new(),
            bins: (0..flows)
                .map(|_| (0..bins.max(1)).map(|_| AtomicU64::new(0)).collect())
                .collect(),
            finished: AtomicU32::new(0),
        }
    }

    /// Bins count from now (the receiver took the trial's Start, or the
    /// sender sent it); bytes read before it are in the first bin.
    pub fn start(&self) {
        self.start_ns.store(mono_now_ns(), Ordering::Relaxed);
        self.started.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Waits for [`FlowMeter::start`]; returns its time.
    async fn started(&self) -> u64 {
        loop {
            let notified = self.changed.notified();
            if self.started.load(Ordering::Acquire) {
                return self.start_ns.load(Ordering::Relaxed);
            }
            notified.await;
        }
    }

    pub fn flows(&self) -> u32 {
        self.bins.len() as u32
    }

    fn add(&self, flow: u32, bytes: u64, now_ns: u64) {
        let bins = &self.bins[flow as usize];
        let i = (now_ns.saturating_sub(self.start_ns.load(Ordering::Relaxed)) / BIN_NS) as usize;
        bins[i.min(bins.len() - 1)].fetch_add(bytes, Ordering::Relaxed);
    }

    fn finish(&self) {
        self.finished.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// Waits until every flow has finished, at most `wait`.
    pub async fn await_finished(&self, wait: std::time::Duration) {
        let all = self.flows();
        let _ = tokio::time::timeout(wait, async {
            loop {
                let notified = self.changed.notified();
                if self.finished.load(Ordering::Acquire) >= all {
                    return;
                }
                notified.await;
            }
        })
        .await;
    }

    /// Each flow's bins, without the empty ones at the end.
    pub fn take(&self) -> Vec<Vec<u64>> {
        self.bins
            .iter()
            .map(|flow| {
                let mut bins: Vec<u64> = flow.iter().map(|b| b.load(Ordering::Relaxed)).collect();
                while bins.last() == Some(&0) {
                    bins.pop();
                }
                bins
            })
            .collect()
    }
}

/// Where a flow's bytes go. A byte stream copies each write into the
/// kernel or TLS; a QUIC stream takes another reference to the one shared
/// chunk and sends from it, as quinn's own perf tool does: a copy quinn
/// does not need would be the tool's cost, not the transport's.
pub(crate) trait FlowSink {
    async fn put(&mut self, chunk: &Bytes) -> io::Result<()>;
}

/// Where a flow's bytes come from, counted and dropped: a byte stream's
/// reads into a buffer, or the chunks quinn already holds.
pub(crate) trait FlowSource {
    /// Bytes taken; 0 at the flow's end.
    async fn take(&mut self) -> io::Result<usize>;
}

/// A TCP or TLS stream, written by copying.
pub(crate) struct Copying<'a, W>(pub &'a mut W);

impl<W: AsyncWrite + Unpin> FlowSink for Copying<'_, W> {
    async fn put(&mut self, chunk: &Bytes) -> io::Result<()> {
        self.0.write_all(chunk).await
    }
}

impl FlowSink for quinn::SendStream {
    async fn put(&mut self, chunk: &Bytes) -> io::Result<()> {
        self.write_chunk(chunk.clone()).await.map_err(io::Error::from)
    }
}

/// A TCP or TLS stream, read into a buffer of [`READ_BUFFER`].
pub(crate) struct Buffered<'a, R> {
    r: &'a mut R,
    buf: Vec<u8>,
}

impl<'a, R> Buffered<'a, R> {
    pub fn new(r: &'a mut R) -> Self {
        Buffered {
            r,
            buf: vec![0u8; READ_BUFFER],
        }
    }
}

impl<R: AsyncRead + Unpin> FlowSource for Buffered<'_, R> {
    async fn take(&mut self) -> io::Result<usize> {
        self.r.read(&mut self.buf).await
    }
}

impl FlowSource for quinn::RecvStream {
    async fn take(&mut self) -> io::Result<usize> {
        match self.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => Ok(chunk.bytes.len()),
            Ok(None) => Ok(0),
            Err(e) => Err(io::Error::from(e)),
        }
    }
}

/// The receiver's part of a bulk trial: its flows, which way each runs,
/// and what a down flow writes.
pub struct BulkFlows {
    pub meter: FlowMeter,
    /// Flows per direction.
    pub flows: u32,
    pub direction: BulkDirection,
    /// Bytes per write of a down flow.
    pub size: usize,
    /// How long a down flow writes from the Start: warm-up and duration.
    pub write_ns: u64,
}

impl BulkFlows {
    /// Serves one flow of a TCP (or TLS) connection: reads its index,
    /// then reads it to its end (up) or writes it until the trial's end
    /// (down); then closes the write side. A flow index beyond the
    /// trial's is the trial's own but unusable: discarded.
    pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut io: S,
        counters: &ServeCounters,
    ) -> io::Result<()> {
        let flow = self.read_index(&mut io, counters).await?;
        match self.direction.of_flow(flow, self.flows) {
            BulkDirection::Down => {
                self.write_down(&mut Copying(&mut io), flow, counters).await?;
                io.flush().await?;
                io.shutdown().await?;
                // The sender closes once it has read everything.
                let mut rest = [0u8; 64];
                while io.read(&mut rest).await? > 0 {}
                Ok(())
            }
            _ => {
                count_flow(&mut Buffered::new(&mut io), flow, &self.meter, Some(counters)).await?;
                io.shutdown().await
            }
        }
    }

    /// Serves a QUIC flow: an up flow is a unidirectional stream, a down
    /// flow a bidirectional one the sender opened with its index.
    pub async fn serve_quic(
        &self,
        mut recv: quinn::RecvStream,
        send: Option<quinn::SendStream>,
        counters: &ServeCounters,
    ) -> io::Result<()> {
        let flow = self.read_index(&mut recv, counters).await?;
        match (self.direction.of_flow(flow, self.flows), send) {
            (BulkDirection::Down, Some(mut send)) => {
                self.write_down(&mut send, flow, counters).await?;
                send.finish().map_err(io::Error::other)?;
                // Done once the sender acknowledged every byte.
                send.stopped().await.map_err(io::Error::other)?;
                Ok(())
            }
            (BulkDirection::Up, None) => count_flow(&mut recv, flow, &self.meter, Some(counters)).await,
            (way, _) => {
                counters.discarded();
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("flow {flow} runs {way}, on a stream that cannot carry it that way"),
                ))
            }
        }
    }

    async fn read_index<R: AsyncRead + Unpin>(&self, r: &mut R, counters: &ServeCounters) -> io::Result<u32> {
        let flow = r.read_u32().await?;
        let all = self.direction.total_flows(self.flows);
        if flow >= all {
            counters.discarded();
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("flow {flow} of a trial of {all}"),
            ));
        }
        Ok(flow)
    }

    /// Writes a down flow from the Start until warm-up and duration are
    /// over, counting what it wrote.
    async fn write_down(&self, w: &mut impl FlowSink, flow: u32, counters: &ServeCounters) -> io::Result<()> {
        let end_ns = self.meter.started().await + self.write_ns;
        let chunk = Bytes::from(vec![0u8; self.size]);
        while mono_now_ns() < end_ns {
            w.put(&chunk).await?;
            self.meter.add(flow, self.size as u64, mono_now_ns());
            counters.bytes(self.size as u64);
        }
        self.meter.finish();
        Ok(())
    }
}

/// Reads flow `flow` to its end into `meter` (and `counters`, at the
/// receiver).
pub(crate) async fn count_flow(
    r: &mut impl FlowSource,
    flow: u32,
    meter: &FlowMeter,
    counters: Option<&ServeCounters>,
) -> io::Result<()> {
    loop {
        let n = r.take().await?;
        if n == 0 {
            break;
        }
        meter.add(flow, n as u64, mono_now_ns());
        if let Some(c) = counters {
            c.bytes(n as u64);
        }
    }
    meter.finish();
    Ok(())
}

/// Writes flow `flow` in writes of `size` bytes until `end_ns`; returns
/// the bytes written (the index not counted).
pub(crate) async fn write_flow(
    w: &mut impl FlowSink,
    flow: u32,
    size: usize,
    end_ns: u64,
) -> io::Result<u64> {
    w.put(&Bytes::copy_from_slice(&flow.to_be_bytes())).await?;
    let chunk = Bytes::from(vec![0u8; size]);
    let mut written = 0;
    while mono_now_ns() < end_ns {
        w.put(&chunk).await?;
        written += size as u64;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(flows: u32, direction: BulkDirection, write_ns: u64) -> BulkFlows {
        BulkFlows {
            meter: FlowMeter::new(direction.total_flows(flows), 4),
            flows,
            direction,
            size: 1000,
            write_ns,
        }
    }

    #[tokio::test]
    async fn an_up_flow_is_counted_by_its_index_and_closed_after() {
        let trial = trial(2, BulkDirection::Up, 0);
        let counters = ServeCounters::default();
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let reader = async { trial.serve(server, &counters).await };
        let writer = async {
            let n = write_flow(&mut Copying(&mut client), 1, 1000, mono_now_ns() + 20_000_000)
                .await
                .unwrap();
            client.shutdown().await.unwrap();
            // The receiver closes its side once it has read everything.
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
            n
        };
        let (read, written) = tokio::join!(reader, writer);
        read.unwrap();
        assert!(written >= 1000);
        let bins = trial.meter.take();
        assert!(bins[0].is_empty(), "flow 0 sent nothing: {bins:?}");
        assert_eq!(bins[1].iter().sum::<u64>(), written);
        assert_eq!(counters.report(0).bytes, written);
    }

    #[tokio::test]
    async fn a_down_flow_waits_for_the_start_then_writes_for_the_trial() {
        // Both ways, 1 flow each: flow 1 runs down.
        let trial = trial(1, BulkDirection::Both, 30_000_000);
        let counters = ServeCounters::default();
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let sender_side = FlowMeter::new(2, 4);
        let serving = async { trial.serve(server, &counters).await };
        let reading = async {
            client.write_u32(1).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let before = trial.meter.take();
            trial.meter.start();
            sender_side.start();
            count_flow(&mut Buffered::new(&mut client), 1, &sender_side, None)
                .await
                .unwrap();
            client.shutdown().await.unwrap();
            before
        };
        let (served, before_start) = tokio::join!(serving, reading);
        served.unwrap();
        assert!(
            before_start.iter().all(Vec::is_empty),
            "wrote before the start: {before_start:?}"
        );
        let written: u64 = trial.meter.take()[1].iter().sum();
        let read: u64 = sender_side.take()[1].iter().sum();
        assert!(written >= 1000, "wrote {written} bytes in 30 ms");
        assert_eq!(read, written, "the sender read what the receiver wrote");
        assert_eq!(counters.report(0).bytes, written);
        assert!(trial.meter.take()[0].is_empty());
    }

    #[tokio::test]
    async fn waiting_for_the_flows_ends_when_the_last_finishes() {
        let meter = FlowMeter::new(2, 1);
        meter.finish();
        let wait = std::time::Duration::from_secs(60);
        let began = std::time::Instant::now();
        tokio::join!(meter.await_finished(wait), async { meter.finish() });
        assert!(began.elapsed() < wait, "waited out the bound");
    }

    #[tokio::test]
    async fn a_flow_beyond_the_trial_is_discarded() {
        // 2 flows each way: 0 to 3 are the trial's.
        let trial = trial(2, BulkDirection::Both, 0);
        let counters = ServeCounters::default();
        let (mut client, server) = tokio::io::duplex(1 << 10);
        client.write_u32(4).await.unwrap();
        assert!(trial.serve(server, &counters).await.is_err());
        assert_eq!(counters.report(0).discarded, 1);
    }

    #[test]
    fn late_bytes_count_in_the_last_bin() {
        let meter = FlowMeter::new(1, 3);
        let start = meter.start_ns.load(Ordering::Relaxed);
        meter.add(0, 5, start);
        meter.add(0, 7, start + 10 * BIN_NS);
        assert_eq!(meter.take(), [vec![5, 0, 7]]);
    }
}
