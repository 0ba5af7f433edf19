//! What a receiver lets in: which unauthenticated connections keep their
//! place in the handshake, which trials fit its limits, and how much
//! memory each may hold. Pure: the receiver does the I/O.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use transbench_wire::{TrialSetup, WorkloadSetup};

/// Connections in their handshake at once, from all sources.
pub const MAX_PENDING: usize = 128;
/// Connections in their handshake at once from one address: a stranger
/// on another address never pushes a sender out.
pub const MAX_PENDING_PER_SOURCE: usize = 32;

/// Clock probes a receiver answers in one session. A sender's estimate
/// takes 32 before a trial and 32 after it, and a session runs one trial:
/// this leaves room for a retry, and bounds what a session's probes cost
/// (each is one small frame each way, between trials, never during one).
pub const MAX_CLOCK_PROBES: u32 = 256;

/// The connections still in their handshake, and whom to drop when a new
/// one comes and there is no room.
///
/// A new connection is always let in; to make room, the one dropped is a
/// connection that has not even said hello, oldest first, else the oldest
/// that has. A sender says hello as soon as it connects and finishes in
/// one round trip, so idle connections, however many and however often
/// reopened, go first, and only a flood of hellos within one round trip
/// could push a sender out.
#[derive(Debug)]
pub struct PendingHandshakes {
    cap: usize,
    per_source: usize,
    next: u64,
    entries: Vec<Pending>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    id: u64,
    source: IpAddr,
    said_hello: bool,
}

impl Pending {
    /// Lower goes first: silent before spoken, then oldest.
    fn eviction_rank(&self) -> (bool, u64) {
        (self.said_hello, self.id)
    }
}

impl Default for PendingHandshakes {
    fn default() -> Self {
        PendingHandshakes::new(MAX_PENDING, MAX_PENDING_PER_SOURCE)
    }
}

impl PendingHandshakes {
    pub fn new(cap: usize, per_source: usize) -> Self {
        assert!(cap >= 1 && per_source >= 1);
        PendingHandshakes {
            cap,
            per_source,
            next: 0,
            entries: Vec::new(),
        }
    }

    /// Lets a connection from `source` in: its id, and the ids of the
    /// connections to drop for it.
    pub fn admit(&mut self, source: IpAddr) -> (u64, Vec<u64>) {
        let mut evicted = Vec::new();
        if self.entries.iter().filter(|p| p.source == source).count() >= self.per_source {
            evicted.extend(self.evict(|p| p.source == source));
        }
        if self.entries.len() >= self.cap {
            evicted.extend(self.evict(|_| true));
        }
        let id = self.next;
        self.next += 1;
        self.entries.push(Pending {
            id,
            source,
            said_hello: false,
        });
        (id, evicted)
    }

    fn evict(&mut self, among: impl Fn(&Pending) -> bool) -> Option<u64> {
        let (at, _) = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, p)| among(p))
            .min_by_key(|(_, p)| p.eviction_rank())?;
        Some(self.entries.swap_remove(at).id)
    }

    /// The connection sent a well-formed hello.
    pub fn said_hello(&mut self, id: u64) {
        if let Some(p) = self.entries.iter_mut().find(|p| p.id == id) {
            p.said_hello = true;
        }
    }

    /// The connection finished its handshake, or failed it; false if it
    /// had been dropped already.
    pub fn finish(&mut self, id: u64) -> bool {
        match self.entries.iter().position(|p| p.id == id) {
            Some(at) => {
                self.entries.swap_remove(at);
                true
            }
            None => false,
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        self.entries.iter().any(|p| p.id == id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The receiver's limits, set by whoever runs it.
#[derive(Debug, Clone, clap::Args)]
pub struct ReceiverLimits {
    /// Most sessions (senders) served at once; more are refused with the
    /// reason.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub max_sessions: usize,
    /// Longest trial accepted, warm-up included.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub max_duration: Duration,
    /// Highest offered rate accepted, in messages (for churn and
    /// handshake, connections) per second; a closed-loop trial, which has
    /// no rate, is refused when this is set [default: none].
    #[arg(long, value_name = "PER_SECOND")]
    pub max_rate: Option<f64>,
    /// Largest message accepted, header included (e.g. 65536, 64KiB, 16MiB).
    #[arg(long, default_value = "16MiB", value_parser = parse_bytes, value_name = "BYTES")]
    pub max_message_size: u64,
    /// How long a session may sit idle between trials, or past the end
    /// its trial declared, before it is closed.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub idle_timeout: Duration,
    /// Memory the receiver may commit to sessions and trials, all of them
    /// together; a trial that would go beyond it is refused before it
    /// starts (e.g. 512MiB, 4GiB).
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes, value_name = "BYTES")]
    pub memory_budget: u64,
}

/// The defaults are the flags' own, read the way the command line is: one
/// definition of each.
impl Default for ReceiverLimits {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct NoFlags {
            #[command(flatten)]
            limits: ReceiverLimits,
        }
        <NoFlags as clap::Parser>::parse_from(["receiver"]).limits
    }
}

impl ReceiverLimits {
    /// Refuses a trial that asks for more than these limits allow, saying
    /// which limit and how to raise it.
    pub fn check(&self, setup: &TrialSetup) -> Result<(), String> {
        let offered = Duration::from_nanos(setup.plan.offered_ns());
        if offered > self.max_duration {
            return Err(format!(
                "the trial runs {} (warm-up included), longer than this receiver's --max-duration {}: \
                 shorten --duration, or restart the receiver with a larger --max-duration",
                humantime::format_duration(offered),
                humantime::format_duration(self.max_duration)
            ));
        }
        if u64::from(setup.size) > self.max_message_size {
            return Err(format!(
                "messages of {} bytes are larger than this receiver's --max-message-size {}: give a smaller \
                 --size, or restart the receiver with a larger --max-message-size",
                setup.size, self.max_message_size
            ));
        }
        if let Some(max) = self.max_rate {
            match setup.plan.rate() {
                None => {
                    return Err(format!(
                    "a closed-loop trial has no rate, and this receiver allows at most --max-rate {max} per \
                         second: give --rate, or restart the receiver without --max-rate"
                ))
                }
                Some(rate) if rate > max * 1.001 => {
                    return Err(format!(
                    "the trial offers {rate:.0} per second (messages of all its streams, or connections), \
                         more than this receiver's --max-rate {max}: \
                         lower the rate, or restart the receiver with a larger --max-rate"
                ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Where a trial's sender must have sent Stop by: its declared time
    /// on the data plane, and then the idle timeout.
    pub fn trial_deadline(&self, setup: &TrialSetup) -> Duration {
        let plan = &setup.plan;
        Duration::from_nanos(plan.offered_ns().saturating_add(plan.loss_timeout_ns))
            .saturating_add(crate::schedule::GRACE)
            .saturating_add(self.idle_timeout)
    }
}

/// Memory a session holds before any trial: its thread, its runtime, its
/// control buffers.
pub const SESSION_BYTES: u64 = 4 << 20;
/// What the handshakes in progress may hold at most, control frames
/// included, and the receiver's own base.
pub const BASE_BYTES: u64 = 32 << 20;
/// A delivery record of a one-way trial, with its share of the set of
/// distinct messages.
pub const RECORD_BYTES: u64 = 64;
/// One connection's state beyond its message buffers (kernel socket
/// aside): TLS or QUIC state, task, buffers' slack.
pub const CONNECTION_BYTES: u64 = 64 << 10;

/// Delivery records a one-way trial may keep: every scheduled message
/// twice over (a link may duplicate), and a margin.
pub fn record_cap(setup: &TrialSetup) -> usize {
    let scheduled = setup.plan.messages.unwrap_or(0);
    let cap = scheduled.saturating_mul(2).saturating_add(1024);
    cap.min(crate::dataplane::multi::MAX_RECORDS as u64) as usize
}

/// Most data connections a trial keeps open at once at the receiver: what
/// its sender opens, with room for connections the sender is through with
/// and the receiver not yet.
pub fn most_open(setup: &TrialSetup) -> usize {
    const SLACK: usize = 4;
    match setup.workload {
        WorkloadSetup::Rr { .. } | WorkloadSetup::Stream {} | WorkloadSetup::Heartbeat {} => 1 + SLACK,
        WorkloadSetup::Multistream { streams, .. } => streams as usize + SLACK,
        WorkloadSetup::Churn { max_inflight, .. } | WorkloadSetup::Handshake { max_inflight, .. } => {
            2 * max_inflight as usize + SLACK
        }
        WorkloadSetup::Bulk { flows, direction, .. } => direction.total_flows(flows) as usize + SLACK,
    }
}

/// The most memory a trial of `setup` is expected to hold at the
/// receiver, beyond its session's.
pub fn trial_bytes(setup: &TrialSetup) -> u64 {
    let size = u64::from(setup.size);
    // A message buffer each way per connection, grown only as bytes arrive.
    let per_connection = CONNECTION_BYTES + 2 * size;
    match setup.workload {
        // And, counting delivery, each tracked request id's counts.
        WorkloadSetup::Rr { .. } => {
            let per_id = std::mem::size_of::<transbench_wire::processed::IdCounts>() as u64;
            per_connection + crate::workload::rr::tracked_ids(setup).map_or(0, |ids| per_id * ids as u64)
        }
        WorkloadSetup::Multistream { streams, .. } => {
            record_cap(setup) as u64 * RECORD_BYTES + u64::from(streams) * per_connection
        }
        WorkloadSetup::Stream {} | WorkloadSetup::Heartbeat {} => {
            record_cap(setup) as u64 * RECORD_BYTES + per_connection
        }
        // Each flow's bins and read buffer; nothing grows with the bytes.
        WorkloadSetup::Bulk { flows, direction, .. } => {
            let bins = crate::workload::bulk::bins(setup) as u64 * 8;
            // A down flow's write buffer is one --size; a read buffer is larger.
            u64::from(direction.total_flows(flows))
                * (bins
                    + crate::dataplane::bulk::READ_BUFFER.max(setup.size as usize) as u64
                    + CONNECTION_BYTES)
        }
        WorkloadSetup::Churn { .. } | WorkloadSetup::Handshake { .. } => {
            // Connections open at once: a loss timeout's worth, and a
            // second more, at the offered rate.
            let plan = &setup.plan;
            let rate = plan.rate().unwrap_or(0.0);
            let alive_s = plan.loss_timeout_ns as f64 / 1e9 + 1.0;
            let open = ((rate * alive_s).ceil() as u64)
                .min(plan.messages.unwrap_or(u64::MAX))
                .min(most_open(setup) as u64);
            open.max(1) * per_connection
        }
    }
}

/// A receiver-wide memory budget, shared by its sessions; what is taken
/// comes back when its [`Reservation`] drops.
#[derive(Debug)]
pub struct MemoryBudget {
    total: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    pub fn new(total: u64) -> Arc<Self> {
        Arc::new(MemoryBudget {
            total,
            used: AtomicU64::new(BASE_BYTES.min(total)),
        })
    }

    /// Takes `bytes`, or says how much is in use if they do not fit.
    pub fn reserve(self: &Arc<Self>, bytes: u64) -> Result<Reservation, u64> {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let after = used.saturating_add(bytes);
            if after > self.total {
                return Err(used);
            }
            match self
                .used
                .compare_exchange_weak(used, after, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Ok(Reservation {
                        budget: self.clone(),
                        bytes,
                    })
                }
                Err(now) => used = now,
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}

/// Memory held against a [`MemoryBudget`] until dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Parses a byte count: a number, optionally with a unit (B, KB, MB, GB
/// in powers of 1000; KiB, MiB, GiB in powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?}: use B, KB, MB, GB, KiB, MiB or GiB"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a byte count (e.g. 65536, 64KiB, 1GiB)"))?;
    let bytes = value * scale as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes <= u64::MAX as f64) {
        return Err(format!("{s:?} is out of range: at least one byte"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use transbench_wire::{QuicStreamMode, Transport, TrialPlan};

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_sender_that_said_hello_outlives_any_number_of_idle_strangers() {
        let mut table = PendingHandshakes::new(8, 8);
        for _ in 0..8 {
            table.admit(ip(1));
        }
        let (sender, _) = table.admit(ip(2));
        table.said_hello(sender);
        // 500 idle connections, each reopened when dropped.
        for _ in 0..500 {
            let (_, evicted) = table.admit(ip(1));
            assert!(!evicted.contains(&sender));
            assert_eq!(evicted.len(), 1, "room is made by dropping one");
        }
        assert!(table.contains(sender));
        assert_eq!(table.len(), 8);
        assert!(table.finish(sender));
        assert!(!table.finish(sender));
    }

    #[test]
    fn the_oldest_silent_connection_goes_first_then_the_oldest_that_spoke() {
        let mut table = PendingHandshakes::new(3, 3);
        let (a, _) = table.admit(ip(1));
        let (b, _) = table.admit(ip(1));
        let (c, _) = table.admit(ip(1));
        table.said_hello(a);
        let (d, evicted) = table.admit(ip(1));
        assert_eq!(evicted, vec![b], "silent before spoken, oldest first");
        table.said_hello(c);
        table.said_hello(d);
        let (_, evicted) = table.admit(ip(1));
        assert_eq!(evicted, vec![a], "all spoke: the oldest");
    }

    #[test]
    fn one_source_at_its_limit_makes_room_among_its_own() {
        let mut table = PendingHandshakes::new(10, 2);
        let (other, _) = table.admit(ip(9));
        let (x, _) = table.admit(ip(1));
        table.admit(ip(1));
        let (_, evicted) = table.admit(ip(1));
        assert_eq!(evicted, vec![x]);
        assert!(table.contains(other), "another address keeps its place");
        assert_eq!(table.len(), 3);
    }

    fn setup(workload: WorkloadSetup, size: u32, messages: Option<u64>) -> TrialSetup {
        TrialSetup {
            transport: Transport::Tcp,
            size,
            tcp_congestion: None,
            quic_congestion: None,
            plan: TrialPlan {
                warmup_ns: 1_000_000_000,
                duration_ns: 9_000_000_000,
                loss_timeout_ns: 1_000_000_000,
                messages,
            },
            reverse_impair: None,
            workload,
        }
    }

    fn rr() -> WorkloadSetup {
        WorkloadSetup::Rr {
            udp_peer_port: None,
            quic_stream: QuicStreamMode::PerRequest,
            delivery: None,
        }
    }

    #[test]
    fn each_limit_refuses_naming_itself_and_how_to_raise_it() {
        let limits = ReceiverLimits {
            max_duration: Duration::from_secs(5),
            ..ReceiverLimits::default()
        };
        let err = limits.check(&setup(rr(), 64, Some(10_000))).unwrap_err();
        assert!(err.contains("--max-duration 5s"), "{err}");
        let limits = ReceiverLimits {
            max_message_size: 1000,
            ..ReceiverLimits::default()
        };
        assert!(limits.check(&setup(rr(), 1000, None)).is_ok());
        let err = limits.check(&setup(rr(), 1001, None)).unwrap_err();
        assert!(err.contains("--max-message-size 1000"), "{err}");
        let limits = ReceiverLimits {
            max_rate: Some(500.0),
            ..ReceiverLimits::default()
        };
        assert!(
            limits.check(&setup(rr(), 64, Some(5_000))).is_ok(),
            "500/s over 10 s"
        );
        let err = limits.check(&setup(rr(), 64, Some(5_100))).unwrap_err();
        assert!(
            err.contains("510 per second") && err.contains("--max-rate 500"),
            "{err}"
        );
        let err = limits.check(&setup(rr(), 64, None)).unwrap_err();
        assert!(err.contains("closed-loop"), "{err}");
    }

    #[test]
    fn a_trials_memory_follows_what_it_records_and_holds_open() {
        let oneway = |messages| {
            setup(
                WorkloadSetup::Multistream {
                    streams: 4,
                    echo: false,
                },
                1024,
                Some(messages),
            )
        };
        assert!(trial_bytes(&oneway(1_000_000)) > trial_bytes(&oneway(1_000)));
        assert_eq!(record_cap(&oneway(1_000)), 3_024);
        assert_eq!(
            record_cap(&oneway(u64::MAX)),
            crate::dataplane::multi::MAX_RECORDS,
            "never more than a trial records"
        );
        let churn = |messages, max_inflight| {
            let workload = WorkloadSetup::Churn {
                close: Default::default(),
                max_inflight,
            };
            setup(workload, 64, Some(messages))
        };
        // 200/s with a 1 s loss timeout: about 400 connections open at once.
        assert_eq!(trial_bytes(&churn(2_000, 1000)), 400 * (CONNECTION_BYTES + 128));
        // One at a time, however fast: a few.
        assert_eq!(
            trial_bytes(&churn(1_000_000, 1)),
            most_open(&churn(0, 1)) as u64 * (CONNECTION_BYTES + 128)
        );
    }

    #[test]
    fn a_budget_refuses_what_does_not_fit_and_takes_back_what_is_dropped() {
        let budget = MemoryBudget::new(BASE_BYTES + 100);
        let a = budget.reserve(60).unwrap();
        assert_eq!(budget.reserve(50).unwrap_err(), BASE_BYTES + 60);
        drop(a);
        let _b = budget.reserve(100).unwrap();
    }

    #[test]
    fn the_defaults_are_the_flags_defaults() {
        let limits = ReceiverLimits::default();
        assert_eq!(limits.max_sessions, 16);
        assert_eq!(limits.max_duration, Duration::from_secs(3600));
        assert_eq!(limits.max_rate, None);
        assert_eq!(limits.max_message_size, 16 << 20);
        assert_eq!(limits.idle_timeout, Duration::from_secs(30));
        assert_eq!(limits.memory_budget, 1 << 30);
    }

    #[test]
    fn byte_counts_take_decimal_and_binary_units() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("64KiB"), Ok(65536));
        assert_eq!(parse_bytes("1.5 GB"), Ok(1_500_000_000));
        assert_eq!(parse_bytes("16MiB"), Ok(16 << 20));
        assert!(parse_bytes("12 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("").is_err());
    }
}
