//! The churn receiver's records: its namespace watched from Start to
//! Stop, the samples sent back as [`ControlMsg::TimeWait`] frames and the
//! rest in the report.

use std::mem;
use transbench_wire::control::SAMPLES_PER_FRAME;
use transbench_wire::{ControlMsg, NamespaceReport, ReceiverReport, TimeWaitSample};

use super::NamespaceWatch;
use crate::workload::records::TrialRecords;

pub struct TimeWaitRecords(Watch);

enum Watch {
    /// Until Start: the trial's own sockets among the namespace's.
    Planned(Option<procnet::PortFilter>),
    Running(NamespaceWatch),
    Ended(NamespaceReport, Vec<TimeWaitSample>),
    /// It could not start, or the trial stopped before it did.
    Off,
}

impl TimeWaitRecords {
    /// `trial_sockets`: TCP, those on the data port; QUIC has no
    /// TIME_WAIT of its own (`None`).
    pub fn new(trial_sockets: Option<procnet::PortFilter>) -> Self {
        TimeWaitRecords(Watch::Planned(trial_sockets))
    }
}

impl TrialRecords for TimeWaitRecords {
    /// Starts the watch, at the first Start only.
    fn start(&mut self) {
        self.0 = match mem::replace(&mut self.0, Watch::Off) {
            Watch::Planned(trial_sockets) => match NamespaceWatch::start(trial_sockets) {
                Ok(w) => Watch::Running(w),
                Err(e) => {
                    tracing::warn!("cannot sample TIME_WAIT: {e}");
                    Watch::Off
                }
            },
            other => other,
        };
    }

    /// Ends the watch before the data plane's teardown closes its
    /// sockets: that is not the trial's TIME_WAIT.
    fn stop(&mut self) {
        self.0 = match mem::replace(&mut self.0, Watch::Off) {
            Watch::Running(w) => {
                let (namespace, samples) = w.finish();
                Watch::Ended(namespace, samples)
            }
            _ => Watch::Off,
        };
    }

    fn finish(self: Box<Self>, report: &mut ReceiverReport) -> Vec<ControlMsg> {
        let Watch::Ended(namespace, samples) = self.0 else {
            return Vec::new();
        };
        report.namespace = Some(namespace);
        samples
            .chunks(SAMPLES_PER_FRAME)
            .map(|batch| ControlMsg::TimeWait {
                samples: batch.to_vec(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::ServeCounters;

    #[test]
    fn stopped_before_start_records_nothing() {
        let mut records: Box<dyn TrialRecords> = Box::new(TimeWaitRecords::new(None));
        records.stop();
        let mut report = ServeCounters::default().report(0);
        assert!(records.finish(&mut report).is_empty());
        assert!(report.namespace.is_none());
    }
}
