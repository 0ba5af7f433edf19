//! The bulk receiver's records: what its application read or wrote of
//! each flow per bin, sent back as [`ControlMsg::FlowBins`] frames.

use std::sync::Arc;
use std::time::Duration;
use transbench_wire::control::BINS_PER_FRAME;
use transbench_wire::{ControlMsg, ReceiverReport};

use crate::dataplane::bulk::BulkFlows;
use crate::workload::records::{TrialRecords, Waiting};

pub struct FlowRecords(Arc<BulkFlows>);

impl FlowRecords {
    pub fn new(flows: Arc<BulkFlows>) -> Self {
        FlowRecords(flows)
    }
}

impl TrialRecords for FlowRecords {
    /// Bins count from the trial's Start.
    fn start(&mut self) {
        self.0.meter.start();
    }

    /// Waits for every flow to end; bulk has no messages to count.
    fn await_done(&self, _expect: u64, wait: Duration) -> Waiting<'_> {
        Box::pin(self.0.meter.await_finished(wait))
    }

    fn finish(self: Box<Self>, _report: &mut ReceiverReport) -> Vec<ControlMsg> {
        let mut frames = Vec::new();
        for (flow, bins) in self.0.meter.take().iter().enumerate() {
            for (k, batch) in bins.chunks(BINS_PER_FRAME).enumerate() {
                frames.push(ControlMsg::FlowBins {
                    flow: flow as u32,
                    first: (k * BINS_PER_FRAME) as u32,
                    bins: batch.to_vec(),
                });
            }
        }
        frames
    }
}
