//! What a retransmission timer that doubles at each expiry predicts for an
//! outage: TCP's RTO as Linux runs it and QUIC's PTO as quinn-proto 0.11
//! runs it.
//!
//! A timer started at `s` (a send the outage swallowed) expires first at
//! `s + I₀`, then each wait doubles up to a cap: expiry k (k ≥ 1) is at
//! `s + E(k)`, E(k) = Σ_{i<k} min(I₀·2^i, cap). Each expiry retransmits
//! (TCP: the oldest unacknowledged segment; QUIC: a probe carrying new
//! stream data if the application queued some, else the oldest packet's
//! data). The path heals at `b`; the first expiry at or after `b` gets
//! through, and the answer reaches the client an *answer delay* later
//! ([`Blackholed::answer_delay_ns`]). So the recovery after the heal,
//! `s + E(k) − b + answer delay`, lies in `[answer delay, I_{k−1} +
//! answer delay)`, where I_{k−1} is the wait in force at the heal.
//!
//! Assumptions: one timer backs off for the whole outage (an rr client's
//! later requests queue behind the lost one, or wait on a full congestion
//! window, and send nothing the timer would measure from); the peer answers
//! the retransmission at once; the path carries it in one round trip (no
//! queue left from before the outage); and the timer's interval at `s` is
//! the one given (TCP_INFO's `tcpi_rto` read at the outage's start: on
//! Linux srtt plus a variance term never under 200 ms, `tcp_rto_min`, in
//! whole jiffies; quinn's estimate, [`QuinnPto`]).
//!
//! **TCP on Linux.** RFC 6298 §5.5 doubles the RTO at each expiry; Linux
//! (`net/ipv4/tcp_timer.c`, `tcp_retransmit_timer`) caps it at
//! `TCP_RTO_MAX`, 120 s, and never goes below `TCP_RTO_MIN`, 200 ms
//! (`include/net/tcp.h`). The retransmission timer is armed from the oldest
//! unacknowledged segment and new sends do not restart it (RFC 6298 §5.1),
//! and a tail loss probe sent before it does not move it
//! (`tcp_rearm_rto` measures from that segment), so `s` is the first send
//! the outage swallowed. It gives up with ETIMEDOUT
//! (`tcp_write_timeout`, `retransmits_timed_out`), checked at each expiry
//! before it retransmits, against the time since `retrans_stamp`, which
//! `tcp_retransmit_skb` sets to the *first retransmission's* send time:
//! - with `TCP_USER_TIMEOUT` set, once that much has passed since the
//!   first retransmission; `tcp_clamp_rto_to_user_timeout` (Linux 4.19 on)
//!   shortens the timer so an expiry falls on that instant;
//! - otherwise at the first expiry at least `tcp_model_timeout(tcp_retries2,
//!   TCP_RTO_MIN)` after the first retransmission: the time 200 ms doubling
//!   to 120 s takes for `tcp_retries2` retransmissions, 924.6 s for the
//!   default 15. Since that time is measured from the first
//!   retransmission, not the send, an RTO of exactly 200 ms gives up at
//!   1044.6 s after 16 retransmissions, any RTO from 200.2 ms on after 15,
//!   at some 925 s (the kernel's documentation calls 924.6 s a lower bound).
//!
//! **QUIC in quinn-proto 0.11.19** (the version in Cargo.lock; read in its
//! sources): the probe timeout of the application data space is
//! `pto_base + max_ack_delay` with `pto_base = smoothed_rtt +
//! max(4·rttvar, TIMER_GRANULARITY)` (`connection/paths.rs`,
//! `RttEstimator::pto_base`; `TIMER_GRANULARITY` = 1 ms in `lib.rs`), both
//! terms multiplied by `2^min(pto_count, MAX_BACKOFF_EXPONENT)` with
//! `MAX_BACKOFF_EXPONENT` = 16 (`connection/mod.rs`,
//! `pto_time_and_space`), `pto_count` rising at each PTO
//! (`on_loss_detection_timeout`) and reset only by an acknowledgement. The
//! timer runs from the last ack-eliciting packet sent, and each probe is
//! one, so probes fall at `s + PTO·(2^k − 1)` as TCP's do; but new data
//! sent during the outage moves `s`: an open-loop client goes on sending
//! requests until the congestion window is full, so `s` is the last packet
//! it let out, not the first lost. Before any RTT sample the estimator
//! holds `initial_rtt` = 333 ms and rttvar = initial_rtt / 2
//! (`config/transport.rs` `TransportConfig::default`,
//! `RttEstimator::new`); the peer's `max_ack_delay` defaults to 25 ms
//! (`transport_parameters.rs`, RFC 9000 §18.2). The idle timeout
//! (`max_idle_timeout`, default 30 s in `TransportConfig::default`,
//! negotiated as the smaller non-zero of both sides') closes the
//! connection with `ConnectionError::TimedOut`: `reset_idle_timeout` sets
//! it to `max(idle timeout, 3·PTO)` (PTO without backoff) after each packet
//! received and after the first ack-eliciting packet sent after one
//! (`packet_builder.rs`), which for a client sending all the time is `s`
//! within one request's interval.
//!
//! **An acknowledgement after the heal** that arrives before the next
//! expiry restarts a QUIC timer ([`Restart`]): `on_ack_received` resets
//! `pto_count` whenever new packets are acknowledged, and the sample it
//! takes (the largest newly acknowledged packet's age, less the peer's
//! delay capped at its `max_ack_delay`) is as long as the outage when the
//! peer's first probe after the heal acknowledges what it received just
//! before it ([`quinn_rtt_after`]). The restarted wait, from the last
//! send, then holds seconds after a partition of seconds.

use super::{ErrorKind, Failure, Outage, RecoveryError, MS, S};

/// Linux's floor on the RTO, `TCP_RTO_MIN` (`include/net/tcp.h`): 200 ms.
pub const LINUX_TCP_RTO_MIN_NS: u64 = 200 * MS;

/// Linux's cap on the backed-off RTO, `TCP_RTO_MAX`: 120 s.
pub const LINUX_TCP_RTO_MAX_NS: u64 = 120 * S;

/// Linux's default `net.ipv4.tcp_retries2`.
pub const LINUX_TCP_RETRIES2: u32 = 15;

/// quinn's `TransportConfig::default().initial_rtt`: RFC 9002's 333 ms.
pub const QUINN_INITIAL_RTT_NS: u64 = 333 * MS;

/// quinn-proto's `TIMER_GRANULARITY` (RFC 9002's kGranularity): 1 ms.
pub const QUINN_TIMER_GRANULARITY_NS: u64 = MS;

/// The `max_ack_delay` transport parameter's default (RFC 9000 §18.2),
/// which quinn uses for a peer that sends none: 25 ms.
pub const QUIC_DEFAULT_MAX_ACK_DELAY_NS: u64 = 25 * MS;

/// quinn-proto's `MAX_BACKOFF_EXPONENT`: the PTO doubles 16 times at most.
pub const QUINN_MAX_BACKOFF_EXPONENT: u32 = 16;

/// quinn's `TransportConfig::default().max_idle_timeout`: 30 s.
pub const QUINN_DEFAULT_IDLE_TIMEOUT_NS: u64 = 30 * S;

/// A timer whose wait doubles at each expiry, up to a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first_interval_ns: u64,
    max_interval_ns: u64,
    /// Waits before the cap: wait i is `first·2^i` for i below this, the
    /// cap from it on.
    doublings: u32,
}

impl Backoff {
    pub fn new(first_interval_ns: u64, max_interval_ns: u64) -> Result<Self, RecoveryError> {
        if first_interval_ns == 0 || first_interval_ns > max_interval_ns {
            return Err(RecoveryError::Backoff {
                first_interval_ns,
                max_interval_ns,
            });
        }
        let mut doublings = 0;
        while u128::from(first_interval_ns) << doublings < u128::from(max_interval_ns) {
            doublings += 1;
        }
        Ok(Backoff {
            first_interval_ns,
            max_interval_ns,
            doublings,
        })
    }

    /// Linux's RTO from `rto_ns` (at most [`LINUX_TCP_RTO_MAX_NS`]),
    /// doubling to [`LINUX_TCP_RTO_MAX_NS`].
    pub fn linux_tcp(rto_ns: u64) -> Result<Self, RecoveryError> {
        Backoff::new(rto_ns, LINUX_TCP_RTO_MAX_NS)
    }

    pub fn first_interval_ns(&self) -> u64 {
        self.first_interval_ns
    }

    pub fn max_interval_ns(&self) -> u64 {
        self.max_interval_ns
    }

    /// The wait before expiry `i + 1`: wait 0 runs from the timer's start
    /// to its first expiry.
    pub fn interval_ns(&self, i: u64) -> u64 {
        if i >= u64::from(self.doublings) {
            self.max_interval_ns
        } else {
            self.first_interval_ns << i
        }
    }

    /// E(k): from the timer's start to its k-th expiry, ns (E(0) = 0;
    /// saturates at `u64::MAX`).
    pub fn expiry_ns(&self, k: u64) -> u64 {
        let first = u128::from(self.first_interval_ns);
        let doublings = u64::from(self.doublings);
        let e = if k <= doublings {
            first * ((1u128 << k) - 1)
        } else {
            first * ((1u128 << doublings) - 1) + u128::from(k - doublings) * u128::from(self.max_interval_ns)
        };
        u64::try_from(e).unwrap_or(u64::MAX)
    }

    /// The first expiry at or after `elapsed_ns` from the timer's start:
    /// its number k ≥ 1.
    pub fn first_expiry_from(&self, elapsed_ns: u64) -> u64 {
        let doublings = u64::from(self.doublings);
        if let Some(k) = (1..=doublings).find(|&k| self.expiry_ns(k) >= elapsed_ns) {
            return k;
        }
        // Past the doublings every wait is the cap: count them.
        let capped_from = self.expiry_ns(doublings);
        (doublings
            + elapsed_ns
                .saturating_sub(capped_from)
                .div_ceil(self.max_interval_ns))
        .max(1)
    }
}

/// The estimate quinn's probe timeout comes from (application data space).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuinnPto {
    pub smoothed_rtt_ns: u64,
    pub rttvar_ns: u64,
    /// The peer's `max_ack_delay`.
    pub max_ack_delay_ns: u64,
}

impl QuinnPto {
    /// Before any RTT sample: quinn's `initial_rtt` with rttvar half of it,
    /// and the default `max_ack_delay`; a PTO of 1,024 ms.
    pub fn before_first_sample() -> Self {
        QuinnPto {
            smoothed_rtt_ns: QUINN_INITIAL_RTT_NS,
            rttvar_ns: QUINN_INITIAL_RTT_NS / 2,
            max_ack_delay_ns: QUIC_DEFAULT_MAX_ACK_DELAY_NS,
        }
    }

    /// On a path of steady round trip `rtt_ns` (quinn's `Connection::rtt`),
    /// after enough samples that rttvar has decayed (by 3/4 a sample) to
    /// nothing, with the default `max_ack_delay`: rtt + 1 ms + 25 ms. quinn
    /// does not expose rttvar; a jittered path has a larger one.
    pub fn steady(rtt_ns: u64) -> Self {
        QuinnPto {
            smoothed_rtt_ns: rtt_ns,
            rttvar_ns: 0,
            max_ack_delay_ns: QUIC_DEFAULT_MAX_ACK_DELAY_NS,
        }
    }

    /// The PTO before any backoff: smoothed_rtt + max(4·rttvar,
    /// kGranularity) + max_ack_delay.
    pub fn pto_ns(&self) -> u64 {
        self.smoothed_rtt_ns
            .saturating_add(self.rttvar_ns.saturating_mul(4).max(QUINN_TIMER_GRANULARITY_NS))
            .saturating_add(self.max_ack_delay_ns)
    }

    /// The PTO doubling at each probe, at most [`QUINN_MAX_BACKOFF_EXPONENT`]
    /// times.
    pub fn backoff(&self) -> Backoff {
        QuinnPto::backoff_from(self.pto_ns())
    }

    fn backoff_from(pto_ns: u64) -> Backoff {
        let pto = pto_ns.max(QUINN_TIMER_GRANULARITY_NS);
        Backoff::new(pto, pto.saturating_mul(1 << QUINN_MAX_BACKOFF_EXPONENT))
            .expect("a PTO is at least the timer granularity, and its cap above it")
    }
}

/// When the connection is given up while its sends go unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// Linux without `TCP_USER_TIMEOUT`: at the first expiry at least
    /// `tcp_model_timeout(retries2, TCP_RTO_MIN)` after the first
    /// retransmission, with ETIMEDOUT.
    TcpRetries2(u32),
    /// Linux with `TCP_USER_TIMEOUT` (ns, above 0): that long after the
    /// first retransmission, with ETIMEDOUT.
    TcpUserTimeout(u64),
    /// quinn: `max(idle timeout, 3·PTO)` (ns, the negotiated idle timeout)
    /// after the timer's start, closed with its idle timeout.
    QuicIdle(u64),
    Never,
}

impl GiveUp {
    /// The error the application sees when the connection is given up.
    pub fn error(&self) -> Option<ErrorKind> {
        match self {
            GiveUp::TcpRetries2(_) | GiveUp::TcpUserTimeout(_) => Some(ErrorKind::ConnectionTimedOut),
            GiveUp::QuicIdle(_) => Some(ErrorKind::QuicIdleTimeout),
            GiveUp::Never => None,
        }
    }
}

/// Linux's `tcp_model_timeout(sk, retries2, TCP_RTO_MIN)`: how long 200 ms
/// doubling to 120 s takes for `retries2` retransmissions plus one wait,
/// ns (924.6 s for 15).
pub fn linux_retries2_timeout_ns(retries2: u32) -> u64 {
    // ilog2(TCP_RTO_MAX / TCP_RTO_MIN) = ilog2(600) = 9.
    let linear_backoff_thresh = (LINUX_TCP_RTO_MAX_NS / LINUX_TCP_RTO_MIN_NS).ilog2();
    if retries2 <= linear_backoff_thresh {
        ((2u64 << retries2) - 1) * LINUX_TCP_RTO_MIN_NS
    } else {
        ((2u64 << linear_backoff_thresh) - 1) * LINUX_TCP_RTO_MIN_NS
            + u64::from(retries2 - linear_backoff_thresh) * LINUX_TCP_RTO_MAX_NS
    }
}

/// A transport's retransmission timer and when it gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerModel {
    backoff: Backoff,
    give_up: GiveUp,
}

impl TimerModel {
    pub fn new(backoff: Backoff, give_up: GiveUp) -> Self {
        TimerModel { backoff, give_up }
    }

    /// Linux TCP with RTO `rto_ns` at the outage's start (`tcpi_rto` is
    /// in µs): `TCP_USER_TIMEOUT` decides when it gives up if set (`Some`
    /// above 0; 0 is unset, as for the socket option), else `retries2`
    /// (the namespace's `net.ipv4.tcp_retries2`).
    pub fn linux_tcp(
        rto_ns: u64,
        user_timeout_ns: Option<u64>,
        retries2: u32,
    ) -> Result<Self, RecoveryError> {
        let give_up = match user_timeout_ns {
            Some(timeout) if timeout > 0 => GiveUp::TcpUserTimeout(timeout),
            _ => GiveUp::TcpRetries2(retries2),
        };
        Ok(TimerModel::new(Backoff::linux_tcp(rto_ns)?, give_up))
    }

    /// quinn with the negotiated idle timeout (`None` or 0: none).
    pub fn quinn(pto: QuinnPto, idle_timeout_ns: Option<u64>) -> Self {
        TimerModel::quinn_with_pto(pto.pto_ns(), idle_timeout_ns)
    }

    /// quinn whose probe timeout before any backoff is `pto_ns`, as read
    /// off its probes rather than computed from an estimate (quinn does not
    /// expose rttvar); at least the timer granularity.
    pub fn quinn_with_pto(pto_ns: u64, idle_timeout_ns: Option<u64>) -> Self {
        let give_up = match idle_timeout_ns {
            Some(timeout) if timeout > 0 => GiveUp::QuicIdle(timeout),
            _ => GiveUp::Never,
        };
        TimerModel::new(QuinnPto::backoff_from(pto_ns), give_up)
    }

    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    pub fn give_up(&self) -> GiveUp {
        self.give_up
    }

    /// From the timer's start until the connection is given up, ns;
    /// `None`: never.
    pub fn gives_up_after_ns(&self) -> Option<u64> {
        let first_retransmission = self.backoff.expiry_ns(1);
        match self.give_up {
            GiveUp::TcpRetries2(retries2) => {
                let due = first_retransmission.saturating_add(linux_retries2_timeout_ns(retries2));
                Some(self.backoff.expiry_ns(self.backoff.first_expiry_from(due)))
            }
            GiveUp::TcpUserTimeout(timeout) => Some(first_retransmission.saturating_add(timeout)),
            GiveUp::QuicIdle(timeout) => {
                Some(timeout.max(self.backoff.first_interval_ns().saturating_mul(3)))
            }
            GiveUp::Never => None,
        }
    }

    /// The retransmissions (or probes) of a timer started at `start_ns`,
    /// in order, until the connection is given up (without end if never).
    pub fn retransmissions(&self, start_ns: u64) -> impl Iterator<Item = u64> + '_ {
        let gives_up = self.gives_up_after_ns().unwrap_or(u64::MAX);
        (1..)
            .map(|k| self.backoff.expiry_ns(k))
            .take_while(move |&e| e < gives_up)
            .map(move |e| start_ns.saturating_add(e))
    }
}

/// Which way an outage drops packets, as far as the answer's delay after
/// the retransmission that gets through is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blackholed {
    /// Both directions: the client's timer counts; its retransmitted
    /// request crosses, and the answer comes back: one round trip.
    BothWays,
    /// Requests only: as [`Blackholed::BothWays`].
    Requests,
    /// Responses only: the requests arrived and the server's timer counts
    /// (its first lost send is the first response it sent at or after the
    /// outage's start); its retransmitted response crosses once: half a
    /// round trip. The client's own retransmissions reach a server that
    /// has answered already and only acknowledges them.
    Responses,
}

impl Blackholed {
    /// From the retransmission that gets through to the answer at the
    /// client, on a path of round trip `rtt_ns`.
    pub fn answer_delay_ns(self, rtt_ns: u64) -> u64 {
        match self {
            Blackholed::BothWays | Blackholed::Requests => rtt_ns,
            Blackholed::Responses => rtt_ns / 2,
        }
    }
}

/// How a connection comes back after the heal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Which retransmission gets through: 1 is the first.
    pub retransmission: u64,
    /// When: the first expiry at or after the heal.
    pub retransmission_ns: u64,
    /// The first answer after the heal: the retransmission plus the answer
    /// delay.
    pub first_answer_ns: u64,
    /// The retransmission less the heal: how long the healed path carried
    /// nothing while the sender waited on its timer.
    pub silent_after_heal_ns: u64,
    /// The first answer less the heal.
    pub recovery_after_heal_ns: u64,
    /// The wait in force at the heal: the one that ended in the
    /// retransmission. The recovery after the heal is below it plus the
    /// answer delay.
    pub interval_at_heal_ns: u64,
}

/// What the timer predicts for one outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prediction {
    /// A retransmission after the heal is answered before the connection
    /// is given up; the application sees delay, no error.
    Recovers(Recovery),
    /// The connection is given up first: the application sees this error
    /// (ETIMEDOUT, QUIC's idle timeout) at this time, its time to detect.
    GivesUp(Failure),
}

impl Prediction {
    pub fn recovery(&self) -> Option<&Recovery> {
        match self {
            Prediction::Recovers(recovery) => Some(recovery),
            Prediction::GivesUp(_) => None,
        }
    }

    /// When and how the application learns of the outage from the
    /// transport; `None`: never, it only waits.
    pub fn detection(&self) -> Option<Failure> {
        match self {
            Prediction::Recovers(_) => None,
            Prediction::GivesUp(failure) => Some(*failure),
        }
    }
}

/// What `model`'s timer, started at `timer_start_ns` (a send inside the
/// outage: TCP's first lost segment; for QUIC the last ack-eliciting
/// packet sent before the first probe, see the module's notes), predicts
/// for `outage`, with the answer `answer_delay_ns` after the
/// retransmission that gets through ([`Blackholed::answer_delay_ns`]).
/// An answer due exactly when the connection is given up counts as too
/// late.
pub fn predict(
    model: &TimerModel,
    timer_start_ns: u64,
    outage: Outage,
    answer_delay_ns: u64,
) -> Result<Prediction, RecoveryError> {
    if !(outage.start_ns()..outage.end_ns()).contains(&timer_start_ns) {
        return Err(RecoveryError::SendOutsideOutage {
            at_ns: timer_start_ns,
            start_ns: outage.start_ns(),
            end_ns: outage.end_ns(),
        });
    }
    let backoff = model.backoff();
    let k = backoff.first_expiry_from(outage.end_ns() - timer_start_ns);
    let after_start = backoff.expiry_ns(k);
    if let (Some(gives_up), Some(kind)) = (model.gives_up_after_ns(), model.give_up().error()) {
        if after_start.saturating_add(answer_delay_ns) >= gives_up {
            return Ok(Prediction::GivesUp(Failure {
                at_ns: timer_start_ns.saturating_add(gives_up),
                kind,
            }));
        }
    }
    let retransmission_ns = timer_start_ns.saturating_add(after_start);
    let first_answer_ns = retransmission_ns.saturating_add(answer_delay_ns);
    Ok(Prediction::Recovers(Recovery {
        retransmission: k,
        retransmission_ns,
        first_answer_ns,
        silent_after_heal_ns: retransmission_ns.saturating_sub(outage.end_ns()),
        recovery_after_heal_ns: first_answer_ns.saturating_sub(outage.end_ns()),
        interval_at_heal_ns: backoff.interval_ns(k - 1),
    }))
}

/// An acknowledgement that reached the sender after the heal, before its
/// timer's next expiry, and restarted the timer: QUIC resets its backoff
/// on any acknowledgement of new packets (RFC 9002 §6.2.1), and takes an
/// RTT sample from it (§5.1). After an outage both ways the peer's first
/// probe acknowledges what it received just before the outage, so that
/// sample is the outage's length, and the new first wait is as long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    pub at_ns: u64,
    /// The sender's last send before it: the restarted timer runs from
    /// there.
    pub last_send_ns: u64,
    /// The restarted timer's wait.
    pub interval_ns: u64,
}

impl Restart {
    /// `prediction` with the timer restarted, if that came after the heal
    /// and before the retransmission that would have got through: the
    /// next send is then at the restarted timer's expiry, or at once if
    /// that is past.
    pub fn apply(&self, prediction: Prediction, outage: Outage, answer_delay_ns: u64) -> Prediction {
        let Prediction::Recovers(r) = prediction else {
            return prediction;
        };
        if self.at_ns < outage.end_ns() || self.at_ns >= r.retransmission_ns {
            return prediction;
        }
        let retransmission_ns = self.at_ns.max(self.last_send_ns.saturating_add(self.interval_ns));
        let first_answer_ns = retransmission_ns.saturating_add(answer_delay_ns);
        Prediction::Recovers(Recovery {
            retransmission: r.retransmission,
            retransmission_ns,
            first_answer_ns,
            silent_after_heal_ns: retransmission_ns - outage.end_ns(),
            recovery_after_heal_ns: first_answer_ns - outage.end_ns(),
            interval_at_heal_ns: retransmission_ns - self.last_send_ns,
        })
    }
}

/// quinn's RTT estimator (`RttEstimator::update`, RFC 9002 §5.3) after one
/// sample, from `smoothed_ns` and `rttvar_ns`: the sample less the peer's
/// reported delay capped at its `max_ack_delay`.
pub fn quinn_rtt_after(smoothed_ns: u64, rttvar_ns: u64, adjusted_sample_ns: u64) -> (u64, u64) {
    let var = (3 * rttvar_ns + smoothed_ns.abs_diff(adjusted_sample_ns)) / 4;
    ((7 * smoothed_ns + adjusted_sample_ns) / 8, var)
}

/// The recovery after the heal against partition length, for a chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryCurve {
    /// (partition length, recovery after the heal), ns: a polyline that is
    /// the function exactly. Each tooth falls linearly to the answer delay
    /// where the heal meets a retransmission, then jumps (two points at one
    /// length) to the next wait plus the answer delay.
    pub points_ns: Vec<(u64, u64)>,
    /// Partitions longer than this are never recovered from: the
    /// connection is given up first. `None`: every partition up to the
    /// curve's end recovers.
    pub recovers_up_to_ns: Option<u64>,
}

/// [`predict`]'s recovery after the heal for every partition length from
/// `timer_start_after_outage_ns` (the timer's send, after the outage's
/// start: 0 for a request sent as the path goes dark) to
/// `max_partition_ns`.
pub fn recovery_curve(
    model: &TimerModel,
    timer_start_after_outage_ns: u64,
    answer_delay_ns: u64,
    max_partition_ns: u64,
) -> RecoveryCurve {
    let backoff = model.backoff();
    let offset = timer_start_after_outage_ns;
    let gives_up = model.gives_up_after_ns();
    let recovers = |k: u64| gives_up.is_none_or(|g| backoff.expiry_ns(k).saturating_add(answer_delay_ns) < g);
    let mut points_ns = Vec::new();
    if max_partition_ns <= offset {
        return RecoveryCurve {
            points_ns,
            recovers_up_to_ns: None,
        };
    }
    for k in 1.. {
        let (from, to) = (backoff.expiry_ns(k - 1), backoff.expiry_ns(k));
        if !recovers(k) {
            return RecoveryCurve {
                points_ns,
                recovers_up_to_ns: Some(offset + from),
            };
        }
        // Just past `from` the heal has missed expiry k − 1: the whole
        // wait to expiry k lies ahead.
        points_ns.push((offset + from, to - from + answer_delay_ns));
        let end = offset.saturating_add(to);
        if end >= max_partition_ns {
            points_ns.push((max_partition_ns, end - max_partition_ns + answer_delay_ns));
            break;
        }
        points_ns.push((end, answer_delay_ns));
    }
    RecoveryCurve {
        points_ns,
        recovers_up_to_ns: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u64 = 1_000 * S;
    const RTT: u64 = 20 * MS;

    fn outage(len_ns: u64) -> Outage {
        Outage::new(A, A + len_ns).unwrap()
    }

    fn tcp(rto_ns: u64) -> TimerModel {
        TimerModel::linux_tcp(rto_ns, None, LINUX_TCP_RETRIES2).unwrap()
    }

    fn recovered(prediction: Prediction) -> Recovery {
        *prediction.recovery().expect("recovers")
    }

    #[test]
    fn linux_rto_doubles_from_the_first_lost_send_to_the_cap() {
        let model = tcp(200 * MS);
        let after_a: Vec<u64> = model.retransmissions(A).take(12).map(|t| t - A).collect();
        let expected_ms = [
            200, 600, 1_400, 3_000, 6_200, 12_600, 25_400, 51_000, 102_200, 204_600,
            // 0.2 s·2^10 would be 204.8 s: capped at 120 s from here on.
            324_600, 444_600,
        ];
        assert_eq!(after_a, expected_ms.map(|ms| ms * MS));
        let backoff = model.backoff();
        assert_eq!(backoff.interval_ns(9), 102_400 * MS);
        assert_eq!(backoff.interval_ns(10), LINUX_TCP_RTO_MAX_NS);
        assert_eq!(backoff.interval_ns(1_000), LINUX_TCP_RTO_MAX_NS);
        assert_eq!(backoff.expiry_ns(0), 0);
    }

    #[test]
    fn an_outage_recovers_at_the_first_retransmission_after_the_heal_plus_a_round_trip() {
        let model = tcp(200 * MS);
        let one_s = recovered(predict(&model, A, outage(S), RTT).unwrap());
        assert_eq!(one_s.retransmission, 3);
        assert_eq!(one_s.retransmission_ns, A + 1_400 * MS);
        assert_eq!(one_s.first_answer_ns, A + 1_400 * MS + RTT);
        assert_eq!(one_s.silent_after_heal_ns, 400 * MS);
        assert_eq!(one_s.recovery_after_heal_ns, 400 * MS + RTT);
        assert_eq!(one_s.interval_at_heal_ns, 800 * MS);

        let four_s = recovered(predict(&model, A, outage(4 * S), RTT).unwrap());
        assert_eq!(four_s.retransmission_ns, A + 6_200 * MS);
        assert_eq!(four_s.recovery_after_heal_ns, 2_200 * MS + RTT);
        assert_eq!(four_s.interval_at_heal_ns, 3_200 * MS);

        // A heal exactly at a retransmission lets it through.
        let at = recovered(predict(&model, A, outage(1_400 * MS), RTT).unwrap());
        assert_eq!((at.retransmission, at.silent_after_heal_ns), (3, 0));
        // Past the doublings: 5 min of outage waits for 324.6 s.
        let long = recovered(predict(&model, A, outage(300 * S), RTT).unwrap());
        assert_eq!(long.retransmission_ns, A + 324_600 * MS);
        assert_eq!(long.interval_at_heal_ns, LINUX_TCP_RTO_MAX_NS);
        // Only the responses lost: the server's retransmission crosses once.
        let half = Blackholed::Responses.answer_delay_ns(RTT);
        let responses = recovered(predict(&model, A, outage(S), half).unwrap());
        assert_eq!(responses.recovery_after_heal_ns, 400 * MS + RTT / 2);
        assert_eq!(Blackholed::BothWays.answer_delay_ns(RTT), RTT);
        assert_eq!(Blackholed::Requests.answer_delay_ns(RTT), RTT);
    }

    #[test]
    fn the_timer_runs_from_a_send_inside_the_outage() {
        let model = tcp(200 * MS);
        let later = recovered(predict(&model, A + 300 * MS, outage(S), RTT).unwrap());
        assert_eq!(later.retransmission_ns, A + 900 * MS + 800 * MS);
        for start in [A - 1, A + S] {
            assert_eq!(
                predict(&model, start, outage(S), RTT),
                Err(RecoveryError::SendOutsideOutage {
                    at_ns: start,
                    start_ns: A,
                    end_ns: A + S
                })
            );
        }
    }

    #[test]
    fn tcp_retries2_gives_up_at_the_first_expiry_past_its_model_timeout() {
        assert_eq!(linux_retries2_timeout_ns(15), 924_600 * MS);
        assert_eq!(linux_retries2_timeout_ns(9), 204_600 * MS);
        assert_eq!(linux_retries2_timeout_ns(3), 3_000 * MS);
        // The model's time runs from the first retransmission: an RTO of
        // exactly 200 ms passes it only at the 17th expiry, after 16
        // retransmissions; 201 ms (what a jiffy's rounding gives) at the
        // 16th, after 15.
        let exact = tcp(200 * MS);
        assert_eq!(exact.gives_up_after_ns(), Some(1_044_600 * MS));
        assert_eq!(exact.retransmissions(A).count(), 16);
        let rounded = tcp(201 * MS);
        assert_eq!(rounded.gives_up_after_ns(), Some(201 * 1023 * MS + 720 * S));
        assert_eq!(rounded.retransmissions(A).count(), 15);

        let never = predict(&exact, A, outage(1_100 * S), RTT).unwrap();
        assert_eq!(
            never.detection(),
            Some(Failure {
                at_ns: A + 1_044_600 * MS,
                kind: ErrorKind::ConnectionTimedOut
            })
        );
        assert_eq!(never.recovery(), None);
        // The 16th retransmission, at 924.6 s, still brings it back.
        let last = recovered(predict(&exact, A, outage(900 * S), RTT).unwrap());
        assert_eq!(last.retransmission, 16);
        assert_eq!(predict(&exact, A, outage(S), RTT).unwrap().detection(), None);
    }

    #[test]
    fn a_user_timeout_gives_up_that_long_after_the_first_retransmission() {
        let model = TimerModel::linux_tcp(200 * MS, Some(5 * S), LINUX_TCP_RETRIES2).unwrap();
        assert_eq!(model.give_up(), GiveUp::TcpUserTimeout(5 * S));
        assert_eq!(model.gives_up_after_ns(), Some(5_200 * MS));
        let sent: Vec<u64> = model.retransmissions(A).map(|t| t - A).collect();
        assert_eq!(sent, [200, 600, 1_400, 3_000].map(|ms| ms * MS));
        assert_eq!(
            predict(&model, A, outage(4 * S), RTT).unwrap().detection(),
            Some(Failure {
                at_ns: A + 5_200 * MS,
                kind: ErrorKind::ConnectionTimedOut
            })
        );
        // The retransmission at 3.0 s answers before 5.2 s.
        assert_eq!(
            recovered(predict(&model, A, outage(2 * S), RTT).unwrap()).first_answer_ns,
            A + 3 * S + RTT
        );
        // 0 is the socket option unset.
        let unset = TimerModel::linux_tcp(200 * MS, Some(0), 8).unwrap();
        assert_eq!(unset.give_up(), GiveUp::TcpRetries2(8));
    }

    #[test]
    fn an_answer_due_as_the_connection_is_given_up_is_too_late() {
        // Given up at 5.2 s; the retransmission at 3.0 s is answered at
        // 5.2 s over a 2.2 s round trip.
        let model = TimerModel::linux_tcp(200 * MS, Some(5 * S), LINUX_TCP_RETRIES2).unwrap();
        let prediction = predict(&model, A, outage(2 * S), 2_200 * MS).unwrap();
        assert_eq!(prediction.detection().map(|f| f.at_ns), Some(A + 5_200 * MS));
        let in_time = predict(&model, A, outage(2 * S), 2_200 * MS - 1).unwrap();
        assert!(in_time.recovery().is_some());
    }

    #[test]
    fn quinn_defaults_give_its_probe_timeout() {
        let initial = QuinnPto::before_first_sample();
        assert_eq!(initial.pto_ns(), 333 * MS + 4 * 166_500_000 + 25 * MS);
        assert_eq!(initial.pto_ns(), 1_024 * MS);
        let steady = QuinnPto::steady(RTT);
        assert_eq!(steady.pto_ns(), RTT + MS + 25 * MS);
        // Variance above a quarter of the granularity counts four times.
        let jittery = QuinnPto {
            rttvar_ns: 5 * MS,
            ..steady
        };
        assert_eq!(jittery.pto_ns(), RTT + 20 * MS + 25 * MS);
        let backoff = steady.backoff();
        assert_eq!(backoff.max_interval_ns(), (46 * MS) << 16);
        assert_eq!(backoff.interval_ns(16), (46 * MS) << 16);
        assert_eq!(backoff.interval_ns(40), (46 * MS) << 16);
    }

    #[test]
    fn quinn_probes_double_and_its_idle_timeout_ends_the_connection() {
        let model = TimerModel::quinn(QuinnPto::steady(RTT), Some(QUINN_DEFAULT_IDLE_TIMEOUT_NS));
        let pto = 46 * MS;
        let probes: Vec<u64> = model.retransmissions(A).map(|t| t - A).collect();
        // pto·(2^k − 1) up to the last before 30 s: 23.506 s.
        assert_eq!(probes, (1..=9).map(|k| pto * ((1 << k) - 1)).collect::<Vec<_>>());
        assert_eq!(model.gives_up_after_ns(), Some(30 * S));

        let four_s = recovered(predict(&model, A, outage(4 * S), RTT).unwrap());
        assert_eq!(four_s.retransmission_ns, A + 127 * pto);
        assert_eq!(four_s.recovery_after_heal_ns, 127 * pto - 4 * S + RTT);
        let sixteen_s = recovered(predict(&model, A, outage(16 * S), RTT).unwrap());
        assert_eq!(sixteen_s.retransmission_ns, A + 511 * pto);
        assert_eq!(
            predict(&model, A, outage(24 * S), RTT).unwrap().detection(),
            Some(Failure {
                at_ns: A + 30 * S,
                kind: ErrorKind::QuicIdleTimeout
            })
        );
        // Without an idle timeout it waits for ever.
        let forever = TimerModel::quinn(QuinnPto::steady(RTT), None);
        assert_eq!(forever.gives_up_after_ns(), None);
        assert_eq!(
            TimerModel::quinn(QuinnPto::steady(RTT), Some(0)).give_up(),
            GiveUp::Never
        );
        assert!(predict(&forever, A, outage(3_600 * S), RTT)
            .unwrap()
            .recovery()
            .is_some());
        // An idle timeout under three PTOs waits for them.
        let short = TimerModel::quinn(QuinnPto::before_first_sample(), Some(S));
        assert_eq!(short.gives_up_after_ns(), Some(3 * 1_024 * MS));
    }

    #[test]
    fn the_curve_is_the_prediction_at_every_partition_length() {
        let model = tcp(200 * MS);
        let curve = recovery_curve(&model, 0, RTT, 4 * S);
        let ms = |ns: u64| ns / MS;
        let points: Vec<(u64, u64)> = curve.points_ns.iter().map(|&(t, r)| (ms(t), ms(r))).collect();
        assert_eq!(
            points,
            [
                (0, 220),
                (200, 20),
                (200, 420),
                (600, 20),
                (600, 820),
                (1_400, 20),
                (1_400, 1_620),
                (3_000, 20),
                (3_000, 3_220),
                (4_000, 2_220),
            ]
        );
        assert_eq!(curve.recovers_up_to_ns, None);
        // Between corners the polyline is linear, as the prediction is.
        for len in (1..400).map(|i| i * 10 * MS) {
            let expected = recovered(predict(&model, A, outage(len), RTT).unwrap()).recovery_after_heal_ns;
            assert_eq!(on_polyline(&curve.points_ns, len), expected, "partition {len} ns");
        }
    }

    /// The polyline's value at `x`, taking the later of two points at one x
    /// only past it.
    fn on_polyline(points: &[(u64, u64)], x: u64) -> u64 {
        let i = points.windows(2).position(|w| w[0].0 < x && x <= w[1].0).unwrap();
        let ((x0, y0), (x1, y1)) = (points[i], points[i + 1]);
        let (x0, y0, x1, y1, x) = (x0 as i128, y0 as i128, x1 as i128, y1 as i128, x as i128);
        (y0 + (y1 - y0) * (x - x0) / (x1 - x0)) as u64
    }

    #[test]
    fn the_curve_ends_where_the_connection_is_given_up() {
        let model = TimerModel::linux_tcp(200 * MS, Some(5 * S), LINUX_TCP_RETRIES2).unwrap();
        let curve = recovery_curve(&model, 10 * MS, RTT, 60 * S);
        // The last retransmission, at 3.0 s after the send, answered in time.
        assert_eq!(curve.recovers_up_to_ns, Some(3_010 * MS));
        assert_eq!(curve.points_ns.last(), Some(&(3_010 * MS, RTT)));
        assert_eq!(curve.points_ns.first(), Some(&(10 * MS, 200 * MS + RTT)));
        let none = TimerModel::linux_tcp(200 * MS, Some(MS), LINUX_TCP_RETRIES2).unwrap();
        let curve = recovery_curve(&none, 0, RTT, 60 * S);
        assert_eq!((curve.points_ns.len(), curve.recovers_up_to_ns), (0, Some(0)));
        assert!(recovery_curve(&model, S, RTT, S).points_ns.is_empty());
    }

    #[test]
    fn a_timer_must_wait_and_its_cap_must_allow_the_first_wait() {
        assert_eq!(
            Backoff::new(0, S),
            Err(RecoveryError::Backoff {
                first_interval_ns: 0,
                max_interval_ns: S
            })
        );
        assert!(Backoff::linux_tcp(121 * S).is_err());
        let flat = Backoff::new(S, S).unwrap();
        assert_eq!(flat.expiry_ns(5), 5 * S);
        assert_eq!(flat.first_expiry_from(0), 1);
        assert_eq!(flat.first_expiry_from(5 * S + 1), 6);
        assert_eq!(Backoff::new(1, u64::MAX).unwrap().expiry_ns(200), u64::MAX);
    }

    /// The peer's probe reaches the client after a 3 s outage both ways,
    /// acknowledging what it got just before: quinn's RTT estimate takes
    /// a 3 s sample, and its restarted timer waits 3.4 s from the
    /// client's last probe (2.9 s in), to 6.3 s: later than the 5.8 s its
    /// own backoff would have probed at.
    #[test]
    fn an_acknowledgement_after_the_heal_restarts_quinn_s_timer_with_the_outage_as_its_rtt() {
        let (srtt, rttvar) = quinn_rtt_after(RTT, 0, 3 * S);
        assert_eq!((srtt, rttvar), ((7 * RTT + 3 * S) / 8, (3 * S - RTT) / 4));
        let interval = QuinnPto {
            smoothed_rtt_ns: srtt,
            rttvar_ns: rttvar,
            max_ack_delay_ns: QUIC_DEFAULT_MAX_ACK_DELAY_NS,
        }
        .pto_ns();
        let model = TimerModel::quinn(QuinnPto::steady(RTT), Some(QUINN_DEFAULT_IDLE_TIMEOUT_NS));
        let pto = 46 * MS;
        let prediction = predict(&model, A, outage(3 * S), RTT).unwrap();
        assert_eq!(recovered(prediction).retransmission_ns, A + 127 * pto);
        let last_probe = A + 63 * pto;
        let restart = Restart {
            at_ns: A + 3 * S + 200 * MS,
            last_send_ns: last_probe,
            interval_ns: interval,
        };
        let r = recovered(restart.apply(prediction, outage(3 * S), RTT));
        assert_eq!(r.retransmission, 7);
        assert_eq!(r.retransmission_ns, last_probe + interval);
        assert_eq!(r.recovery_after_heal_ns, last_probe + interval + RTT - A - 3 * S);
        // A restart whose wait is already over sends at once.
        let soon = Restart {
            interval_ns: pto,
            ..restart
        };
        assert_eq!(
            recovered(soon.apply(prediction, outage(3 * S), RTT)).retransmission_ns,
            restart.at_ns
        );
        // One after the retransmission, or before the heal, changes nothing.
        for at_ns in [A + 127 * pto, A + S] {
            assert_eq!(
                Restart { at_ns, ..restart }.apply(prediction, outage(3 * S), RTT),
                prediction
            );
        }
    }
}
