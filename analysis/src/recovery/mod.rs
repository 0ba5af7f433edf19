//! Recovery from an outage (a blackhole both ways or one way, `[a, b)`),
//! per transport: what the retransmission timers predict ([`theory`]) and
//! what a per-request log shows ([`measured`]), on one clock in ns.
//!
//! Theory: a reliable transport whose packets vanish retransmits on a timer
//! that doubles at each expiry — TCP's RTO (RFC 6298 §5.5, Linux's limits)
//! and QUIC's PTO (RFC 9002 §6.2, as quinn 0.11 runs it). The path heals at
//! `b`, but nothing flows until the first retransmission at or after `b`,
//! and the answer comes one round trip after that. [`theory::predict`]
//! gives that retransmission, the first answer, the silence after the heal,
//! and when the connection is given up instead (ETIMEDOUT, QUIC's idle
//! timeout); [`theory::recovery_curve`] gives the recovery after the heal
//! against partition length for a chart: a sawtooth whose teeth grow as
//! each backed-off retransmission falls after the heal (the time from the
//! outage's start to the first answer, partition length plus this, is the
//! staircase).
//!
//! Measured: [`measured::measure_recovery`] reads [`RequestOutcome`]s
//! (intended send time, answer time, the first error seen) against the
//! outage: time to detect, first answer after the heal, when the delivered
//! rate is back, and each request's [`measured::Fate`].
//!
//! A caller recording an rr trial with a partition needs, per request: its
//! intended time, when its response came (also after the application gave
//! up on it), and the first error or timeout the application saw for it
//! with its time. For the theory: the transport's timer at the outage's
//! start (TCP_INFO `rto`; quinn's RTT estimate), its give-up settings, the
//! path's round trip, and which send the timer runs from (see
//! [`theory::predict`]).

pub mod measured;
pub mod theory;

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

pub use measured::{
    fate, first_failure, measure_recovery, nearest_rank, pre_outage_p99_ns, Detection, Fate, FateCounts,
    MeasureConfig, MeasuredRecovery,
};
pub use theory::{
    predict, recovery_curve, Backoff, Blackholed, GiveUp, Prediction, QuinnPto, Recovery, RecoveryCurve,
    TimerModel,
};

#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum RecoveryError {
    #[error("an outage ends after it starts: [{start_ns}, {end_ns}) ns is empty")]
    EmptyOutage { start_ns: u64, end_ns: u64 },
    #[error("a retransmission timer's first interval must be at least 1 ns and at most its cap ({max_interval_ns} ns), not {first_interval_ns} ns")]
    Backoff {
        first_interval_ns: u64,
        max_interval_ns: u64,
    },
    #[error("the timer's send at {at_ns} ns is outside the outage [{start_ns}, {end_ns}): only a send the outage swallowed backs off")]
    SendOutsideOutage { at_ns: u64, start_ns: u64, end_ns: u64 },
    #[error("a bin must be at least 1 ns")]
    Bin,
    #[error("the delivered rate counts as restored at a share in (0, 1] of the offered, over at least one bin, not {share} over {bins}")]
    Restored { share: f64, bins: usize },
}

/// An outage `[start_ns, end_ns)`: what was sent into the path from the
/// start was lost, what is sent from the end gets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    start_ns: u64,
    end_ns: u64,
}

impl Outage {
    pub fn new(start_ns: u64, end_ns: u64) -> Result<Self, RecoveryError> {
        if end_ns <= start_ns {
            return Err(RecoveryError::EmptyOutage { start_ns, end_ns });
        }
        Ok(Outage { start_ns, end_ns })
    }

    /// `a`: the path goes dark.
    pub fn start_ns(&self) -> u64 {
        self.start_ns
    }

    /// `b`: the heal.
    pub fn end_ns(&self) -> u64 {
        self.end_ns
    }

    pub fn len_ns(&self) -> u64 {
        self.end_ns - self.start_ns
    }
}

/// What the application saw instead of an answer. An rr client maps its
/// socket's or quinn's error to one of these (`From<std::io::ErrorKind>`
/// does the socket errors; quinn's `ConnectionError::TimedOut` is
/// [`ErrorKind::QuicIdleTimeout`], its `Reset`, `ConnectionClosed`,
/// `ApplicationClosed` and `LocallyClosed` are [`ErrorKind::QuicClosed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The application's own deadline for the answer passed (rr's loss
    /// timeout, a retry policy's timeout).
    ApplicationTimeout,
    /// ETIMEDOUT: the kernel gave the connection up (tcp_retries2 or
    /// TCP_USER_TIMEOUT).
    ConnectionTimedOut,
    /// ECONNRESET: the peer, or a firewall on the path, sent a reset.
    ConnectionReset,
    /// EPIPE: a write on a connection already reset or closed.
    BrokenPipe,
    /// EHOSTUNREACH: the path answered with ICMP host (or address)
    /// unreachable.
    HostUnreachable,
    /// ENETUNREACH: ICMP network unreachable, or no route.
    NetworkUnreachable,
    /// ECONNREFUSED: nothing listens (a crashed peer's host answers), or
    /// a reset to a connection attempt.
    ConnectionRefused,
    /// A read found the connection's end: the peer closed it (a crashed
    /// peer's kernel closes its sockets).
    ClosedByPeer,
    /// quinn closed the connection after its idle timeout.
    QuicIdleTimeout,
    /// The QUIC connection was reset (stateless reset) or closed.
    QuicClosed,
    Other,
}

impl ErrorKind {
    /// The short name a chart or table shows.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::ApplicationTimeout => "application timeout",
            ErrorKind::ConnectionTimedOut => "ETIMEDOUT",
            ErrorKind::ConnectionReset => "ECONNRESET",
            ErrorKind::BrokenPipe => "EPIPE",
            ErrorKind::HostUnreachable => "EHOSTUNREACH",
            ErrorKind::NetworkUnreachable => "ENETUNREACH",
            ErrorKind::ConnectionRefused => "ECONNREFUSED",
            ErrorKind::ClosedByPeer => "EOF",
            ErrorKind::QuicIdleTimeout => "QUIC idle timeout",
            ErrorKind::QuicClosed => "QUIC closed",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<std::io::ErrorKind> for ErrorKind {
    /// A socket's error. `TimedOut` is the kernel's ETIMEDOUT: an
    /// application's own deadline is [`ErrorKind::ApplicationTimeout`],
    /// which the caller records as such.
    fn from(kind: std::io::ErrorKind) -> Self {
        use std::io::ErrorKind as Io;
        match kind {
            Io::TimedOut => ErrorKind::ConnectionTimedOut,
            Io::ConnectionReset => ErrorKind::ConnectionReset,
            Io::BrokenPipe => ErrorKind::BrokenPipe,
            Io::HostUnreachable => ErrorKind::HostUnreachable,
            Io::NetworkUnreachable => ErrorKind::NetworkUnreachable,
            Io::ConnectionRefused => ErrorKind::ConnectionRefused,
            Io::UnexpectedEof => ErrorKind::ClosedByPeer,
            _ => ErrorKind::Other,
        }
    }
}

/// An error or timeout the application saw, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub at_ns: u64,
    pub kind: ErrorKind,
}

/// One request of a log: when it was meant to go, when its answer came,
/// and the first error or timeout the application saw for it. Both can be
/// set: an answer that came after the application's timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestOutcome {
    pub intended_ns: u64,
    pub answered_ns: Option<u64>,
    pub failure: Option<Failure>,
}

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
