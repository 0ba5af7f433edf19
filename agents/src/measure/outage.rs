//! One outage of an open-loop rr trial, from the requests around it
//! (`analysis::recovery` measures) and the transport's timer (its
//! prediction beside). Pure: the samples, the outage and the timer's
//! reading are given.

use linkemu::Reject;
use transbench_analysis::recovery::measured::{first_failure, measure_recovery, MeasureConfig};
use transbench_analysis::recovery::theory::{predict, Blackholed, Prediction, TimerModel};
use transbench_analysis::recovery::{ErrorKind, Failure, Outage, RequestOutcome};
use transbench_reports::{ExpectedRecovery, OutageFates, OutageMetrics};

use crate::measure::tracker::Sample;
use crate::transport::tcp_info::TimerState;

/// A stretch of the trial in which the path dropped everything one way
/// or both; times are schedule times (0: the measured window's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blackout {
    pub start_ns: u64,
    pub end_ns: u64,
    pub dark: Blackholed,
    /// How the path answered what it dropped; `None`: it did not.
    pub reject: Option<Reject>,
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
                dark: match (touches(forward, span), touches(reverse, span)) {
                    (true, true) => Blackholed::BothWays,
                    (true, false) => Blackholed::Requests,
                    _ => Blackholed::Responses,
                },
                reject: None,
            })
            .collect()
    }

    /// The same stretch, answered as `reject` says.
    pub fn rejecting(self, reject: Option<Reject>) -> Blackout {
        Blackout { reject, ..self }
    }

    fn dark_name(&self) -> &'static str {
        match self.dark {
            Blackholed::BothWays => "both",
            Blackholed::Requests => "requests",
            Blackholed::Responses => "responses",
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
        how: format!(
            "Linux RTO backoff from the connection's tcpi_rto {:.1} ms (tcpi_rtt {:.2} ms), read by TCP_INFO \
             {when}, {anchored}; tcp_retries2 {retries2}, no TCP_USER_TIMEOUT",
            f64::from(before.state.rto_us) / 1e3,
            f64::from(before.state.rtt_us) / 1e3
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
    let detection = measured
        .detection
        .into_iter()
        .chain(first_failure(errors.iter().copied(), outage))
        .min_by_key(|d| d.at_ns);
    // The backoff theory is a blackhole's: a reset ends the connection,
    // and ICMP unreachable makes Linux undo backoff (RFC 6069).
    let expected = timer
        .filter(|_| blackout.reject.is_none())
        .and_then(|t| expected(&outcomes, outage, blackout.dark, t));
    Some(OutageMetrics {
        start_ns: blackout.start_ns,
        end_ns: blackout.end_ns,
        dark: blackout.dark_name().into(),
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
    let prediction = predict(&timer.model, start, outage, answer_delay_ns).ok()?;
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
        let spans: Vec<(u64, u64, Blackholed)> = b.iter().map(|b| (b.start_ns, b.end_ns, b.dark)).collect();
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
            how: "test".into(),
        };
        let blackout = Blackout {
            start_ns: start,
            end_ns: end,
            dark: Blackholed::BothWays,
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
            dark: Blackholed::Requests,
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
            dark: Blackholed::BothWays,
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
