//! Delivery semantics of rr: the client's retry policy and its timers
//! ([`RetryBook`]), the receiver's per-id counts ([`ProcessLog`]), and the
//! accounting that joins the two, id by id ([`account`]). Pure: time is
//! passed in.
//!
//! A retry is the same request (same id, same intended send time) sent
//! again; retry k of a request is due k timeouts after the request's
//! intended send time, fixed in advance as the schedule is, and only
//! while the request is unanswered and before its loss timeout. The
//! request's latency still counts from its first intended send time, so
//! retries hide no waiting (no coordinated omission).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use transbench_reports::DeliveryMetrics;
use transbench_wire::processed::IdCounts;

/// Retries a `timeout:DUR` policy sends per request unless `max:N` says:
/// three, as common client libraries default to. At an independent loss
/// of p per round trip a request stays unanswered with p^4: 0.8 % at 30 %
/// loss, against 30 % without retries; each retry more adds a timeout to
/// the worst answered latency.
pub const DEFAULT_MAX_RETRIES: u8 = 3;

/// The most retries per request: attempts are numbered in one header
/// byte, and the sender keeps which attempts were answered in 16 bits per
/// request.
pub const MAX_RETRIES: u8 = 15;

/// The client's retry policy (`--retry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    /// A request is sent once.
    None,
    /// A request without a response `timeout` after its intended send time
    /// is sent again, up to `max_retries` times, `timeout` apart.
    Timeout { timeout: Duration, max_retries: u8 },
}

impl RetryPolicy {
    /// The timeout and the most retries; `None` for no retries.
    pub fn timer(&self) -> Option<(Duration, u8)> {
        match *self {
            RetryPolicy::None => None,
            RetryPolicy::Timeout { timeout, max_retries } => Some((timeout, max_retries)),
        }
    }
}

impl fmt::Display for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryPolicy::None => f.write_str("none"),
            RetryPolicy::Timeout { timeout, max_retries } => write!(
                f,
                "timeout:{},max:{max_retries}",
                humantime::format_duration(*timeout)
            ),
        }
    }
}

impl FromStr for RetryPolicy {
    type Err = String;

    /// `none`, or `timeout:DUR[,max:N]` (e.g. `timeout:50ms,max:3`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const FORM: &str = "give none, or timeout:DUR[,max:N] (e.g. timeout:50ms,max:3)";
        let s = s.trim();
        if s == "none" {
            return Ok(RetryPolicy::None);
        }
        let Some(rest) = s.strip_prefix("timeout:") else {
            return Err(format!("--retry {s:?} is no retry policy: {FORM}"));
        };
        let (timeout, max) = match rest.split_once(',') {
            Some((timeout, max)) => (timeout, Some(max)),
            None => (rest, None),
        };
        let timeout = humantime::parse_duration(timeout.trim())
            .map_err(|e| format!("--retry {s:?}: timeout {timeout:?} is no duration ({e}): {FORM}"))?;
        if timeout.is_zero() {
            return Err(format!(
                "--retry {s:?}: a zero timeout would retry every request at once: give a timeout longer than zero"
            ));
        }
        let max_retries = match max {
            None => DEFAULT_MAX_RETRIES,
            Some(max) => {
                let n = max
                    .trim()
                    .strip_prefix("max:")
                    .ok_or_else(|| format!("--retry {s:?}: after the timeout comes max:N: {FORM}"))?;
                match n.trim().parse::<u8>() {
                    Ok(n) if (1..=MAX_RETRIES).contains(&n) => n,
                    _ => {
                        return Err(format!(
                            "--retry {s:?}: max:{n} is not a number of retries from 1 to {MAX_RETRIES} \
                             (for none, give --retry none)"
                        ))
                    }
                }
            }
        };
        Ok(RetryPolicy::Timeout { timeout, max_retries })
    }
}

/// A retry due: request `seq`'s send number `attempt` (1 the first retry),
/// carrying the request's first intended send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub seq: u64,
    pub attempt: u8,
    pub intended_ns: u64,
}

/// What one request id's sends and responses came to, at the sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SentFate {
    pub retries: u8,
    /// Which attempts were answered: bit k for attempt k.
    answered_attempts: u16,
}

impl SentFate {
    pub fn answered(&self) -> bool {
        self.answered_attempts != 0
    }

    /// Responses received to retries (attempt 1 and later), each attempt once.
    pub fn responses_to_retries(&self) -> u32 {
        (self.answered_attempts & !1).count_ones()
    }
}

/// What a response is to the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    /// The request's first response, or a copy of one already answered
    /// (the path duplicated it), or one to no request sent: the round-trip
    /// tracker takes it, and tells these apart.
    ForTracker,
    /// A response to another send of a request already answered: the
    /// retry's doing, not the path's; counted here, not in the tracker.
    AnotherSend,
}

/// The sender's retry timers and what each request id got back.
pub struct RetryBook {
    timer: Option<(u64, u8)>,
    loss_timeout_ns: u64,
    /// By request id, every id sent (warm-up included).
    fates: Vec<SentFate>,
    /// Retries due, earliest first: (due, seq, attempt, intended).
    due: BinaryHeap<Reverse<(u64, u64, u8, u64)>>,
}

impl RetryBook {
    pub fn new(policy: RetryPolicy, loss_timeout_ns: u64) -> Self {
        RetryBook {
            timer: policy
                .timer()
                .map(|(timeout, max)| (timeout.as_nanos() as u64, max)),
            loss_timeout_ns,
            fates: Vec::new(),
            due: BinaryHeap::new(),
        }
    }

    /// Request `seq` (the next id: ids are sent in order from 0) was sent
    /// for its intended time `intended_ns`.
    pub fn on_sent(&mut self, seq: u64, intended_ns: u64) {
        debug_assert_eq!(seq, self.fates.len() as u64, "ids are sent in order");
        self.fates.push(SentFate::default());
        self.schedule(seq, 1, intended_ns);
    }

    /// Schedules retry `attempt` of `seq` if the policy has one left and
    /// it falls before the request's loss timeout.
    fn schedule(&mut self, seq: u64, attempt: u8, intended_ns: u64) {
        let Some((timeout_ns, max)) = self.timer else {
            return;
        };
        let due = intended_ns.saturating_add(timeout_ns.saturating_mul(u64::from(attempt)));
        if attempt <= max && due < intended_ns.saturating_add(self.loss_timeout_ns) {
            self.due.push(Reverse((due, seq, attempt, intended_ns)));
        }
    }

    /// When the next retry is due, if any; forgets those whose request
    /// was answered meanwhile.
    pub fn next_due(&mut self) -> Option<u64> {
        while let Some(&Reverse((due, seq, _, _))) = self.due.peek() {
            if !self.fates[seq as usize].answered() {
                return Some(due);
            }
            self.due.pop();
        }
        None
    }

    /// The retries due by `now_ns`, each counted as sent, earliest first;
    /// the next retry of each is scheduled.
    pub fn take_due(&mut self, now_ns: u64) -> Vec<Retry> {
        let mut retries = Vec::new();
        while let Some(&Reverse((due, seq, attempt, intended_ns))) = self.due.peek() {
            if due > now_ns {
                break;
            }
            self.due.pop();
            let fate = &mut self.fates[seq as usize];
            if fate.answered() {
                continue;
            }
            fate.retries = attempt;
            retries.push(Retry {
                seq,
                attempt,
                intended_ns,
            });
            self.schedule(seq, attempt + 1, intended_ns);
        }
        retries
    }

    /// A response to send `attempt` of request `seq` arrived.
    pub fn on_response(&mut self, seq: u64, attempt: u8) -> ResponseKind {
        let Some(fate) = self.fates.get_mut(seq as usize) else {
            return ResponseKind::ForTracker;
        };
        if attempt > fate.retries {
            // An attempt never sent: garbage for the tracker to count.
            return ResponseKind::ForTracker;
        }
        let bit = 1u16 << attempt;
        let kind = if fate.answered() && fate.answered_attempts & bit == 0 {
            ResponseKind::AnotherSend
        } else {
            ResponseKind::ForTracker
        };
        fate.answered_attempts |= bit;
        kind
    }

    /// Retries sent so far, warm-up included: each id's attempts beyond
    /// its first (a retry is scheduled only once the one before is sent).
    pub fn retries_sent(&self) -> u64 {
        self.fates.iter().map(|f| u64::from(f.retries)).sum()
    }

    /// Every id's fate, by id from 0.
    pub fn finish(self) -> Vec<SentFate> {
        self.fates
    }
}

/// The receiver's per-id counts of one rr trial: ids `0..tracked` one by
/// one (3 bytes each, reserved when the trial is admitted); any id past
/// them is processed every time and only counted.
///
/// Processing is the receiver's application step, building the response
/// (where a real service's side effect would happen). With idempotency
/// keys a repeat is answered from the id's stored response instead; an rr
/// response is its request's header echoed, so the stored one is byte for
/// byte what processing would build, and the store is the id's count.
#[derive(Debug)]
pub struct ProcessLog {
    ids: Vec<IdCounts>,
    arrivals: u64,
    beyond_ids: u64,
    idempotency_keys: bool,
}

impl ProcessLog {
    pub fn new(tracked: usize, idempotency_keys: bool) -> Self {
        ProcessLog {
            ids: vec![IdCounts::default(); tracked],
            arrivals: 0,
            beyond_ids: 0,
            idempotency_keys,
        }
    }

    /// Send `attempt` of request `seq` arrived: counts it, and whether it
    /// was processed or answered from the store.
    pub fn arrive(&mut self, seq: u64, attempt: u8) {
        self.arrivals += 1;
        let Some(id) = usize::try_from(seq).ok().and_then(|i| self.ids.get_mut(i)) else {
            self.beyond_ids += 1;
            return;
        };
        if attempt == 0 {
            id.first_arrivals = id.first_arrivals.saturating_add(1);
        } else {
            id.retry_arrivals = id.retry_arrivals.saturating_add(1);
        }
        if !(self.idempotency_keys && id.processed > 0) {
            id.processed = id.processed.saturating_add(1);
        }
    }

    /// Every arrival counted, tracked ids and beyond.
    pub fn arrivals(&self) -> u64 {
        self.arrivals
    }

    pub fn idempotency_keys(&self) -> bool {
        self.idempotency_keys
    }

    pub fn beyond_ids(&self) -> u64 {
        self.beyond_ids
    }

    /// The counts of ids `0..` up to the last that arrived (ids after it
    /// never did).
    pub fn counts(&self) -> &[IdCounts] {
        let end = self
            .ids
            .iter()
            .rposition(|c| c.arrivals() > 0)
            .map_or(0, |i| i + 1);
        &self.ids[..end]
    }

    pub fn tracked(&self) -> u64 {
        self.ids.len() as u64
    }
}

/// Ids of requests processed more than once that a result lists.
const LISTED_IDS: usize = 20;

/// Joins, for the measured ids `first..sent.len()`, what the sender sent
/// and heard back (`sent`, by id from 0) with what arrived at the
/// receiver and what it processed (`received`, by id from 0; an id past
/// its end never arrived).
pub fn account(
    policy: RetryPolicy,
    idempotency_keys: bool,
    sent: &[SentFate],
    first: u64,
    received: &[IdCounts],
    beyond_ids: u64,
) -> DeliveryMetrics {
    let mut m = DeliveryMetrics {
        retry: policy.to_string(),
        idempotency_keys,
        beyond_ids,
        ..DeliveryMetrics::default()
    };
    let first = first.min(sent.len() as u64) as usize;
    for (id, fate) in sent.iter().enumerate().skip(first) {
        let at = received.get(id).copied().unwrap_or_default();
        let arrivals = u64::from(at.arrivals());
        let processed = u64::from(at.processed);
        m.requests += 1;
        m.retries_sent += u64::from(fate.retries);
        m.retries_arrived += u64::from(at.retry_arrivals);
        m.responses_to_retries += u64::from(fate.responses_to_retries());
        if fate.answered() {
            m.answered += 1;
        } else {
            m.unanswered += 1;
        }
        if processed == 0 {
            m.never_processed += 1;
        }
        m.duplicates += arrivals.saturating_sub(1);
        if processed > 1 {
            m.processed_more_than_once += 1;
            m.extra_processings += processed - 1;
            if m.more_than_once_ids.len() < LISTED_IDS {
                m.more_than_once_ids.push(id as u64);
            }
        }
        m.answered_from_store += arrivals.saturating_sub(processed);
        if fate.answered() && processed == 1 {
            m.effectively_once += 1;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn timeout(ms: u64, max: u8) -> RetryPolicy {
        RetryPolicy::Timeout {
            timeout: Duration::from_millis(ms),
            max_retries: max,
        }
    }

    #[test]
    fn policies_parse_and_print_as_given() {
        assert_eq!("none".parse(), Ok(RetryPolicy::None));
        assert_eq!("timeout:50ms,max:5".parse(), Ok(timeout(50, 5)));
        assert_eq!("timeout:50ms".parse(), Ok(timeout(50, DEFAULT_MAX_RETRIES)));
        for p in [RetryPolicy::None, timeout(50, 5), timeout(1500, 1)] {
            assert_eq!(p.to_string().parse(), Ok(p), "{p}");
        }
        assert_eq!(timeout(50, 3).to_string(), "timeout:50ms,max:3");
        for (bad, says) in [
            ("always", "timeout:DUR[,max:N]"),
            ("timeout:fast", "no duration"),
            ("timeout:0s", "longer than zero"),
            ("timeout:50ms,3", "max:N"),
            ("timeout:50ms,max:0", "1 to 15"),
            ("timeout:50ms,max:16", "1 to 15"),
        ] {
            let e = bad.parse::<RetryPolicy>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn retries_fall_due_a_timeout_apart_from_the_intended_time_until_answered() {
        let mut book = RetryBook::new(timeout(50, 3), 1000 * MS);
        book.on_sent(0, 10 * MS);
        book.on_sent(1, 20 * MS);
        assert_eq!(book.next_due(), Some(60 * MS));
        assert!(book.take_due(59 * MS).is_empty(), "not yet");
        // A clock that jumps (a busy machine): both due retries at once.
        let r = book.take_due(75 * MS);
        assert_eq!(
            r,
            [
                Retry {
                    seq: 0,
                    attempt: 1,
                    intended_ns: 10 * MS
                },
                Retry {
                    seq: 1,
                    attempt: 1,
                    intended_ns: 20 * MS
                }
            ]
        );
        assert_eq!(
            book.next_due(),
            Some(110 * MS),
            "0's second, from its intended time"
        );
        // 1 is answered by its first retry: nothing more for it.
        assert_eq!(book.on_response(1, 1), ResponseKind::ForTracker);
        let r: Vec<(u64, u8)> = book
            .take_due(1000 * MS)
            .iter()
            .map(|r| (r.seq, r.attempt))
            .collect();
        assert_eq!(r, [(0, 2), (0, 3)], "0 stops at max:3");
        assert_eq!(book.next_due(), None);
        assert_eq!(book.retries_sent(), 4);
        let fates = book.finish();
        assert_eq!((fates[0].retries, fates[0].answered()), (3, false));
        assert_eq!(
            (
                fates[1].retries,
                fates[1].answered(),
                fates[1].responses_to_retries()
            ),
            (1, true, 1)
        );
    }

    #[test]
    fn no_retry_falls_after_the_loss_timeout_and_none_sends_none() {
        let mut book = RetryBook::new(timeout(40, 15), 100 * MS);
        book.on_sent(0, 0);
        let r: Vec<u8> = book.take_due(10_000 * MS).iter().map(|r| r.attempt).collect();
        assert_eq!(r, [1, 2], "at 40 and 80 ms; 120 ms is past the loss timeout");
        let mut none = RetryBook::new(RetryPolicy::None, 100 * MS);
        none.on_sent(0, 0);
        assert_eq!(none.next_due(), None);
        assert!(none.take_due(u64::MAX).is_empty());
    }

    #[test]
    fn a_response_to_another_send_is_the_retrys_a_copy_is_the_paths() {
        let mut book = RetryBook::new(timeout(10, 3), 1000 * MS);
        book.on_sent(0, 0);
        assert_eq!(book.take_due(25 * MS).len(), 2, "at 10 and 20 ms");
        assert_eq!(
            book.on_response(0, 0),
            ResponseKind::ForTracker,
            "the first answer"
        );
        assert_eq!(book.on_response(0, 2), ResponseKind::AnotherSend);
        assert_eq!(
            book.on_response(0, 0),
            ResponseKind::ForTracker,
            "a copy: the tracker's duplicate"
        );
        assert_eq!(book.on_response(0, 3), ResponseKind::ForTracker, "never sent");
        assert_eq!(
            book.on_response(7, 0),
            ResponseKind::ForTracker,
            "no such request"
        );
        assert!(book.take_due(u64::MAX).is_empty(), "answered: no more retries");
        let fate = book.finish()[0];
        assert_eq!(fate.responses_to_retries(), 1);
    }

    #[test]
    fn the_receiver_processes_repeats_unless_it_keeps_idempotency_keys() {
        let mut plain = ProcessLog::new(4, false);
        let mut keyed = ProcessLog::new(4, true);
        for log in [&mut plain, &mut keyed] {
            log.arrive(1, 0);
            log.arrive(1, 1);
            log.arrive(1, 2);
            log.arrive(3, 1);
        }
        keyed.arrive(1, 3);
        plain.arrive(1, 3);
        let c = plain.counts();
        assert_eq!(c.len(), 4, "up to the last id that arrived");
        assert_eq!(
            (c[1].first_arrivals, c[1].retry_arrivals, c[1].processed),
            (1, 3, 4)
        );
        assert_eq!(
            (c[3].first_arrivals, c[3].retry_arrivals, c[3].processed),
            (0, 1, 1)
        );
        assert_eq!(
            keyed.counts()[1].processed,
            1,
            "the repeats answered from the store"
        );
        assert_eq!(plain.arrivals(), 5);
        // Past the trial's ids: processed, counted apart.
        keyed.arrive(9, 1);
        keyed.arrive(9, 2);
        assert_eq!((keyed.beyond_ids(), keyed.counts().len()), (2, 4));
        assert!(ProcessLog::new(8, false).counts().is_empty());
    }

    /// A one-way partition of the responses, replayed: every request
    /// reaches the receiver, the responses to some do not.
    fn partitioned(idempotency_keys: bool) -> DeliveryMetrics {
        let policy = timeout(10, 2);
        let mut book = RetryBook::new(policy, 1000 * MS);
        let mut log = ProcessLog::new(10, idempotency_keys);
        // Ids 0 and 1 are warm-up, 2.. measured; request i at i ms.
        for seq in 0..10u64 {
            book.on_sent(seq, seq * MS);
            log.arrive(seq, 0);
        }
        // Responses to 0..6 come back; those to 6..10 are lost.
        for seq in 0..6 {
            book.on_response(seq, 0);
        }
        // The retries go out; every one reaches the receiver; only the
        // response to 9's last retry comes back.
        for r in book.take_due(1000 * MS) {
            log.arrive(r.seq, r.attempt);
        }
        book.on_response(9, 2);
        account(policy, idempotency_keys, &book.finish(), 2, log.counts(), 0)
    }

    #[test]
    fn duplicates_equal_the_retries_that_arrived_and_keys_stop_reprocessing() {
        let m = partitioned(false);
        assert_eq!((m.requests, m.retries_sent, m.retries_arrived), (8, 8, 8));
        assert_eq!(m.duplicates, m.retries_arrived);
        assert_eq!((m.answered, m.unanswered, m.responses_to_retries), (5, 3, 1));
        assert_eq!((m.processed_more_than_once, m.extra_processings), (4, 8));
        assert_eq!(m.more_than_once_ids, [6, 7, 8, 9]);
        assert_eq!((m.never_processed, m.answered_from_store), (0, 0));
        assert_eq!(m.effectively_once, 4, "2..6: answered, processed once");
        assert_eq!(m.retry, "timeout:10ms,max:2");

        let k = partitioned(true);
        assert_eq!(k.duplicates, k.retries_arrived);
        assert_eq!((k.processed_more_than_once, k.extra_processings), (0, 0));
        assert_eq!(k.answered_from_store, 8);
        assert_eq!(k.effectively_once, 5, "9 too: answered, processed once");
        assert!(k.idempotency_keys);
    }

    #[test]
    fn a_request_that_never_arrived_is_an_at_most_once_loss() {
        let sent = [SentFate::default(); 3];
        let received = [IdCounts {
            first_arrivals: 1,
            retry_arrivals: 0,
            processed: 1,
        }];
        let m = account(RetryPolicy::None, false, &sent, 0, &received, 0);
        assert_eq!((m.requests, m.never_processed, m.unanswered), (3, 2, 3));
        assert_eq!(
            (m.effectively_once, m.duplicates),
            (0, 0),
            "processed once, never answered"
        );
        assert_eq!(
            account(RetryPolicy::None, false, &sent, 9, &received, 0).requests,
            0
        );
    }
}
