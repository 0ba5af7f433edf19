//! The one-way workloads' options: multistream (N streams of messages,
//! head-of-line blocking) and stream (UDP datagrams at a bit rate).

use anyhow::bail;

use super::{positive_rate, TrialArgs, TrialSpec, MAX_ONE_WAY_WAIT};
use crate::dataplane::multi;

pub const MULTISTREAM_FLAGS: &[&str] = &[
    "--rate",
    "--streams",
    "--hol-base",
    "--round-trip",
    "--receiver-fault",
];
pub const STREAM_FLAGS: &[&str] = &["--bitrate", "--gso"];
/// Messages per second per stream, and their size, unless --rate and
/// --size say: 8 x 25/s of 512 B is 0.8 Mbit/s, which one CUBIC connection
/// carries with room to spare across the paths the README shows (Mathis:
/// about 5 Mbit/s at 20 ms and 2 % loss, 2 Mbit/s at 50 ms). A load beyond
/// the path measures a growing queue, not head-of-line stalls.
pub const MULTISTREAM_RATE: f64 = 25.0;
pub const MULTISTREAM_SIZE: usize = 512;
pub const MULTISTREAM_STREAMS: u32 = 8;
/// The stream workload's offered rate unless --bitrate says.
pub const DEFAULT_BITRATE: f64 = 100e6;
pub const STREAM_SIZE: usize = 1200;

/// What the head-of-line analysis of a trial is measured against, when the
/// caller knows it (`transbench run` does).
#[derive(Debug, Clone, Default)]
pub struct HolInputs {
    /// p1 of the same transport's latency at 0 % loss, and where it came
    /// from; `None`: this trial's own p1.
    pub base: Option<(u64, String)>,
    /// Packet loss configured in the data direction.
    pub loss_p: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct MultistreamSpec {
    /// Messages per second per stream, open-loop.
    pub rate: f64,
    /// Logical streams (tcp-n: connections; udp: flows).
    pub streams: u32,
    /// Measure round trips (the receiver echoes) even when both agents
    /// share a clock.
    pub round_trip: bool,
    pub hol: HolInputs,
}

impl MultistreamSpec {
    pub fn from_args(args: &TrialArgs) -> Self {
        MultistreamSpec {
            rate: args.rate.unwrap_or(MULTISTREAM_RATE),
            streams: args.streams.unwrap_or(MULTISTREAM_STREAMS),
            round_trip: args.round_trip,
            hol: HolInputs {
                base: args
                    .hol_base
                    .map(|d| (d.as_nanos() as u64, "--hol-base".to_string())),
                loss_p: None,
            },
        }
    }

    pub fn check(&self, trial: &TrialSpec) -> anyhow::Result<()> {
        if !(1..=multi::MAX_STREAMS).contains(&self.streams) {
            bail!(
                "--streams {} is out of range: 1 to {}",
                self.streams,
                multi::MAX_STREAMS
            );
        }
        positive_rate(self.rate, "--rate", "messages")?;
        check_wait(trial)
    }
}

#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Datagrams per second: the bit rate over the datagram size.
    pub rate: f64,
    /// Send in UDP GSO batches.
    pub gso: bool,
}

impl StreamSpec {
    pub fn from_args(args: &TrialArgs, size: usize) -> Self {
        StreamSpec {
            rate: args.bitrate.unwrap_or(DEFAULT_BITRATE) / (8.0 * size.max(1) as f64),
            gso: args.gso,
        }
    }

    /// The offered bit rate of datagrams of `size` bytes.
    pub fn bitrate(&self, size: usize) -> f64 {
        self.rate * size as f64 * 8.0
    }

    pub fn check(&self, trial: &TrialSpec) -> anyhow::Result<()> {
        positive_rate(self.rate, "--bitrate", "datagrams")?;
        if self.gso && trial.transport.is_quic() {
            bail!(
                "--gso batches raw UDP datagrams: quinn batches {}'s itself",
                trial.transport
            );
        }
        check_wait(trial)
    }
}

/// A one-way trial's last messages are waited for at most
/// [`MAX_ONE_WAY_WAIT`] by the receiver.
pub(super) fn check_wait(trial: &TrialSpec) -> anyhow::Result<()> {
    if trial.loss_timeout > MAX_ONE_WAY_WAIT {
        bail!(
            "--loss-timeout {:?} is longer than a receiver waits for a one-way trial's last messages: \
             use at most {:?}",
            trial.loss_timeout,
            MAX_ONE_WAY_WAIT
        );
    }
    Ok(())
}

/// Bits per second: a number with an optional k, M or G (powers of 1000).
pub fn parse_bitrate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, scale) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        Some('g' | 'G') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * scale),
        _ => Err(format!(
            "{s:?} is not a bit rate: expected a positive number of bits/s, e.g. 500k, 200M or 1.5G"
        )),
    }
}
