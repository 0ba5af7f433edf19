//! What a trial's receiver records beside its counters, workload by
//! workload: each workload's receiver hands its [`TrialServer`] one
//! [`TrialRecords`], and the trial's Start and Stop reach the records
//! through it alone.
//!
//! [`TrialServer`]: super::TrialServer

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use transbench_wire::{ControlMsg, DatagramCounts, ReceiverReport};

use crate::dataplane::quic_dgram::DatagramLedger;

/// Waiting for a trial's last records to arrive.
pub type Waiting<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// One trial's records on the receiver, from Start to the frames sent
/// after Stop.
pub trait TrialRecords: Send {
    /// The trial starts.
    fn start(&mut self) {}

    /// Waits until the sender's `expect` messages have arrived (or the
    /// workload's own sign of its end), at most `wait`.
    fn await_done(&self, _expect: u64, _wait: Duration) -> Waiting<'_> {
        Box::pin(std::future::ready(()))
    }

    /// The trial is over and its data plane still up: reads now what its
    /// teardown would disturb.
    fn stop(&mut self) {}

    /// The data plane is down, so nothing records any more: the frames
    /// that carry the records, in the order they are sent before the
    /// report, and what the records add to `report`.
    fn finish(self: Box<Self>, report: &mut ReceiverReport) -> Vec<ControlMsg>;
}

/// A workload that records nothing beside its counters.
pub struct NoRecords;

impl TrialRecords for NoRecords {
    fn finish(self: Box<Self>, _report: &mut ReceiverReport) -> Vec<ControlMsg> {
        Vec::new()
    }
}

/// quic-dgram: the receiver's datagram counts, for the report.
pub struct DatagramTally {
    ledger: Arc<DatagramLedger>,
    counts: Option<DatagramCounts>,
}

impl DatagramTally {
    pub fn new(ledger: Arc<DatagramLedger>) -> Self {
        DatagramTally { ledger, counts: None }
    }
}

impl TrialRecords for DatagramTally {
    /// Read before the endpoint closes its connections, whose frame
    /// counts are part of them.
    fn stop(&mut self) {
        self.counts = Some(self.ledger.counts());
    }

    fn finish(self: Box<Self>, report: &mut ReceiverReport) -> Vec<ControlMsg> {
        report.quic_datagrams = self.counts;
        Vec::new()
    }
}
