//! Request/response accounting: which requests are outstanding, which got
//! answered (and how late), which are lost. Pure: time is passed in.
//!
//! Every measured request ends in exactly one of two places: answered, with
//! its latency in `lat`; or lost, recorded in `lat` at the loss timeout (a
//! lower bound on a latency that is really unbounded), so percentiles keep
//! all sent requests in their denominator. Warm-up requests are tracked (so
//! their answers are recognised) but never counted.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use transbench_analysis::seq;
use transbench_reports::{new_histogram, record, Counters};

#[derive(Debug, Clone, Copy)]
struct Pending {
    intended_ns: u64,
    measured: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseOutcome {
    /// Answered in time; latency from the intended send time, ns.
    Answered { lat_ns: u64, measured: bool },
    /// Answered after the request was declared lost.
    Late,
    /// A second answer, an answer to a request never sent, or one that came
    /// after [`LATE_HORIZON`] loss timeouts.
    Duplicate,
    /// Any answer to a warm-up request: not counted.
    Warmup,
}

/// Lost requests are remembered this many loss timeouts after their
/// intended time, to tell a late answer from a duplicate; then forgotten,
/// so total loss at a high rate cannot grow memory without bound.
pub const LATE_HORIZON: u64 = 4;

pub struct RrTracker {
    loss_timeout_ns: u64,
    record_send_lag: bool,
    pending: BTreeMap<u64, Pending>,
    /// Lost measured requests: seq -> intended time.
    lost: BTreeMap<u64, u64>,
    first_measured: Option<u64>,
    lat: Histogram<u64>,
    send_lag: Histogram<u64>,
    counters: Counters,
    sequence: Option<SequenceLog>,
    samples: Option<Vec<Sample>>,
}

/// One measured request: its intended send time and its round trip, or
/// `None` when it was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub intended_ns: u64,
    pub lat_ns: Option<u64>,
}

/// Samples kept at most (16 MB).
const MAX_SAMPLES: usize = 1_000_000;

/// Every response of the measured window with the intended time of its
/// request: input for the UDP sequence tracker.
#[derive(Debug, Default)]
struct SequenceLog {
    /// Intended send time of each measured request, from the first.
    intended: Vec<u64>,
    /// (seq, arrival) of every response, in arrival order.
    responses: Vec<(u64, u64)>,
}

/// Responses kept for the sequence tracker at most (160 MB).
const MAX_SEQUENCE_LOG: usize = 10_000_000;

pub struct TrackerTotals {
    pub counters: Counters,
    pub lat: Histogram<u64>,
    pub send_lag: Histogram<u64>,
    /// With [`RrTracker::log_sequence`]: measured requests, and every
    /// response to them (numbered from the first measured request).
    pub sequence: Option<(u64, Vec<seq::Arrival>)>,
    /// With [`RrTracker::keep_samples`]: every measured request, in the
    /// order its fate was known.
    pub samples: Option<Vec<Sample>>,
}

impl RrTracker {
    /// `record_send_lag` is false for closed-loop runs, where the intended
    /// time is by definition the actual one.
    pub fn new(loss_timeout_ns: u64, record_send_lag: bool) -> Self {
        RrTracker {
            loss_timeout_ns,
            record_send_lag,
            pending: BTreeMap::new(),
            lost: BTreeMap::new(),
            first_measured: None,
            lat: new_histogram(),
            send_lag: new_histogram(),
            counters: Counters::default(),
            sequence: None,
            samples: None,
        }
    }

    /// Also keeps every measured request's round trip (or its loss), for
    /// a latency over time.
    pub fn keep_samples(mut self) -> Self {
        self.samples = Some(Vec::new());
        self
    }

    fn sample(&mut self, intended_ns: u64, lat_ns: Option<u64>) {
        if let Some(samples) = self.samples.as_mut().filter(|s| s.len() < MAX_SAMPLES) {
            samples.push(Sample { intended_ns, lat_ns });
        }
    }

    /// Also keeps every response for the UDP sequence tracker.
    pub fn log_sequence(mut self) -> Self {
        self.sequence = Some(SequenceLog::default());
        self
    }

    /// Registers request `seq`. The open loop calls it just before the
    /// request is handed to the transport, since its responses are taken in
    /// another task and even the fastest must find it; the closed loop just
    /// after, since it takes the responses itself, once this is done.
    pub fn on_sent(&mut self, seq: u64, intended_ns: u64, actual_ns: u64, measured: bool) {
        self.on_offered(seq, intended_ns, measured);
        if measured && self.record_send_lag {
            record(&mut self.send_lag, actual_ns.saturating_sub(intended_ns));
        }
    }

    /// A request due while the connection was down, which the client
    /// could not send: counted sent and, never answered, lost; it has no
    /// send lag (a reconnect's handshake, run meanwhile, does not make
    /// the sender late).
    pub fn on_unsendable(&mut self, seq: u64, intended_ns: u64, measured: bool) {
        self.on_offered(seq, intended_ns, measured);
    }

    fn on_offered(&mut self, seq: u64, intended_ns: u64, measured: bool) {
        self.pending.insert(
            seq,
            Pending {
                intended_ns,
                measured,
            },
        );
        if measured {
            self.first_measured.get_or_insert(seq);
            if let Some(log) = &mut self.sequence {
                log.intended.push(intended_ns);
            }
            self.counters.sent += 1;
        }
    }

    pub fn on_response(&mut self, seq: u64, received_ns: u64) -> ResponseOutcome {
        if let Some(log) = &mut self.sequence {
            if log.responses.len() < MAX_SEQUENCE_LOG {
                log.responses.push((seq, received_ns));
            }
        }
        if let Some(p) = self.pending.remove(&seq) {
            let lat_ns = received_ns.saturating_sub(p.intended_ns);
            if lat_ns >= self.loss_timeout_ns {
                // Past the deadline even if expire() has not run yet.
                if !p.measured {
                    return ResponseOutcome::Warmup;
                }
                self.count_lost(p.intended_ns);
                self.counters.late += 1;
                return ResponseOutcome::Late;
            }
            if p.measured {
                self.counters.received += 1;
                record(&mut self.lat, lat_ns);
                self.sample(p.intended_ns, Some(lat_ns));
            }
            return ResponseOutcome::Answered {
                lat_ns,
                measured: p.measured,
            };
        }
        if self.first_measured.is_none_or(|first| seq < first) {
            return ResponseOutcome::Warmup;
        }
        if self.lost.remove(&seq).is_some() {
            self.counters.late += 1;
            return ResponseOutcome::Late;
        }
        self.counters.duplicates += 1;
        ResponseOutcome::Duplicate
    }

    /// Declares lost every request whose loss timeout has passed at `now_ns`,
    /// and forgets those lost beyond the late horizon.
    pub fn expire(&mut self, now_ns: u64) {
        // Requests are sent in seq order with non-decreasing intended times,
        // so the expired ones are a prefix of the map.
        while let Some((&seq, &p)) = self.pending.first_key_value() {
            if now_ns < p.intended_ns.saturating_add(self.loss_timeout_ns) {
                break;
            }
            self.pending.remove(&seq);
            self.declare_lost(seq, p);
        }
        let horizon = self.loss_timeout_ns.saturating_mul(LATE_HORIZON);
        while let Some((&seq, &intended)) = self.lost.first_key_value() {
            if now_ns < intended.saturating_add(horizon) {
                break;
            }
            self.lost.remove(&seq);
        }
    }

    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// Ends the trial: whatever is still outstanding is lost.
    pub fn finish(mut self) -> TrackerTotals {
        for (seq, p) in std::mem::take(&mut self.pending) {
            self.declare_lost(seq, p);
        }
        let first = self.first_measured.unwrap_or(0);
        let sequence = self.sequence.map(|log| {
            let arrivals = log
                .responses
                .iter()
                .filter(|&&(seq, _)| seq >= first && seq - first < log.intended.len() as u64)
                .map(|&(seq, received_ns)| seq::Arrival {
                    seq: seq - first,
                    sent_ns: log.intended[(seq - first) as usize],
                    received_ns,
                })
                .collect();
            (log.intended.len() as u64, arrivals)
        });
        TrackerTotals {
            counters: self.counters,
            lat: self.lat,
            send_lag: self.send_lag,
            sequence,
            samples: self.samples,
        }
    }

    /// A measured request is lost, remembered so a late answer is known.
    fn declare_lost(&mut self, seq: u64, p: Pending) {
        if p.measured {
            self.count_lost(p.intended_ns);
            self.lost.insert(seq, p.intended_ns);
        }
    }

    fn count_lost(&mut self, intended_ns: u64) {
        self.counters.lost += 1;
        record(&mut self.lat, self.loss_timeout_ns);
        self.sample(intended_ns, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn kept_samples_say_each_measured_request_and_its_fate() {
        let mut t = RrTracker::new(100 * MS, true).keep_samples();
        t.on_sent(0, 10 * MS, 10 * MS, false);
        t.on_sent(1, 20 * MS, 20 * MS, true);
        t.on_sent(2, 30 * MS, 30 * MS, true);
        t.on_sent(3, 40 * MS, 40 * MS, true);
        t.on_response(0, 11 * MS);
        t.on_response(2, 33 * MS);
        // 1 is answered past its loss timeout; 3 never.
        t.on_response(1, 130 * MS);
        let samples = t.finish().samples.unwrap();
        let s = |intended_ms: u64, lat_ms: Option<u64>| Sample {
            intended_ns: intended_ms * MS,
            lat_ns: lat_ms.map(|l| l * MS),
        };
        assert_eq!(samples, [s(30, Some(3)), s(20, None), s(40, None)]);
        assert!(RrTracker::new(MS, true).finish().samples.is_none());
    }

    #[test]
    fn answered_requests_record_latency_from_intended_time() {
        let mut t = RrTracker::new(100 * MS, true);
        t.on_sent(0, 10 * MS, 10 * MS + 5_000, true);
        assert_eq!(
            t.on_response(0, 12 * MS),
            ResponseOutcome::Answered {
                lat_ns: 2 * MS,
                measured: true
            }
        );
        let totals = t.finish();
        assert_eq!(
            (
                totals.counters.sent,
                totals.counters.received,
                totals.counters.lost
            ),
            (1, 1, 0)
        );
        assert_eq!(totals.lat.len(), 1);
        assert!(totals.lat.equivalent(totals.lat.max(), 2 * MS));
        assert!(totals.send_lag.equivalent(totals.send_lag.max(), 5_000));
    }

    #[test]
    fn unanswered_requests_are_lost_and_stay_in_the_denominator() {
        let mut t = RrTracker::new(100 * MS, true);
        for seq in 0..10 {
            t.on_sent(seq, seq * MS, seq * MS, true);
        }
        for seq in (0..10).filter(|s| s % 3 != 0) {
            t.on_response(seq, seq * MS + MS);
        }
        // Not yet expired: seq 0 is due at 100 ms.
        t.expire(99 * MS);
        assert_eq!(t.outstanding(), 4);
        t.expire(107 * MS);
        assert_eq!(t.outstanding(), 1, "seq 9 is due at 109 ms");
        let totals = t.finish();
        assert_eq!(totals.counters.sent, 10);
        assert_eq!(totals.counters.received, 6);
        assert_eq!(totals.counters.lost, 4);
        assert_eq!(totals.lat.len(), 10, "lost requests are recorded, not dropped");
        assert!(totals.lat.equivalent(totals.lat.max(), 100 * MS));
    }

    #[test]
    fn late_and_duplicate_answers_are_told_apart() {
        let mut t = RrTracker::new(50 * MS, true);
        t.on_sent(0, 0, 0, true);
        t.on_sent(1, MS, MS, true);
        t.expire(60 * MS);
        assert_eq!(t.on_response(0, 61 * MS), ResponseOutcome::Late);
        assert_eq!(t.on_response(0, 62 * MS), ResponseOutcome::Duplicate);
        assert_eq!(t.on_response(7, 62 * MS), ResponseOutcome::Duplicate);
        let totals = t.finish();
        assert_eq!(
            (
                totals.counters.lost,
                totals.counters.late,
                totals.counters.duplicates
            ),
            (2, 1, 2)
        );
    }

    #[test]
    fn answer_past_the_timeout_is_late_even_before_expiry_runs() {
        let mut t = RrTracker::new(50 * MS, true);
        t.on_sent(0, 0, 0, true);
        assert_eq!(t.on_response(0, 70 * MS), ResponseOutcome::Late);
        let totals = t.finish();
        assert_eq!(
            (
                totals.counters.received,
                totals.counters.lost,
                totals.counters.late
            ),
            (0, 1, 1)
        );
    }

    #[test]
    fn warmup_requests_are_tracked_but_not_counted() {
        let mut t = RrTracker::new(50 * MS, true);
        t.on_sent(0, 0, 0, false);
        t.on_sent(1, MS, 3 * MS, true);
        assert_eq!(
            t.on_response(0, MS),
            ResponseOutcome::Answered {
                lat_ns: MS,
                measured: false
            }
        );
        let totals = t.finish();
        assert_eq!(
            (
                totals.counters.sent,
                totals.counters.received,
                totals.counters.lost
            ),
            (1, 0, 1)
        );
        assert_eq!(totals.send_lag.len(), 1);
    }

    #[test]
    fn late_answers_to_warmup_requests_are_not_counted() {
        let mut t = RrTracker::new(50 * MS, true);
        t.on_sent(0, 0, 0, false);
        t.on_sent(1, MS, MS, false);
        t.on_sent(2, 2 * MS, 2 * MS, true);
        t.expire(60 * MS);
        assert_eq!(t.on_response(0, 61 * MS), ResponseOutcome::Warmup);
        assert_eq!(t.on_response(1, 62 * MS), ResponseOutcome::Warmup);
        assert_eq!(t.on_response(2, 63 * MS), ResponseOutcome::Late);
        let totals = t.finish();
        assert_eq!(
            (
                totals.counters.sent,
                totals.counters.lost,
                totals.counters.late,
                totals.counters.duplicates
            ),
            (1, 1, 1, 0)
        );
    }

    #[test]
    fn lost_requests_are_forgotten_after_the_late_horizon() {
        let mut t = RrTracker::new(10 * MS, true);
        for seq in 0..1000 {
            t.on_sent(seq, seq * MS, seq * MS, true);
        }
        t.expire(1000 * MS);
        assert!(
            t.lost.len() <= (LATE_HORIZON * 10) as usize + 1,
            "{} remembered",
            t.lost.len()
        );
        // Within the horizon: late. Beyond it: indistinguishable from a duplicate.
        assert_eq!(t.on_response(985, 1000 * MS), ResponseOutcome::Late);
        assert_eq!(t.on_response(3, 1000 * MS), ResponseOutcome::Duplicate);
        let totals = t.finish();
        assert_eq!(totals.counters.lost, 1000);
        assert_eq!(totals.lat.len(), 1000);
    }

    #[test]
    fn the_sequence_log_keeps_measured_responses_with_their_intended_times() {
        let mut t = RrTracker::new(10 * MS, true).log_sequence();
        t.on_sent(0, 0, 0, false);
        for seq in 1..4 {
            t.on_sent(seq, seq * MS, seq * MS, true);
        }
        for (seq, at) in [(0, 2), (2, 4), (1, 5), (2, 6)] {
            t.on_response(seq, at * MS);
        }
        let (sent, arrivals) = t.finish().sequence.unwrap();
        assert_eq!(sent, 3);
        let got: Vec<(u64, u64, u64)> = arrivals
            .iter()
            .map(|a| (a.seq, a.sent_ns / MS, a.received_ns / MS))
            .collect();
        assert_eq!(
            got,
            vec![(1, 2, 4), (0, 1, 5), (1, 2, 6)],
            "warm-up left out, renumbered"
        );
    }

    #[test]
    fn closed_loop_records_no_send_lag() {
        let mut t = RrTracker::new(50 * MS, false);
        t.on_sent(0, 0, 0, true);
        t.on_response(0, MS);
        assert_eq!(t.finish().send_lag.len(), 0);
    }
}

// Properties of the rr tracker over arbitrary interleavings of sends,
// responses and expiries on a fake clock, against a reference model.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;

    const MS: u64 = 1_000_000;

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 256,
            rng_seed: RngSeed::Fixed(0x7472_6163_6b65_7272),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// What the caller does next: let time pass, send the next request
    /// (its intended time up to `lag_ns` earlier), answer one (any number,
    /// sent or not, again or not), or expire.
    #[derive(Debug, Clone)]
    enum Op {
        Advance(u64),
        Send { lag_ns: u64 },
        Respond(u64),
        Expire,
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        let op = prop_oneof![
            3 => prop_oneof![Just(0), 0..=60 * MS].prop_map(Op::Advance),
            4 => (0..=5 * MS).prop_map(|lag_ns| Op::Send { lag_ns }),
            4 => any::<u64>().prop_map(Op::Respond),
            1 => Just(Op::Expire),
        ];
        proptest::collection::vec(op, 0..=120)
    }

    /// The model's request: its intended time, whether it is measured,
    /// whether it was answered at all yet, and how many expiries came
    /// before it was sent.
    struct Sent {
        intended_ns: u64,
        measured: bool,
        responded: bool,
        expiries_before: usize,
    }

    proptest! {
        #![proptest_config(config())]

        // Every response classified as the model says; in the end sent =
        // answered + lost, each request counted once however often it is
        // answered, answers to unknown numbers counted nowhere else.
        #[test]
        fn every_measured_request_is_answered_or_lost_once(
            ops in ops(),
            warmup in 0u64..=5,
            timeout_ns in 1..=20 * MS,
            record_send_lag in any::<bool>(),
        ) {
            let mut t = RrTracker::new(timeout_ns, record_send_lag).log_sequence();
            let mut sent: Vec<Sent> = Vec::new();
            let mut clock = 0u64;
            let mut last_intended = 0u64;
            let (mut expiries, mut last_expiry) = (0usize, 0u64);
            let mut outcomes = Vec::new();
            let mut responses_logged = Vec::new();
            for op in &ops {
                match *op {
                    Op::Advance(dt) => clock += dt,
                    Op::Send { lag_ns } => {
                        let seq = sent.len() as u64;
                        // Intended times never go backwards (expire relies on it).
                        let intended_ns = clock.saturating_sub(lag_ns).max(last_intended);
                        last_intended = intended_ns;
                        let measured = seq >= warmup;
                        t.on_sent(seq, intended_ns, clock, measured);
                        let expiries_before = expiries;
                        sent.push(Sent { intended_ns, measured, responded: false, expiries_before });
                    }
                    Op::Expire => {
                        t.expire(clock);
                        expiries += 1;
                        last_expiry = clock;
                    }
                    Op::Respond(pick) => {
                        // Mostly numbers sent, some not (yet).
                        let seq = pick % (sent.len() as u64 + 3);
                        let first_measured = (sent.len() as u64 > warmup).then_some(warmup);
                        let expected = match sent.get_mut(seq as usize) {
                            None if first_measured.is_none_or(|f| seq < f) => ResponseOutcome::Warmup,
                            None => ResponseOutcome::Duplicate,
                            Some(r) if r.responded => {
                                if r.measured { ResponseOutcome::Duplicate } else { ResponseOutcome::Warmup }
                            }
                            Some(r) => {
                                r.responded = true;
                                let lat_ns = clock - r.intended_ns;
                                // Forgotten: an expiry since it was sent came
                                // LATE_HORIZON timeouts after its intended time.
                                let forgotten = expiries > r.expiries_before
                                    && last_expiry >= r.intended_ns + timeout_ns * LATE_HORIZON;
                                if lat_ns < timeout_ns {
                                    ResponseOutcome::Answered { lat_ns, measured: r.measured }
                                } else if !r.measured {
                                    ResponseOutcome::Warmup
                                } else if forgotten {
                                    ResponseOutcome::Duplicate
                                } else {
                                    ResponseOutcome::Late
                                }
                            }
                        };
                        let got = t.on_response(seq, clock);
                        prop_assert_eq!(got, expected, "response to {} at {}", seq, clock);
                        outcomes.push((seq, got));
                        responses_logged.push(seq);
                    }
                }
            }
            let measured = sent.iter().filter(|r| r.measured).count() as u64;
            let count = |f: &dyn Fn(&ResponseOutcome) -> bool| {
                outcomes.iter().filter(|(_, o)| f(o)).count() as u64
            };
            let answered = count(&|o| matches!(o, ResponseOutcome::Answered { measured: true, .. }));
            let late = count(&|o| *o == ResponseOutcome::Late);
            let duplicates = count(&|o| *o == ResponseOutcome::Duplicate);
            // No request answered (in time or late) twice.
            let mut settled = std::collections::HashSet::new();
            for (seq, o) in &outcomes {
                if matches!(o, ResponseOutcome::Answered { .. } | ResponseOutcome::Late) {
                    prop_assert!(settled.insert(*seq), "request {} settled twice", seq);
                }
            }

            let totals = t.finish();
            let c = totals.counters;
            prop_assert_eq!(c.sent, measured);
            prop_assert_eq!(c.received, answered);
            prop_assert_eq!(c.sent, c.received + c.lost, "sent = answered + lost");
            prop_assert!(c.late <= c.lost);
            prop_assert_eq!((c.late, c.duplicates, c.errors), (late, duplicates, 0));
            prop_assert_eq!(totals.lat.len(), measured, "one latency per measured request");
            prop_assert_eq!(totals.send_lag.len(), if record_send_lag { measured } else { 0 });
            let (logged_sent, arrivals) = totals.sequence.unwrap();
            prop_assert_eq!(logged_sent, measured);
            let window = warmup..warmup + measured;
            let in_window = responses_logged.iter().filter(|&&s| window.contains(&s)).count();
            prop_assert_eq!(arrivals.len(), in_window);
            prop_assert!(arrivals.iter().all(|a| a.seq < measured));
        }
    }
}
