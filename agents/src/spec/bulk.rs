//! The bulk workload's options: how many flows, and (QUIC) how many
//! connections carry them.

use super::{TrialArgs, TrialSpec};
use anyhow::bail;

pub const FLAGS: &[&str] = &["--flows", "--quic-connections"];
/// Bytes per write unless --size says: large enough that system calls are
/// not what limits a flow on loopback, small next to a socket buffer.
pub const DEFAULT_SIZE: usize = 128 * 1024;
/// The most flows of one trial, as multistream's streams.
pub const MAX_FLOWS: u32 = crate::dataplane::multi::MAX_STREAMS;

#[derive(Debug, Clone)]
pub struct BulkSpec {
    /// TCP connections, or QUIC streams.
    pub flows: u32,
    /// QUIC: connections the flows are spread over, flow i on i mod this.
    pub quic_connections: u32,
    /// The emulated link's rate in the data direction, when `run` knows
    /// it: what the goodput is held against.
    pub link_rate: Option<linkemu::spec::Rate>,
    /// The emulated link's queue limit in the data direction (packets).
    pub link_limit: Option<u32>,
}

impl BulkSpec {
    pub fn from_args(args: &TrialArgs) -> Self {
        BulkSpec {
            flows: args.flows.unwrap_or(1),
            quic_connections: args.quic_connections.unwrap_or(1),
            link_rate: None,
            link_limit: None,
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
        if !(1..=self.flows).contains(&self.quic_connections) {
            bail!(
                "--quic-connections {} is out of range: 1 to --flows ({})",
                self.quic_connections,
                self.flows
            );
        }
        Ok(())
    }
}
