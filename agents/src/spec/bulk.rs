//! The bulk workload's options: how many flows, which way they run, and
//! (QUIC) how many connections carry them.

use super::{TrialArgs, TrialSpec};
use anyhow::bail;
use transbench_wire::BulkDirection;

pub const FLAGS: &[&str] = &["--flows", "--quic-connections", "--direction"];
/// Bytes per write unless --size says: large enough that system calls are
/// not what limits a flow on loopback, small next to a socket buffer.
pub const DEFAULT_SIZE: usize = 128 * 1024;
/// The most flows of one trial, as multistream's streams.
pub const MAX_FLOWS: u32 = crate::dataplane::multi::MAX_STREAMS;

#[derive(Debug, Clone)]
pub struct BulkSpec {
    /// TCP connections, or QUIC streams, in each direction.
    pub flows: u32,
    /// QUIC: connections the flows are spread over, flow i on i mod this.
    pub quic_connections: u32,
    pub direction: BulkDirection,
    /// The emulated link, sender to receiver, when `run` knows it.
    pub up_link: Option<LinkShape>,
    /// The emulated link, receiver to sender.
    pub down_link: Option<LinkShape>,
}

/// What an emulated link's direction does to bulk flows: the rate the
/// goodput is held against, and the queue a full one drains.
#[derive(Debug, Clone, Copy)]
pub struct LinkShape {
    pub rate: Option<linkemu::spec::Rate>,
    /// The queue's limit, packets.
    pub limit: u32,
}

impl BulkSpec {
    pub fn from_args(args: &TrialArgs) -> Self {
        BulkSpec {
            flows: args.flows.unwrap_or(1),
            quic_connections: args.quic_connections.unwrap_or(1),
            direction: args.direction.unwrap_or_default(),
            up_link: None,
            down_link: None,
        }
    }

    /// The emulated link's direction that carries `way`'s data (`Up` or
    /// `Down`).
    pub fn link(&self, way: BulkDirection) -> Option<LinkShape> {
        match way {
            BulkDirection::Down => self.down_link,
            _ => self.up_link,
        }
    }

    /// The directions the flows run: one, or `Up` and `Down`.
    pub fn ways(&self) -> Vec<BulkDirection> {
        match self.direction {
            BulkDirection::Both => vec![BulkDirection::Up, BulkDirection::Down],
            one => vec![one],
        }
    }

    pub fn check(&self, trial: &TrialSpec) -> anyhow::Result<()> {
        if !(1..=MAX_FLOWS).contains(&self.flows) {
            bail!("--flows {} is out of range: 1 to {MAX_FLOWS}", self.flows);
        }
        if self.quic_connections != 1 && !trial.transport.is_quic() {
            bail!(
                "--quic-connections applies to QUIC only: over {} each flow is a connection of its own",
                trial.transport
            );
        }
        let all = self.direction.total_flows(self.flows);
        if !(1..=all).contains(&self.quic_connections) {
            bail!(
                "--quic-connections {} is out of range: 1 to the flows ({all})",
                self.quic_connections,
            );
        }
        Ok(())
    }
}
