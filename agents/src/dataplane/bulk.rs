//! Bulk flows: the sender writes an open byte stream as fast as the
//! transport takes it; the receiver's application reads it and counts the
//! bytes of each flow in bins of [`BIN_NS`] from the trial's start. A flow
//! opens with its index (4 bytes, big-endian) and ends when the sender
//! finishes it; the receiver then closes its side, which tells a TCP
//! sender that every byte was read.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use transbench_wire::control::BIN_NS;

use super::ServeCounters;
use crate::clock::mono_now_ns;

/// What the receiver reads at once.
pub const READ_BUFFER: usize = 256 * 1024;

/// Bytes each flow's application read, per bin, from [`FlowMeter::start`].
pub struct FlowMeter {
    start_ns: AtomicU64,
    bins: Vec<Vec<AtomicU64>>,
    /// Flows whose sender finished and whose bytes were all read.
    finished: AtomicU32,
    done: tokio::sync::Notify,
}

impl FlowMeter {
    /// `flows` flows of `bins` bins each; bytes past the last bin count in
    /// it.
    pub fn new(flows: u32, bins: usize) -> Self {
        FlowMeter {
            start_ns: AtomicU64::new(mono_now_ns()),
            bins: (0..flows)
                .map(|_| (0..bins.max(1)).map(|_| AtomicU64::new(0)).collect())
                .collect(),
            finished: AtomicU32::new(0),
            done: tokio::sync::Notify::new(),
        }
    }

    /// Bins count from now (the receiver took the trial's Start); bytes
    /// read before it are in the first bin.
    pub fn start(&self) {
        self.start_ns.store(mono_now_ns(), Ordering::Relaxed);
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
        self.done.notify_waiters();
    }

    /// Waits until every flow has finished, at most `wait`.
    pub async fn await_finished(&self, wait: std::time::Duration) {
        let all = self.flows();
        let _ = tokio::time::timeout(wait, async {
            loop {
                let notified = self.done.notified();
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

/// Reads one flow to its end, counting its bytes; then closes the write
/// side, so the sender knows all was read. A flow index beyond the trial's
/// is the trial's own but unusable: discarded.
pub async fn read_flow<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    meter: &FlowMeter,
    counters: &ServeCounters,
) -> io::Result<()> {
    count_flow(&mut io, meter, counters).await?;
    io.shutdown().await
}

/// A QUIC flow: a unidirectional stream, so nothing to close after it.
pub async fn read_quic_flow(
    mut recv: quinn::RecvStream,
    meter: &FlowMeter,
    counters: &ServeCounters,
) -> io::Result<()> {
    count_flow(&mut recv, meter, counters).await
}

/// Reads a flow's index, then its bytes to the end, into `meter`.
async fn count_flow<R: AsyncRead + Unpin>(
    r: &mut R,
    meter: &FlowMeter,
    counters: &ServeCounters,
) -> io::Result<()> {
    let flow = r.read_u32().await?;
    if flow >= meter.flows() {
        counters.discarded();
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("flow {flow} of a trial of {}", meter.flows()),
        ));
    }
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        meter.add(flow, n as u64, mono_now_ns());
        counters.bytes(n as u64);
    }
    meter.finish();
    Ok(())
}

/// Writes flow `flow` in writes of `size` bytes until `end_ns`; returns
/// the bytes written (the index not counted).
pub async fn write_flow<W: AsyncWrite + Unpin>(
    w: &mut W,
    flow: u32,
    size: usize,
    end_ns: u64,
) -> io::Result<u64> {
    w.write_u32(flow).await?;
    let chunk = vec![0u8; size];
    let mut written = 0;
    while mono_now_ns() < end_ns {
        w.write_all(&chunk).await?;
        written += size as u64;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_flow_is_counted_by_its_index_and_closed_after() {
        let meter = FlowMeter::new(2, 4);
        let counters = ServeCounters::default();
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let reader = async { read_flow(server, &meter, &counters).await };
        let writer = async {
            let n = write_flow(&mut client, 1, 1000, mono_now_ns() + 20_000_000)
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
        let bins = meter.take();
        assert!(bins[0].is_empty(), "flow 0 sent nothing: {bins:?}");
        assert_eq!(bins[1].iter().sum::<u64>(), written);
        assert_eq!(counters.report(0).bytes, written);
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
        let meter = FlowMeter::new(1, 4);
        let counters = ServeCounters::default();
        let (mut client, server) = tokio::io::duplex(1 << 10);
        client.write_u32(7).await.unwrap();
        assert!(read_flow(server, &meter, &counters).await.is_err());
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
