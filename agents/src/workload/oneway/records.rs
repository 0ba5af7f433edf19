//! The one-way receiver's records: when each message reached its
//! application, sent back as [`ControlMsg::Deliveries`] frames.

use std::sync::Arc;
use std::time::Duration;
use transbench_wire::delivery::{self, RECORDS_PER_FRAME};
use transbench_wire::{ControlMsg, ReceiverReport};

use crate::dataplane::multi::DeliveryLog;
use crate::workload::records::{TrialRecords, Waiting};

pub struct DeliveryRecords {
    log: Arc<DeliveryLog>,
    /// What the transport records of its own (quic-dgram: its datagrams).
    transport: Box<dyn TrialRecords>,
}

impl DeliveryRecords {
    pub fn new(log: Arc<DeliveryLog>, transport: Box<dyn TrialRecords>) -> Self {
        DeliveryRecords { log, transport }
    }
}

impl TrialRecords for DeliveryRecords {
    fn start(&mut self) {
        self.transport.start();
    }

    /// Waits for `expect` distinct messages.
    fn await_done(&self, expect: u64, wait: Duration) -> Waiting<'_> {
        Box::pin(self.log.await_distinct(expect, wait))
    }

    fn stop(&mut self) {
        self.transport.stop();
    }

    fn finish(self: Box<Self>, report: &mut ReceiverReport) -> Vec<ControlMsg> {
        let mut frames: Vec<ControlMsg> = self
            .log
            .take()
            .chunks(RECORDS_PER_FRAME)
            .map(|batch| ControlMsg::Deliveries {
                records: delivery::encode(batch),
            })
            .collect();
        frames.extend(self.transport.finish(report));
        frames
    }
}
