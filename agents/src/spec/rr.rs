//! The request/response workload's options.

use transbench_wire::QuicStreamMode;

use super::{QuicStreamArg, TrialArgs};

/// The flags rr takes beyond the common ones.
pub const FLAGS: &[&str] = &["--rate", "--closed-loop", "--quic-stream"];
pub const DEFAULT_RATE: f64 = 1000.0;
pub const DEFAULT_SIZE: usize = 64;

#[derive(Debug, Clone)]
pub struct RrSpec {
    /// Requests per second, open-loop; `None` runs closed-loop.
    pub rate: Option<f64>,
    /// QUIC: a stream per request, or one for all.
    pub quic_stream: QuicStreamMode,
}

impl RrSpec {
    pub fn from_args(args: &TrialArgs) -> Self {
        RrSpec {
            rate: (!args.closed_loop).then_some(args.rate.unwrap_or(DEFAULT_RATE)),
            quic_stream: match args.quic_stream {
                None | Some(QuicStreamArg::PerRequest) => QuicStreamMode::PerRequest,
                Some(QuicStreamArg::Single) => QuicStreamMode::Single,
            },
        }
    }

    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                anyhow::bail!(
                    "--rate {rate} must be a positive number of messages per second (or use --closed-loop)"
                );
            }
        }
        Ok(())
    }
}
