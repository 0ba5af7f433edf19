//! Pure analyses over what the agents recorded; no I/O, no clocks: tests
//! drive them with synthetic timelines.
//!
//! - [`seq`]: per-sequence UDP metrics — loss with a stated wait (RFC
//!   7680), duplicates, reordering ratio and extent (RFC 4737), loss burst
//!   lengths (RFC 3357), interarrival jitter (RFC 3550), IPDV (RFC 3393);
//! - [`hol`]: head-of-line blocking — stall episodes, fan-out, collateral
//!   messages, cross-stream overtakes, and the sparse-loss theory to set
//!   beside them;
//! - [`churn`]: what TIME_WAIT and handshakes predict for connection
//!   churn, and the agents' TIME_WAIT samples on one timeline;
//! - [`bulk`]: goodput per flow and in total, Jain's fairness index, and
//!   what a rate-limited link leaves each transport after its headers;
//! - [`clock_offset`]: the offset between the sender's and the receiver's
//!   clocks from control-channel round trips, with an honest bound, and
//!   whether one-way delays it corrects can be reported;
//! - [`failure_detector`]: a fixed timeout and the φ accrual detector over
//!   heartbeat arrivals, their detection time against false suspicions,
//!   and the normal-model theory to set beside them;
//! - [`recovery`]: recovery from an outage — what TCP's RTO and QUIC's PTO
//!   backoff predict (first answer after the heal, time to give up), and
//!   what a per-request log shows (time to detect, first answer, rate
//!   restored, delayed and lost requests, a timeline).
//! - [`heartbeat`]: what a heartbeat monitor finds over one run: both
//!   detectors replayed over the arrivals, false suspicions of the live
//!   peer and detection of a silent one, each beside its theory.

pub mod bulk;
pub mod churn;
pub mod clock_offset;
pub mod failure_detector;
pub mod heartbeat;
pub mod hol;
pub mod recovery;
pub mod seq;
