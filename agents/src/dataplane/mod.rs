//! The data plane: how each transport carries requests and responses, on
//! both sides. The sender's side is a [`RequestSink`] and a
//! [`ResponseSource`] per transport; the request/response engine in
//! `rr.rs` drives them without knowing which transport it has.

pub mod bulk;
pub mod churn;
pub mod failure;
pub mod handover;
pub mod listen;
pub mod multi;
pub mod quic;
pub mod quic_dgram;
pub mod stream;
pub mod udp;

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use transbench_analysis::recovery::Failure;
use transbench_wire::{MessageHeader, ReceiverReport, TrialToken};

use crate::measure::delivery::ProcessLog;

/// Whom a trial's data plane serves: the peer's address, and the token the
/// receiver handed out for the trial. Traffic without both is a
/// stranger's.
#[derive(Debug, Clone, Copy)]
pub struct TrialPeer {
    pub ip: IpAddr,
    pub token: TrialToken,
    /// Most of its data connections open at once; more are refused (the
    /// receiver's memory was reserved for these).
    pub most_open: usize,
}

pub trait RequestSink: Send + 'static {
    /// Whether a failed send ends the trial (a broken byte stream) or loses
    /// only that request (a datagram, a QUIC stream).
    const FATAL_ERRORS: bool;

    /// Sends request `header`, padded to the trial's message size.
    fn send(&mut self, header: MessageHeader) -> impl Future<Output = io::Result<()>> + Send;
}

pub trait ResponseSource: Send + 'static {
    /// Whether a receive error ends the source. False: an error
    /// [`failure::reported_by_icmp`] is one datagram's news and the
    /// source carries on (any other still ends it).
    const FATAL_ERRORS: bool = true;

    /// The next response and its CLOCK_MONOTONIC arrival time, ns.
    fn recv(&mut self) -> impl Future<Output = io::Result<(MessageHeader, u64)>> + Send;
}

/// Data-plane errors of a trial: how many, and the first few in words;
/// and, for outages' detection, when the application saw which
/// transport error, ICMP reports on a datagram socket included (those
/// counted apart: they are the path's news, not the data plane's
/// failures).
#[derive(Debug, Default)]
pub struct ErrorLog {
    pub count: u64,
    pub messages: Vec<String>,
    /// ICMP reports a datagram socket passed on and carried on after.
    pub icmp_reports: u64,
    /// By time, at most one a millisecond of a kind (see
    /// [`ErrorLog::seen`]).
    pub failures: Vec<Failure>,
}

/// Transport errors of one kind are kept at most this often: a path that
/// answers every datagram would otherwise log one per request.
const FAILURE_SPACING_NS: u64 = 1_000_000;

impl ErrorLog {
    /// A transport error the application saw at `at_ns` (the monotonic
    /// clock): a data-plane error, kept with its kind and time.
    pub fn note_at(&mut self, what: &str, e: &io::Error, at_ns: u64) {
        self.note(what, e);
        self.seen(failure::failure_kind(e), at_ns);
    }

    /// An ICMP report (see [`failure::reported_by_icmp`]) on a socket
    /// that carries on: kept with its kind and time, counted apart.
    pub fn note_icmp(&mut self, e: &io::Error, at_ns: u64) {
        self.icmp_reports += 1;
        self.seen(failure::failure_kind(e), at_ns);
    }

    /// A connection lost with `e` at `at_ns` and redialed, or an attempt
    /// to redial it that failed so (`--reconnect`): kept for detection
    /// with its kind and time, not counted as a data-plane error, since
    /// the trial goes on.
    pub fn note_lost_connection(&mut self, e: &io::Error, at_ns: u64) {
        self.seen(failure::failure_kind(e), at_ns);
    }

    /// Keeps a failure unless one of its kind was kept less than
    /// [`FAILURE_SPACING_NS`] before: an outage's first error is off by
    /// at most that much, and the log grows by at most one per
    /// millisecond.
    fn seen(&mut self, kind: transbench_analysis::recovery::ErrorKind, at_ns: u64) {
        let recent = self
            .failures
            .iter()
            .rev()
            .take_while(|f| f.at_ns + FAILURE_SPACING_NS > at_ns)
            .any(|f| f.kind == kind);
        if !recent {
            self.failures.push(Failure { at_ns, kind });
        }
    }

    /// Counts one error; keeps its words unless the same are kept already
    /// (a failure that repeats is one line, however often).
    pub fn note(&mut self, what: &str, e: &dyn std::fmt::Display) {
        self.count += 1;
        let message = format!("{what}: {e}");
        if self.messages.len() < 5 && !self.messages.contains(&message) {
            self.messages.push(message);
        }
    }

    pub fn merge(&mut self, other: ErrorLog) {
        self.count += other.count;
        self.icmp_reports += other.icmp_reports;
        let room = 5usize.saturating_sub(self.messages.len());
        self.messages.extend(other.messages.into_iter().take(room));
        self.failures.extend(other.failures);
        self.failures.sort_by_key(|f| f.at_ns);
    }
}

/// The receiver's tallies for one trial, shared by its data-plane tasks.
#[derive(Debug, Default)]
pub struct ServeCounters {
    requests: AtomicU64,
    responses: AtomicU64,
    bytes: AtomicU64,
    rejected: AtomicU64,
    discarded: AtomicU64,
    connections: AtomicU64,
    failures: std::sync::Mutex<ErrorLog>,
    tcp_congestion: std::sync::Mutex<Option<String>>,
    /// rr counting delivery: each request id's arrivals and processings.
    processing: Option<Arc<Mutex<ProcessLog>>>,
}

impl ServeCounters {
    /// Counters that also count each request id's arrivals and
    /// processings in `log`.
    pub fn counting_delivery(log: Arc<Mutex<ProcessLog>>) -> Self {
        ServeCounters {
            processing: Some(log),
            ..ServeCounters::default()
        }
    }

    pub fn request(&self, bytes: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A request of the trial, `bytes` long, arrived (and its id is
    /// counted when the trial counts delivery).
    pub fn request_arrived(&self, header: &MessageHeader, bytes: usize) {
        self.request(bytes);
        if let Some(log) = &self.processing {
            log.lock()
                .expect("process log lock")
                .arrive(header.seq, header.attempt);
        }
    }
    /// Bytes of a flow that carries no messages (bulk).
    pub fn bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }
    pub fn response(&self) {
        self.responses.fetch_add(1, Ordering::Relaxed);
    }
    /// A stranger's datagram or connection (see [`ReceiverReport::rejected`]).
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
    /// One of the trial's own messages it could not use (see
    /// [`ReceiverReport::discarded`]).
    pub fn discarded(&self) {
        self.discarded.fetch_add(1, Ordering::Relaxed);
    }
    pub fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }
    /// A failure of the receiver's own data plane, which the sender hears
    /// of in the report; returns how many there were so far.
    pub fn failure(&self, what: &str, e: &dyn std::fmt::Display) -> u64 {
        let mut failures = self.failures.lock().expect("counters lock");
        failures.note(what, e);
        failures.count
    }
    pub fn has_tcp_congestion(&self) -> bool {
        self.tcp_congestion.lock().expect("counters lock").is_some()
    }
    pub fn tcp_congestion(&self, name: String) {
        *self.tcp_congestion.lock().expect("counters lock") = Some(name);
    }

    pub fn report(&self, cpu_ns: u64) -> ReceiverReport {
        let failures = self.failures.lock().expect("counters lock");
        ReceiverReport {
            requests: self.requests.load(Ordering::Relaxed),
            responses: self.responses.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            discarded: self.discarded.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            errors: failures.count,
            error_messages: failures.messages.clone(),
            cpu_ns,
            tcp_congestion: self.tcp_congestion.lock().expect("counters lock").clone(),
            namespace: None,
            netns: testbed::netns::current().ok(),
            quic_datagrams: None,
            host: None,
            // The trial's records add it (see `ProcessedRecords`).
            delivery: None,
        }
    }
}

/// Waits until `done` holds, looking each millisecond, at most `within`:
/// for what the receiver's data plane counts to arrive after Stop.
pub(crate) async fn poll_until(within: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use transbench_analysis::recovery::ErrorKind;

    #[test]
    fn transport_errors_are_kept_with_their_time_at_most_one_a_millisecond_a_kind() {
        let mut log = ErrorLog::default();
        let unreachable = io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        for i in 0..10u64 {
            log.note_icmp(&unreachable, 1_000_000_000 + i * 200_000);
        }
        log.note_at(
            "receive",
            &io::Error::from_raw_os_error(libc::ECONNRESET),
            1_001_500_000,
        );
        log.note_icmp(&unreachable, 1_002_000_000);
        let kept: Vec<(u64, ErrorKind)> = log.failures.iter().map(|f| (f.at_ns, f.kind)).collect();
        assert_eq!(
            kept,
            [
                (1_000_000_000, ErrorKind::HostUnreachable),
                (1_001_000_000, ErrorKind::HostUnreachable),
                (1_001_500_000, ErrorKind::ConnectionReset),
                (1_002_000_000, ErrorKind::HostUnreachable),
            ]
        );
        assert_eq!(
            (log.icmp_reports, log.count),
            (11, 1),
            "ICMP reports are no data-plane errors"
        );
    }

    #[test]
    fn a_failure_that_repeats_is_counted_each_time_and_said_once() {
        let counters = ServeCounters::default();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(counters.failure("accepting", &emfile), 1);
        assert_eq!(counters.failure("accepting", &emfile), 2);
        counters.failure("binding", &emfile);
        let report = counters.report(0);
        assert_eq!(report.errors, 3);
        assert_eq!(report.error_messages.len(), 2, "{:?}", report.error_messages);
        assert!(report.error_messages[0].starts_with("accepting: Too many open files"));
    }
}
