//! The request/response workload's options.

use anyhow::bail;
use std::time::Duration;
use transbench_wire::{DeliveryCounting, QuicStreamMode};

use super::{QuicStreamArg, TrialArgs};
use crate::measure::delivery::RetryPolicy;

/// The flags rr takes beyond the common ones.
pub const FLAGS: &[&str] = &[
    "--rate",
    "--closed-loop",
    "--quic-stream",
    "--retry",
    "--idempotency-keys",
    "--reconnect",
    "--receiver-fault",
];
pub const DEFAULT_RATE: f64 = 1000.0;
pub const DEFAULT_SIZE: usize = 64;

#[derive(Debug, Clone)]
pub struct RrSpec {
    /// Requests per second, open-loop; `None` runs closed-loop.
    pub rate: Option<f64>,
    /// QUIC: a stream per request, or one for all.
    pub quic_stream: QuicStreamMode,
    /// `--retry` as given (`none` included); `None` without it: then
    /// delivery is not counted unless `idempotency_keys`.
    pub retry: Option<RetryPolicy>,
    /// The receiver answers a repeated id from its stored response.
    pub idempotency_keys: bool,
    /// `--reconnect`: between attempts to set the trial up again after the
    /// connection was lost.
    pub reconnect: Option<Duration>,
}

impl RrSpec {
    pub fn from_args(args: &TrialArgs) -> Self {
        RrSpec {
            rate: (!args.closed_loop).then_some(args.rate.unwrap_or(DEFAULT_RATE)),
            quic_stream: match args.quic_stream {
                None | Some(QuicStreamArg::PerRequest) => QuicStreamMode::PerRequest,
                Some(QuicStreamArg::Single) => QuicStreamMode::Single,
            },
            retry: args.retry,
            idempotency_keys: args.idempotency_keys,
            reconnect: args.reconnect,
        }
    }

    /// Whether the trial counts delivery per request id (a `delivery`
    /// section): with `--retry` given, `none` too, or `--idempotency-keys`.
    pub fn counts_delivery(&self) -> bool {
        self.retry.is_some() || self.idempotency_keys
    }

    /// The retry policy in force: `none` unless `--retry` says.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry.unwrap_or(RetryPolicy::None)
    }

    /// What the receiver keeps per id, if anything.
    pub fn delivery_counting(&self) -> Option<DeliveryCounting> {
        self.counts_delivery().then_some(DeliveryCounting {
            idempotency_keys: self.idempotency_keys,
        })
    }

    pub fn check(&self, loss_timeout: Duration) -> anyhow::Result<()> {
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                bail!(
                    "--rate {rate} must be a positive number of messages per second (or use --closed-loop)"
                );
            }
        }
        if self.counts_delivery() && self.rate.is_none() {
            bail!(
                "--retry and --idempotency-keys count delivery per request id over an open-loop schedule: \
                 drop --closed-loop (a closed loop waits for each answer, so it has no request to retry)"
            );
        }
        if let Some(every) = self.reconnect {
            if self.rate.is_none() {
                bail!(
                    "--reconnect redials under an open-loop schedule, which goes on while the connection is \
                     down: drop --closed-loop"
                );
            }
            if every.is_zero() {
                bail!(
                    "--reconnect 0s would redial without pause: give the time between attempts, e.g. 100ms"
                );
            }
            if self.counts_delivery() {
                bail!(
                    "--reconnect and --retry or --idempotency-keys: a receiver started again has none of the \
                     counts per request id the first one kept; count delivery without reconnecting"
                );
            }
        }
        if let Some((timeout, _)) = self.retry_policy().timer() {
            if timeout >= loss_timeout {
                bail!(
                    "--retry timeout:{} would never fire: a request is lost {} after its intended send time \
                     (--loss-timeout), and retries are sent only before that: give a shorter retry timeout \
                     or a longer --loss-timeout",
                    humantime::format_duration(timeout),
                    humantime::format_duration(loss_timeout)
                );
            }
        }
        Ok(())
    }
}
