//! One outage of an open-loop rr trial, from the requests around it
//! (`analysis::recovery` measures) and the transport's timer (its
//! prediction beside). Pure: the samples, the outage and the timer's
//! reading are given.

use linkemu::Reject;
use transbench_analysis::recovery::measured::{first_failure, measure_recovery, MeasureConfig};
use transbench_analysis::recovery::theory::{
    predict, quinn_rtt_after, Blackholed, Prediction, QuinnPto, Restart, TimerModel,
    QUIC_DEFAULT_MAX_ACK_DELAY_NS, QUINN_MAX_BACKOFF_EXPONENT,
};
use transbench_analysis::recovery::{ErrorKind, Failure, Outage, RequestOutcome};
use transbench_reports::{ExpectedRecovery, OutageFates, OutageMetrics};

use crate::fault::FaultKind;
use crate::measure::tracker::Sample;
use crate::transport::tcp_info::TimerState;

/// A stretch of the trial in which nothing was answered: the path dropped
/// everything one way or both, or the receiver was frozen; times are
/// schedule times (0: the measured window's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blackout {
    pub start_ns: u64,
    pub end_ns: u64,
    pub cause: OutageCause,
    /// How the path answered what it dropped; `None`: it did not.
    pub reject: Option<Reject>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageCause {
    /// The path dropped everything, this way.
    Dark(Blackholed),
    /// The receiver process was frozen or crashed (`--receiver-fault`);
    /// the path was up. Frozen, its kernel went on acknowledging and
    /// queueing; crashed, it closed the receiver's sockets.
    Receiver(FaultKind),
}

impl Blackout {
    /// The blackouts of a round trip whose requests cross `forward`'s and
    /// whose responses cross `reverse`'s (each `(start, end)`, in order):
    /// the stretches either is dark, each named by which way it was (none
    /// rejecting: see [`Blackout::rejecting`]).
    pub fn of_round_trip(forward: &[(u64, u64)], reverse: &[(u64, u64)]) -> Vec<Blackout> {
        let mut all: Vec<(u64, u64)> = forward.iter().chain(reverse).copied().collect();
        all.sort_unstable();
        let mut joined: Vec<(u64, u64)> = Vec::new();
        for (s, e) in all {
            match joined.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => joined.push((s, e)),
            }
        }
        let touches = |list: &[(u64, u64)], (s, e): (u64, u64)| list.iter().any(|&(a, b)| a < e && s < b);
        joined
            .into_iter()
            .map(|span| Blackout {
                start_ns: span.0,
                end_ns: span.1,
                cause: OutageCause::Dark(match (touches(forward, span), touches(reverse, span)) {
                    (true, true) => Blackholed::BothWays,
                    (true, false) => Blackholed::Requests,
                    _ => Blackholed::Responses,
                }),
                reject: None,
            })
            .collect()
    }

    /// The same stretch, answered as `reject` says.
    pub fn rejecting(self, reject: Option<Reject>) -> Blackout {
        Blackout { reject, ..self }
    }

    /// The receiver frozen or down from `at_ns` to `end_ns`.
    pub fn receiver_fault(kind: FaultKind, at_ns: u64, end_ns: u64) -> Self {
        Blackout {
            start_ns: at_ns,
            end_ns,
            cause: OutageCause::Receiver(kind),
            reject: None,
        }
    }

    /// How the path went dark, if it dropped everything silently: where a
    /// retransmission timer's backoff predicts the recovery. Not a path
    /// that rejects (a reset ends the connection, and ICMP unreachable
    /// makes Linux undo its backoff, RFC 6069), nor a receiver's fault
    /// (frozen, its kernel goes on acknowledging; crashed, it resets).
    pub fn blackhole(&self) -> Option<Blackholed> {
        match (self.cause, self.reject) {
            (OutageCause::Dark(dark), None) => Some(dark),
            _ => None,
        }
    }

    fn cause_name(&self) -> &'static str {
        match self.cause {
            OutageCause::Dark(Blackholed::BothWays) => "both",
            OutageCause::Dark(Blackholed::Requests) => "requests",
            OutageCause::Dark(Blackholed::Responses) => "responses",
            OutageCause::Receiver(FaultKind::Freeze) => "frozen",
            OutageCause::Receiver(FaultKind::Crash) => "crashed",
        }
    }
}

/// The transport's retransmission timer as read just before an outage.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerReading {
    pub model: TimerModel,
    /// The path's round trip then.
    pub rtt_ns: u64,
    /// Where the timer started, when the readings show it (the monotonic
    /// clock); `None`: at the first send the outage swallowed.
    pub start_ns: Option<u64>,
    /// An acknowledgement after the heal that restarted the timer, when
    /// the readings show one.
    pub restart: Option<Restart>,
    /// How it was read, for the result.
    pub how: String,
}

/// One reading of TCP's timer, and when (the monotonic clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtoReading {
    pub t_ns: u64,
    pub state: TimerState,
}

/// Linux TCP's timer for an outage from `at_ns`: the backoff from
/// `tcpi_rto` as last read before it, with `tcp_retries2` deciding when
/// it gives up (no `TCP_USER_TIMEOUT` is set on transbench's
/// connections); and where the timer started, if the readings show it.
///
/// The backoff does not run from the first send the outage swallowed:
/// Linux first sends a tail loss probe two round trips after its last
/// transmission (which goes on into the outage until the congestion window
/// is full), and arms the RTO from that probe. So the start is read off
/// the first timeout itself: the first reading inside the outage with
/// `tcpi_backoff` 1, less `tcpi_last_data_sent` (that retransmission), less
/// the RTO. Without it (readings too sparse, or none) the start is left
/// to the first swallowed send.
pub fn tcp_timer_before(readings: &[RtoReading], at_ns: u64, retries2: u32) -> Option<TimerReading> {
    let before = readings
        .iter()
        .rev()
        .find(|r| r.t_ns <= at_ns)
        .or_else(|| readings.first())?;
    let rto_ns = u64::from(before.state.rto_us) * 1000;
    let model = TimerModel::linux_tcp(rto_ns, None, retries2).ok()?;
    let first_timeout = readings
        .iter()
        .filter(|r| r.t_ns > at_ns)
        .find(|r| r.state.backoff >= 1)
        .filter(|r| r.state.backoff == 1)
        .map(|r| {
            r.t_ns
                .saturating_sub(u64::from(r.state.last_data_sent_ms) * 1_000_000)
        });
    let when = match at_ns.checked_sub(before.t_ns) {
        Some(b) => format!("{:.1} ms before the outage", b as f64 / 1e6),
        None => format!(
            "{:.1} ms after the outage's start",
            (before.t_ns - at_ns) as f64 / 1e6
        ),
    };
    let anchored = match first_timeout {
        Some(e) => format!(
            "started at the first timeout seen ({:.0} ms into the outage, tcpi_backoff 1, less tcpi_last_data_sent) \
             less the RTO: Linux's tail loss probe comes first",
            e.saturating_sub(at_ns) as f64 / 1e6
        ),
        None => "started at the first request sent into the outage (no first timeout seen)".into(),
    };
    Some(TimerReading {
        model,
        rtt_ns: u64::from(before.state.rtt_us) * 1000,
        start_ns: first_timeout.map(|e| e.saturating_sub(rto_ns).max(at_ns)),
        restart: None,
        how: format!(
            "Linux RTO backoff from the connection's tcpi_rto {:.1} ms (tcpi_rtt {:.2} ms), read by TCP_INFO \
             {when}, {anchored}; tcp_retries2 {retries2}, no TCP_USER_TIMEOUT",
            f64::from(before.state.rto_us) / 1e3,
            f64::from(before.state.rtt_us) / 1e3
        ),
    })
}

/// What a QUIC connection had sent and received, from quinn's stats, and
/// when (the monotonic clock): kept each time either count moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuicReading {
    pub t_ns: u64,
    /// Packets sent, MTU probes left out.
    pub sent_packets: u64,
    pub received_datagrams: u64,
    /// quinn's smoothed round trip then.
    pub rtt_ns: u64,
}

/// How often [`QuicReading`]s are taken; a probe's time is known to this.
pub const SEND_READING_EVERY_NS: u64 = 1_000_000;

/// quinn's probe timer through an outage from `at_ns` to `end_ns`, read
/// off the packets the client sent in it, with `idle_timeout_ns` giving
/// the connection up.
///
/// The timer runs from the last ack-eliciting packet sent. The client goes
/// on sending requests into the outage until its congestion window is
/// full, then only probes go out, PTO·(2^k − 1) after that last request.
/// A gap shorter than the least PTO quinn's formula allows (its smoothed
/// RTT + 1 ms + 25 ms) is a request, so the timer starts at the last send
/// before such gaps end (requests must come more often than that).
/// quinn exposes its smoothed RTT but not rttvar, so the PTO itself is
/// read off the probes seen before the heal (the last one's distance from
/// the start over 2^k − 1); with none, it is the formula's lower bound.
/// A packet heard after the heal and before the next probe that moved
/// quinn's RTT estimate acknowledged new packets: that restarts the timer
/// ([`Restart`]), its new wait computed from the estimate as quinn does.
pub fn quic_timer_in(
    readings: &[QuicReading],
    at_ns: u64,
    end_ns: u64,
    idle_timeout_ns: u64,
) -> Option<TimerReading> {
    let before = readings
        .iter()
        .rev()
        .find(|r| r.t_ns <= at_ns)
        .or_else(|| readings.first())?;
    let least_pto = QuinnPto::steady(before.rtt_ns).pto_ns();
    let moved = |of: fn(&QuicReading) -> u64| {
        readings
            .windows(2)
            .filter(move |w| of(&w[1]) > of(&w[0]))
            .map(|w| &w[1])
    };
    // A probe pair (quinn sends two) or requests back to back is one send.
    let together = 3 * SEND_READING_EVERY_NS;
    let mut sends: Vec<(u64, u64)> = Vec::new();
    for t in moved(|r| r.sent_packets)
        .map(|r| r.t_ns)
        .filter(|&t| t >= before.t_ns && t < end_ns)
    {
        match sends.last_mut() {
            Some(last) if t - last.1 <= together => last.1 = t,
            _ => sends.push((t, t)),
        }
    }
    let probe_gap = least_pto - least_pto / 4;
    let last_request = sends
        .iter()
        .enumerate()
        .skip(1)
        .rfind(|(i, s)| s.0 - sends[i - 1].1 < probe_gap)
        .map(|(i, _)| i)
        .unwrap_or(0);
    let start_ns = sends.get(last_request)?.1;
    if start_ns < at_ns {
        return None;
    }
    let probes = &sends[last_request + 1..];
    let pto_ns = match probes.last() {
        Some(last) => {
            let doublings = (probes.len() as u32).min(QUINN_MAX_BACKOFF_EXPONENT);
            (last.0 - start_ns) / ((1u64 << doublings) - 1)
        }
        None => least_pto,
    };
    // 4·rttvar, or the 1 ms granularity when it is less.
    let variation_ns = pto_ns.saturating_sub(before.rtt_ns + QUIC_DEFAULT_MAX_ACK_DELAY_NS);
    let read = match probes.len() {
        0 => format!(
            "quinn's PTO from its formula with its smoothed RTT {:.2} ms and rttvar taken as nothing, {:.1} ms, \
             a lower bound: no probe went out before the heal",
            before.rtt_ns as f64 / 1e6,
            least_pto as f64 / 1e6
        ),
        n => format!(
            "quinn's PTO {:.1} ms, read off the {n} probe(s) it sent before the heal (its sent packets read every \
             {} ms); less its smoothed RTT {:.2} ms and the peer's max_ack_delay, 4·rttvar (at least 1 ms) was \
             about {:.1} ms",
            pto_ns as f64 / 1e6,
            SEND_READING_EVERY_NS / 1_000_000,
            before.rtt_ns as f64 / 1e6,
            variation_ns as f64 / 1e6
        ),
    };
    let model = TimerModel::quinn_with_pto(pto_ns, Some(idle_timeout_ns));
    let next_probe = model
        .retransmissions(start_ns)
        .find(|&t| t >= end_ns)
        .unwrap_or(u64::MAX);
    let restart = moved(|r| r.received_datagrams)
        .find(|r| r.t_ns >= end_ns)
        .filter(|heard| heard.t_ns < next_probe)
        .and_then(|heard| {
            let prior = readings.iter().rev().find(|r| r.t_ns < heard.t_ns)?;
            // A new RTT estimate: the first packet heard acknowledged new
            // packets, so the backoff is reset.
            (heard.rtt_ns != prior.rtt_ns).then_some(())?;
            let sample_ns = (8 * heard.rtt_ns).saturating_sub(7 * prior.rtt_ns);
            let (smoothed_rtt_ns, rttvar_ns) = quinn_rtt_after(prior.rtt_ns, variation_ns / 4, sample_ns);
            let last_send_ns = moved(|r| r.sent_packets)
                .take_while(|r| r.t_ns < heard.t_ns)
                .last()?
                .t_ns;
            let restart = Restart {
                at_ns: heard.t_ns,
                last_send_ns,
                interval_ns: QuinnPto {
                    smoothed_rtt_ns,
                    rttvar_ns,
                    max_ack_delay_ns: QUIC_DEFAULT_MAX_ACK_DELAY_NS,
                }
                .pto_ns(),
            };
            Some((restart, heard.rtt_ns))
        });
    let restarted = match restart {
        Some((r, smoothed_rtt_ns)) => format!(
            "; the first packet heard after the heal ({:.0} ms after it) acknowledged new packets: quinn's \
             smoothed RTT went to {:.0} ms, its backoff was reset, and its PTO became {:.0} ms from its last send",
            (r.at_ns - end_ns) as f64 / 1e6,
            smoothed_rtt_ns as f64 / 1e6,
            r.interval_ns as f64 / 1e6
        ),
        None => String::new(),
    };
    Some(TimerReading {
        model,
        rtt_ns: before.rtt_ns,
        start_ns: Some(start_ns),
        restart: restart.map(|(r, _)| r),
        how: format!(
            "{read}; started at the client's last request into the outage, {:.0} ms in (its congestion window \
             full); idle timeout {:.0} s{restarted}",
            (start_ns - at_ns) as f64 / 1e6,
            idle_timeout_ns as f64 / 1e9
        ),
    })
}

/// `blackout` as the trial's `samples` (intended times on the monotonic
/// clock; the measured window opened at `window_ns`) and the transport
/// errors the application saw (`errors`, on the same clock) show it, with
/// `timer`'s prediction for a blackhole (none where the path rejects). A request unanswered for `loss_timeout_ns` is
/// the application's timeout; a transport error before it is the
/// detection.
pub fn outage_metrics(
    samples: &[Sample],
    errors: &[Failure],
    window_ns: u64,
    loss_timeout_ns: u64,
    blackout: Blackout,
    timer: Option<&TimerReading>,
) -> Option<OutageMetrics> {
    let outage = Outage::new(window_ns + blackout.start_ns, window_ns + blackout.end_ns).ok()?;
    let outcomes: Vec<RequestOutcome> = samples
        .iter()
        .map(|s| RequestOutcome {
            intended_ns: s.intended_ns,
            answered_ns: s.lat_ns.map(|l| s.intended_ns + l),
            failure: s.lat_ns.is_none().then_some(Failure {
                at_ns: s.intended_ns + loss_timeout_ns,
                kind: ErrorKind::ApplicationTimeout,
            }),
        })
        .collect();
    let measured = measure_recovery(&outcomes, outage, &MeasureConfig::default()).ok()?;
    let requests_failed = outcomes.iter().filter_map(|o| o.failure);
    let detection = first_failure(requests_failed.chain(errors.iter().copied()), outage);
    let expected = timer
        .zip(blackout.blackhole())
        .and_then(|(t, dark)| expected(&outcomes, outage, dark, t));
    Some(OutageMetrics {
        start_ns: blackout.start_ns,
        end_ns: blackout.end_ns,
        dark: blackout.cause_name().into(),
        reject: blackout.reject.map(|r| r.name().into()),
        detected_after_start_ns: detection.map(|d| d.after_start_ns),
        detected_as: detection.map(|d| d.kind.to_string()),
        first_answer_after_heal_ns: measured.first_answer_after_heal_ns,
        rate_restored_after_heal_ns: measured.rate_restored_after_heal_ns,
        delay_threshold_ns: measured.delay_threshold_ns,
        fates: measured.fates.map(|f| OutageFates {
            on_time: f.on_time,
            delayed: f.delayed,
            lost: f.lost,
        }),
        expected,
    })
}

/// The timer starts where `timer` says if it knows, else at the first send
/// the outage swallowed: the first request sent into it, or with only the
/// responses dark, that request's response, half a round trip later (the
/// server's timer, taken to run as the client's).
fn expected(
    outcomes: &[RequestOutcome],
    outage: Outage,
    dark: Blackholed,
    timer: &TimerReading,
) -> Option<ExpectedRecovery> {
    let first = outcomes
        .iter()
        .map(|o| o.intended_ns)
        .find(|&t| t >= outage.start_ns())?;
    let start = match (timer.start_ns, dark) {
        (Some(s), _) => s,
        (None, Blackholed::Responses) => first + timer.rtt_ns / 2,
        (None, _) => first,
    };
    let answer_delay_ns = dark.answer_delay_ns(timer.rtt_ns);
    let backoff_alone = predict(&timer.model, start, outage, answer_delay_ns).ok()?;
    let prediction = match timer.restart {
        Some(restart) => restart.apply(backoff_alone, outage, answer_delay_ns),
        None => backoff_alone,
    };
    let restarted = (prediction != backoff_alone)
        .then(|| timer.restart.map(|r| r.at_ns - outage.end_ns()))
        .flatten();
    let (retransmission, first_answer, gives_up) = match prediction {
        Prediction::Recovers(r) => (Some(r.retransmission), Some(r.recovery_after_heal_ns), None),
        Prediction::GivesUp(f) => (None, None, Some(f)),
    };
    Some(ExpectedRecovery {
        timer: timer.how.clone(),
        first_interval_ns: timer.model.backoff().first_interval_ns(),
        timer_start_after_start_ns: start - outage.start_ns(),
        answer_delay_ns,
        retransmission,
        first_answer_after_heal_ns: first_answer,
        restarted_after_heal_ns: restarted,
        gives_up_after_start_ns: gives_up.map(|f| f.at_ns - outage.start_ns()),
        gives_up_as: gives_up.map(|f| f.kind.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_round_trip_is_dark_where_either_way_is() {
        let b = Blackout::of_round_trip(&[(1000, 2000), (5000, 6000)], &[(1500, 3000), (8000, 9000)]);
        let spans: Vec<(u64, u64, Blackholed)> = b
            .iter()
            .map(|b| (b.start_ns, b.end_ns, b.blackhole().unwrap()))
            .collect();
        assert_eq!(
            spans,
            [
                (1000, 3000, Blackholed::BothWays),
                (5000, 6000, Blackholed::Requests),
                (8000, 9000, Blackholed::Responses)
            ]
        );
    }

    /// 1000 requests a second from the window's start at 10 s; answered
    /// in 10 ms, except those a TCP-like path held: dark from 2 s for
    /// 1 s, everything sent in it answered at the first retransmission
    /// after the heal (RTO·(2^k − 1) after the first lost send), plus one
    /// round trip.
    #[test]
    fn a_tcp_like_outage_is_measured_and_predicted_alike() {
        let window = 10_000 * MS;
        let (start, end) = (2000 * MS, 3000 * MS);
        let rto = 210 * MS;
        // Expiries after the first lost send: 210, 630, 1470 ms: the third
        // is the first after the heal.
        let retransmitted = window + start + 1470 * MS;
        let samples: Vec<Sample> = (0..5000u64)
            .map(|i| {
                let intended = window + i * MS;
                let lat = if intended >= window + start && intended < retransmitted {
                    retransmitted + 10 * MS - intended
                } else {
                    10 * MS
                };
                Sample {
                    intended_ns: intended,
                    lat_ns: Some(lat),
                }
            })
            .collect();
        let timer = TimerReading {
            model: TimerModel::linux_tcp(rto, None, 15).unwrap(),
            rtt_ns: 10 * MS,
            start_ns: None,
            restart: None,
            how: "test".into(),
        };
        let blackout = Blackout {
            start_ns: start,
            end_ns: end,
            cause: OutageCause::Dark(Blackholed::BothWays),
            reject: None,
        };
        let m = outage_metrics(&samples, &[], window, 2000 * MS, blackout, Some(&timer)).unwrap();
        assert_eq!(m.first_answer_after_heal_ns, Some(480 * MS));
        let e = m.expected.unwrap();
        assert_eq!(e.retransmission, Some(3));
        assert_eq!(e.first_answer_after_heal_ns, Some(480 * MS));
        assert_eq!(e.timer_start_after_start_ns, 0);
        assert_eq!(m.detected_after_start_ns, None, "nothing timed out at 2 s");
        assert_eq!(m.dark, "both");
    }

    /// A client sending every 5 ms (a packet each, its reading up to
    /// 1 ms late) into an outage from 1 s to 2 s, its congestion window
    /// full at 1.3 s; then probe pairs PTO·(2^k − 1) later, PTO 40 ms on a
    /// 10 ms path (4·rttvar 5 ms).
    fn quic_sends(pto: u64) -> Vec<QuicReading> {
        let mut t: Vec<u64> = (0..=260u64)
            .map(|i| i * 5 * MS + u64::from(i % 4 == 1) * MS / 2)
            .collect();
        for k in 1..=6u32 {
            let probe = 1300 * MS + pto * ((1 << k) - 1) + u64::from(k % 2) * MS;
            t.extend([probe, probe + MS / 2]);
        }
        // Each request answered 10 ms later until the outage.
        let mut readings: Vec<QuicReading> = t
            .into_iter()
            .enumerate()
            .map(|(i, t_ns)| QuicReading {
                t_ns,
                sent_packets: i as u64 + 1,
                received_datagrams: 0,
                rtt_ns: 10 * MS,
            })
            .collect();
        for r in readings.iter_mut() {
            r.received_datagrams = (r.t_ns.min(1010 * MS).saturating_sub(10 * MS) / (5 * MS)).min(199);
        }
        readings
    }

    #[test]
    fn quinn_s_timer_is_read_off_its_probes_from_its_last_request() {
        let pto = 40 * MS;
        let sends = quic_sends(pto);
        let timer = quic_timer_in(&sends, 1000 * MS, 2000 * MS, 30_000 * MS).unwrap();
        // Probes at 1.3 s + 40, 120, 280, 600 ms before the heal.
        assert_eq!(timer.start_ns, Some(1300 * MS));
        let read = timer.model.backoff().first_interval_ns();
        assert!(read.abs_diff(pto) <= MS / 10, "read {read}");
        assert!(timer.how.contains("4 probe(s)"), "{}", timer.how);
        let outage = Outage::new(1000 * MS, 2000 * MS).unwrap();
        let p = predict(&timer.model, 1300 * MS, outage, 10 * MS).unwrap();
        let r = p.recovery().unwrap();
        assert_eq!(r.retransmission, 5);
        assert!(r.retransmission_ns.abs_diff(1300 * MS + 31 * pto) <= 2 * MS);
    }

    /// The server's probe is heard 50 ms after the heal, before the
    /// client's next (at 2.54 s), acknowledging the requests it got just
    /// before the outage: a 1 s sample restarts the client's timer.
    #[test]
    fn a_new_acknowledgement_heard_after_the_heal_restarts_quinn_s_timer() {
        let mut readings = quic_sends(40 * MS);
        let last = *readings.last().unwrap();
        let heard = QuicReading {
            t_ns: 2050 * MS,
            sent_packets: last.sent_packets - 2,
            received_datagrams: 200,
            rtt_ns: (7 * 10 * MS + 1040 * MS) / 8,
        };
        let at = readings.iter().position(|r| r.t_ns > heard.t_ns).unwrap();
        readings.insert(at, heard);
        let timer = quic_timer_in(&readings, 1000 * MS, 2000 * MS, 30_000 * MS).unwrap();
        let restart = timer.restart.expect("restarted");
        assert_eq!(restart.at_ns, 2050 * MS);
        assert_eq!(restart.last_send_ns, 1900 * MS + MS / 2);
        // srtt 138.75 ms; rttvar (3·1.25 + 1030)/4 = 258.44 ms; + 25 ms.
        assert!(
            restart.interval_ns.abs_diff(1_197_500_000) < MS,
            "{}",
            restart.interval_ns
        );
        assert!(timer.how.contains("backoff was reset"), "{}", timer.how);
        let samples: Vec<Sample> = (0..600u64)
            .map(|i| Sample {
                intended_ns: i * 5 * MS,
                lat_ns: (i < 200).then_some(10 * MS),
            })
            .collect();
        let blackout = Blackout {
            start_ns: 1000 * MS,
            end_ns: 2000 * MS,
            cause: OutageCause::Dark(Blackholed::BothWays),
            reject: None,
        };
        let e = outage_metrics(&samples, &[], 0, 5000 * MS, blackout, Some(&timer))
            .unwrap()
            .expected
            .unwrap();
        assert_eq!(e.restarted_after_heal_ns, Some(50 * MS));
        let due = 1900 * MS + MS / 2 + restart.interval_ns + 10 * MS - 2000 * MS;
        assert_eq!(e.first_answer_after_heal_ns, Some(due));

        // Heard only after the client's own probe got through: its answer.
        let mut late = quic_sends(40 * MS);
        late.push(QuicReading {
            t_ns: 2560 * MS,
            received_datagrams: 200,
            ..heard
        });
        let timer = quic_timer_in(&late, 1000 * MS, 2000 * MS, 30_000 * MS).unwrap();
        assert_eq!(timer.restart, None);
        assert!(!timer.how.contains("reset"), "{}", timer.how);
    }

    #[test]
    fn without_a_probe_before_the_heal_quinn_s_formula_is_the_lower_bound() {
        let sends = quic_sends(40 * MS);
        let timer = quic_timer_in(&sends, 1000 * MS, 1320 * MS, 30_000 * MS).unwrap();
        assert_eq!(timer.start_ns, Some(1300 * MS));
        // 10 ms + 1 ms + 25 ms.
        assert_eq!(timer.model.backoff().first_interval_ns(), 36 * MS);
        assert!(timer.how.contains("lower bound"), "{}", timer.how);
        // A client silent through the outage gives no start inside it.
        assert!(quic_timer_in(&sends, 1400 * MS, 1420 * MS, 30_000 * MS).is_none());
    }

    #[test]
    fn requests_unanswered_for_the_loss_timeout_are_the_application_s_detection() {
        let window = 0;
        let samples: Vec<Sample> = (0..3000u64)
            .map(|i| Sample {
                intended_ns: i * MS,
                lat_ns: (!(1000..1500).contains(&i)).then_some(MS),
            })
            .collect();
        let blackout = Blackout {
            start_ns: 1000 * MS,
            end_ns: 1500 * MS,
            cause: OutageCause::Dark(Blackholed::Requests),
            reject: None,
        };
        let m = outage_metrics(&samples, &[], window, 200 * MS, blackout, None).unwrap();
        assert_eq!(m.detected_after_start_ns, Some(200 * MS));
        assert_eq!(
            m.detected_as.as_deref(),
            Some(ErrorKind::ApplicationTimeout.to_string().as_str())
        );
        assert_eq!(m.first_answer_after_heal_ns, Some(MS));
        assert_eq!(m.fates.unwrap().lost, 500);
        assert!(m.expected.is_none());
    }

    /// A reset 3 ms into a rejecting stretch, the connection gone with it:
    /// the requests after it never answered, timing out 200 ms on. The
    /// reset is the detection, and nothing recovers.
    #[test]
    fn a_transport_error_before_the_timeout_is_the_detection() {
        let samples: Vec<Sample> = (0..1200u64)
            .map(|i| Sample {
                intended_ns: i * MS,
                lat_ns: (i < 1000).then_some(MS),
            })
            .collect();
        let errors = [
            Failure {
                at_ns: 10 * MS,
                kind: ErrorKind::ConnectionReset,
            },
            Failure {
                at_ns: 1003 * MS,
                kind: ErrorKind::ConnectionReset,
            },
        ];
        let blackout = Blackout {
            start_ns: 1000 * MS,
            end_ns: 1500 * MS,
            cause: OutageCause::Dark(Blackholed::BothWays),
            reject: Some(Reject::TcpReset),
        };
        let m = outage_metrics(&samples, &errors, 0, 200 * MS, blackout, None).unwrap();
        assert_eq!(
            m.detected_after_start_ns,
            Some(3 * MS),
            "the reset, not the earlier one"
        );
        assert_eq!(m.detected_as.as_deref(), Some("ECONNRESET"));
        assert_eq!(m.reject.as_deref(), Some("tcp-reset"));
        assert_eq!(m.first_answer_after_heal_ns, None);
        let late = [Failure {
            at_ns: 1300 * MS,
            kind: ErrorKind::ConnectionReset,
        }];
        let m = outage_metrics(&samples, &late, 0, 200 * MS, blackout, None).unwrap();
        assert_eq!(
            m.detected_as.as_deref(),
            Some("application timeout"),
            "the first request's timeout came first"
        );
    }
}
