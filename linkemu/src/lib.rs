//! linkemu: tc-netem's impairments in userspace.
//!
//! - [`spec`]: the `tc qdisc ... netem` argument grammar, parsed into a
//!   [`NetemSpec`] (the same string configures `tc netem` on lab hosts);
//! - [`pipeline`]: one direction of a link as a pure state machine
//!   following `sch_netem.c` — packets in with the time, packets out when
//!   due; time and randomness are inputs, so tests need no sockets;
//! - [`schedule`]: a profile that changes over time ([`ImpairSchedule`]:
//!   steps, partitions, flaps, loss ramps, rejects), and
//!   [`ScheduledPipeline`], a pipeline that follows one;
//! - [`reject`]: the answer a rejecting link sends back for a packet it
//!   drops (ICMP unreachable, a TCP reset);
//! - [`offload`]: a TUN device's super-packets split into wire packets
//!   before any impairment sees them, checksums completed;
//! - [`dist`] and [`rng`]: netem's delay distributions and its seeded,
//!   optionally correlated random numbers.
//!
//! Moving packets (TUN devices, namespaces) is the caller's business.

pub mod checksum;
pub mod dist;
pub mod offload;
pub mod pipeline;
pub mod reject;
pub mod rng;
pub mod schedule;
pub mod spec;

pub use pipeline::{LinkCounters, Pipeline};
pub use reject::Reject;
pub use schedule::{ImpairSchedule, ScheduleError, ScheduleStep, ScheduledPipeline, Shape};
pub use spec::{NetemSpec, SpecError};
