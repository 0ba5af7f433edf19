//! transbench's wire formats, as pure codecs with no I/O, and the clock
//! their timestamps count in:
//!
//! - [`header`]: the fixed header every data-plane message starts with;
//! - [`token`]: the per-trial token that data-plane traffic shows to be
//!   served;
//! - [`frame`]: the length prefix that delimits messages on byte streams
//!   (TCP, TLS, QUIC streams) and control frames;
//! - [`transport`]: the transports by name, and each one's capabilities;
//! - [`control`]: the versioned control protocol between sender and receiver;
//! - [`mux`]: HTTP/2-style frames carrying many streams over one byte
//!   stream (the `tcp-mux` transports);
//! - [`delivery`]: the receiver's per-message delivery records of one-way
//!   workloads;
//! - [`processed`]: the receiver's per-request arrivals and processings
//!   of rr with delivery counting (retries, idempotency keys);
//! - [`auth`]: HMAC-SHA256 challenge-response over a shared secret;
//! - [`printable`]: text from a peer or a file, escaped for a terminal;
//! - [`host`]: what a host and its interface are, as results record them;
//! - [`clock`]: CLOCK_MONOTONIC nanoseconds, shared by every local process.

pub mod auth;
pub mod clock;
pub mod control;
pub mod delivery;
pub mod frame;
pub mod header;
pub mod host;
pub mod mux;
pub mod packed;
pub mod printable;
pub mod processed;
pub mod token;
pub mod transport;

pub use control::{
    BulkDirection, CloseMode, ControlError, ControlMsg, DatagramCounts, DeliveryCounting, NamespaceReport,
    QuicStreamMode, ReceiverDelivery, ReceiverReport, TimeWaitSample, TrialPlan, TrialSetup, Workload,
    WorkloadSetup,
};
pub use frame::{FrameError, LengthPrefix};
pub use header::{HeaderError, MessageHeader, MessageKind, HEADER_LEN};
pub use host::{HostInfo, InterfaceInfo};
pub use printable::printable;
pub use token::{TrialToken, TOKEN_LEN};
pub use transport::{Capabilities, Carrier, Streams, Transport};
