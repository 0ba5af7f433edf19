//! The summary table printed at the end of a run. Its text from the
//! results file (trial ids, reasons, error causes) is escaped: a file may
//! come from elsewhere, and this goes to a terminal.

use crate::schema::{RunResults, TimeWaitSide, TrialResult};
use transbench_wire::{printable, BulkDirection};

/// `n` things, the noun in the plural unless there is one: `1 message`,
/// `3 messages`.
pub fn counted(n: u64, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// A duration in ns as people read it: `850ns`, `23.4us`, `1.25ms`, `2.00s`.
pub fn human_ns(ns: u64) -> String {
    let v = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}us", v / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", v / 1e6)
    } else {
        format!("{:.2}s", v / 1e9)
    }
}

/// A rate with an SI prefix and at most three significant digits.
fn si(v: f64) -> String {
    let (v, prefix) = match v {
        v if v >= 1e9 => (v / 1e9, "G"),
        v if v >= 1e6 => (v / 1e6, "M"),
        v if v >= 1e4 => (v / 1e3, "k"),
        v => (v, ""),
    };
    let text = if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    format!("{text}{prefix}")
}

/// A ratio as a percentage with three significant digits.
fn percent(ratio: f64) -> String {
    if ratio == 0.0 {
        return "0".into();
    }
    let p = 100.0 * ratio;
    let decimals = if p >= 10.0 {
        1
    } else {
        (2.0 - p.log10().floor()).clamp(1.0, 6.0) as usize
    };
    format!("{p:.decimals$}%")
}

/// The churn columns: achieved rate (with the TIME_WAIT limit), failures
/// by their commonest cause, the peak of this trial's TIME_WAIT sockets on
/// the side that holds them, when ports ran out, and time to first byte.
fn churn_cells(c: &crate::schema::ChurnMetrics) -> [String; 5] {
    let e = &c.expectation;
    let done = match e.sustainable_rate {
        Some(limit) => format!("{} ({})", si(c.achieved_rate), si(limit)),
        None => si(c.achieved_rate),
    };
    let errors = match c.errors.iter().max_by_key(|(_, n)| **n) {
        None => "0".to_string(),
        Some((cause, n)) if c.errors.len() == 1 => format!("{n} {}", printable(cause)),
        Some((cause, n)) => format!("{n} {} +{}", printable(cause), c.failed.saturating_sub(*n)),
    };
    let peak = c
        .time_wait
        .samples
        .iter()
        .map(|s| match e.time_wait_side {
            TimeWaitSide::Receiver => s.receiver_trial.unwrap_or(0),
            TimeWaitSide::Sender => s.sender_trial.unwrap_or(0),
            TimeWaitSide::None => s.sender_trial.unwrap_or(0).max(s.receiver_trial.unwrap_or(0)),
        })
        .max()
        .unwrap_or(0);
    let tw = format!("{peak} ({} {})", e.time_wait_expected, e.time_wait_side);
    let out_at = match (c.ports_ran_out_ns(), e.exhaustion_after_ns) {
        (None, None) => "-".to_string(),
        (at, expected) => format!(
            "{} ({})",
            at.map_or("never".into(), human_ns),
            expected.map_or("never".into(), human_ns)
        ),
    };
    // No connection got a response: there is no time to first byte.
    let measured = if c.ttfb.count > 0 {
        human_ns(c.ttfb.p50)
    } else {
        "-".into()
    };
    let ttfb = match e.ttfb_ns {
        Some(ns) => format!("{measured} ({} RTT = {})", e.ttfb_rtts, human_ns(ns)),
        None => format!("{measured} ({} RTT)", e.ttfb_rtts),
    };
    [done, errors, tw, out_at, ttfb]
}

/// One row per trial: trial, mode, count, p50, p99, p99.9, max, loss,
/// whether the trial is valid, strangers' traffic the receiver rejected
/// (where any trial had some), and for multistream trials the
/// head-of-line figures (late fraction, median fan-out, collateral
/// fraction, overtakes).
pub fn summary_table(results: &RunResults) -> String {
    let with_rejected = results.trials.iter().any(|t| t.receiver.rejected > 0);
    let all = |has: fn(&TrialResult) -> bool| !results.trials.is_empty() && results.trials.iter().all(has);
    let rows = if all(|t| t.load.is_some()) {
        load_rows(results)
    } else if all(|t| t.bulk.is_some()) {
        bulk_rows(results)
    } else {
        latency_rows(results, with_rejected)
    };
    let mut out = aligned(&rows);
    notes(results, with_rejected, &mut out);
    out
}

/// A bulk run: goodput against what the link leaves, fairness, and the
/// congestion controller's view (TCP_INFO at the end; quinn's counts).
fn bulk_rows(results: &RunResults) -> Vec<Vec<String>> {
    let header = [
        "trial",
        "flows",
        "goodput",
        "expected",
        "fairness",
        "retrans/lost",
        "rtt (max)",
        "cpu ns/B (snd rcv)",
        "valid",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for t in &results.trials {
        let Some(b) = &t.bulk else { continue };
        let last_tcp: Vec<&crate::TcpInfoSample> = b.flows.iter().filter_map(|f| f.tcp_info.last()).collect();
        let last_quic: Vec<&crate::QuicStatsSample> =
            b.quic.iter().filter_map(|c| c.samples.last()).collect();
        let (losses, rtt_ns) = if !last_tcp.is_empty() {
            let retrans: u64 = last_tcp.iter().map(|i| u64::from(i.total_retrans)).sum();
            let rtt = last_tcp.iter().map(|i| u64::from(i.rtt_us) * 1_000).max();
            (format!("{retrans} segs"), rtt)
        } else if !last_quic.is_empty() {
            let lost: u64 = last_quic.iter().map(|s| s.lost_packets).sum();
            (format!("{lost} pkts"), last_quic.iter().map(|s| s.rtt_ns).max())
        } else {
            ("-".into(), None)
        };
        let (flows, goodput, expected, fairness) = match b.direction {
            BulkDirection::Both => {
                let each = |f: &dyn Fn(&crate::DirectionGoodput) -> String| {
                    b.directions.iter().map(f).collect::<Vec<_>>().join(", ")
                };
                (
                    format!("{} each way", b.flows.len() / 2),
                    each(&|d| format!("{} {}bit/s", d.direction, si(d.goodput_bps))),
                    if b.directions.iter().any(|d| d.expected.is_some()) {
                        each(&|d| expected(d.goodput_bps, d.expected.as_ref()))
                    } else {
                        "-".into()
                    },
                    each(&|d| d.jain.map_or("-".into(), |j| format!("{j:.3}"))),
                )
            }
            way => (
                match way {
                    BulkDirection::Down => format!("{} down", b.flows.len()),
                    _ => b.flows.len().to_string(),
                },
                format!("{}bit/s", si(b.goodput_bps)),
                expected(b.goodput_bps, b.expected.as_ref()),
                b.jain.map_or("-".into(), |j| format!("{j:.3}")),
            ),
        };
        rows.push(vec![
            printable(&t.id).into_owned(),
            flows,
            goodput,
            expected,
            fairness,
            losses,
            rtt_ns.map_or("-".into(), human_ns),
            format!(
                "{:.3} {:.3}",
                b.sender_cpu_ns_per_byte, b.receiver_cpu_ns_per_byte
            ),
            validity(t),
        ]);
    }
    rows
}

/// What the link leaves, and how much of it the flows took.
fn expected(goodput_bps: f64, e: Option<&crate::ExpectedGoodput>) -> String {
    e.map_or("-".into(), |e| {
        format!(
            "{}bit/s ({})",
            si(e.goodput_bps),
            percent(goodput_bps / e.goodput_bps)
        )
    })
}

/// Latency under load: the probe before, during and after the flows,
/// what the load added, and the flows' goodput.
fn load_rows(results: &RunResults) -> Vec<Vec<String>> {
    let header = [
        "trial",
        "probe",
        "before p50",
        "during p50",
        "during p99",
        "after p50",
        "added p50 (queue max)",
        "goodput",
        "valid",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for t in &results.trials {
        let Some(l) = &t.load else { continue };
        let p50 = |i: usize| {
            l.phases
                .get(i)
                .filter(|p| p.lat.count > 0)
                .map_or("-".into(), |p| human_ns(p.lat.p50))
        };
        let signed = |ns: i64| {
            let sign = if ns < 0 { "-" } else { "+" };
            format!("{sign}{}", human_ns(ns.unsigned_abs()))
        };
        let added = l.added_p50_ns.map_or("-".into(), signed);
        let added = match l.queue_drain_ns {
            Some(max) => format!("{added} ({})", human_ns(max)),
            None => added,
        };
        rows.push(vec![
            printable(&t.id).into_owned(),
            format!("{} {}/s", l.probe, si(l.probe_rate)),
            p50(0),
            p50(1),
            l.phases
                .get(1)
                .filter(|p| p.lat.count > 0)
                .map_or("-".into(), |p| human_ns(p.lat.p99)),
            p50(2),
            added,
            t.bulk
                .as_ref()
                .map_or("-".into(), |b| format!("{}bit/s", si(b.goodput_bps))),
            validity(t),
        ]);
    }
    rows
}

fn validity(t: &TrialResult) -> String {
    match (t.valid, &t.superseded_by) {
        (true, _) => "yes".into(),
        (false, None) => "NO".into(),
        (false, Some(_)) => "NO (retried)".into(),
    }
}

fn latency_rows(results: &RunResults, with_rejected: bool) -> Vec<Vec<String>> {
    let with_hol = results.trials.iter().any(|t| t.hol.is_some());
    let mut header = vec![
        "trial", "mode", "count", "p50", "p99", "p99.9", "max", "loss", "valid",
    ];
    if with_rejected {
        header.push("rejected");
    }
    if with_hol {
        header.extend(["late (theory)", "fanout", "hol_frac (theory)", "overtakes"]);
    }
    let with_churn = results.trials.iter().any(|t| t.churn.is_some());
    if with_churn {
        header.extend([
            "done/s (limit)",
            "errors",
            "TIME_WAIT peak (expected)",
            "ports out at (expected)",
            "ttfb p50 (expected)",
        ]);
    }
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for t in &results.trials {
        let c = &t.counters;
        // Churn: of what was offered, what failed or never started.
        let (sent, lost) = match &t.churn {
            // Saturating: counts from a corrupt file may not add up.
            Some(ch) => (
                ch.offered,
                ch.failed.saturating_add(ch.offered.saturating_sub(ch.started)),
            ),
            None => (c.sent, c.lost),
        };
        let loss = match (sent, lost) {
            (0, _) => "-".to_string(),
            (_, 0) => "0".to_string(),
            // The count too: 1 lost in 20,000 must not read as 0.00%.
            (sent, lost) => format!("{lost} ({})", percent(lost as f64 / sent as f64)),
        };
        let mode = match (t.params.rate, t.params.streams, t.params.bitrate) {
            (_, _, Some(bits)) => format!("{}bit/s", si(bits)),
            (Some(rate), Some(n), _) => format!("{n}x{}/s", si(rate)),
            (Some(rate), None, _) => format!("{}/s", si(rate)),
            (None, _, _) => "closed".to_string(),
        };
        // An empty histogram reads as zeros; nothing was measured.
        let lat = |ns: u64| if t.lat.count > 0 { human_ns(ns) } else { "-".into() };
        let mut row = vec![
            printable(&t.id).into_owned(),
            mode,
            t.lat.count.to_string(),
            lat(t.lat.p50),
            lat(t.lat.p99),
            lat(t.lat.p999),
            lat(t.lat.max),
            loss,
            validity(t),
        ];
        if with_rejected {
            row.push(t.receiver.rejected.to_string());
        }
        if with_hol {
            match &t.hol {
                Some(h) => {
                    // A star: losses too dense for the sparse-loss theory.
                    let star = if h.theory.valid { "" } else { "*" };
                    row.extend([
                        format!("{} ({}{star})", percent(h.late_frac), percent(h.theory.late_frac)),
                        format!("{}", h.hol_fanout.median),
                        format!("{} ({}{star})", percent(h.hol_frac), percent(h.theory.hol_frac)),
                        h.overtakes.to_string(),
                    ])
                }
                None => row.extend(["-".to_string(), "-".into(), "-".into(), "-".into()]),
            }
        }
        if with_churn {
            match &t.churn {
                Some(c) => row.extend(churn_cells(c)),
                None => row.extend(std::iter::repeat_n("-".to_string(), 5)),
            }
        }
        rows.push(row);
    }
    rows
}

/// The rows in columns: the first two to the left, numbers to the right.
fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i < 2 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// What the table cannot say: strangers, HOL backlogs, ports spent in
/// warm-up, invalid trials and missed schedules.
fn notes(results: &RunResults, with_rejected: bool, out: &mut String) {
    if with_rejected {
        out.push_str(
            "rejected: strangers' datagrams and connections the receiver dropped unanswered (without the \
             trial's token); not the trial's, not in its loss\n",
        );
    }
    if results
        .trials
        .iter()
        .any(|t| t.hol.as_ref().is_some_and(|h| !h.theory.valid))
    {
        out.push_str("* p L R > 0.1: losses overlap, the sparse-loss theory is only a rough guide\n");
    }
    for t in &results.trials {
        if t.hol.as_ref().is_some_and(|h| h.backlog) {
            // A few: a retransmission timer that backed off past the
            // timeout; many: a queue that kept growing.
            let behind = t.counters.lost.saturating_mul(20) >= t.counters.sent;
            let why = if behind {
                "the transport fell behind the offered load, so its HOL figures describe a growing \
                 queue, not stalls (lower --rate or --size)"
            } else {
                "stalls that long (a retransmission timer backing off under repeated loss) or a \
                 transport falling behind; they count in the HOL figures (a longer --loss-timeout \
                 tells them apart)"
            };
            out.push_str(&format!(
                "{}: {} undelivered at the loss timeout ({}): {why}\n",
                printable(&t.id),
                counted(t.counters.lost, "message"),
                human_ns(t.params.loss_timeout_ns)
            ));
        }
    }
    for t in &results.trials {
        let Some(c) = &t.churn else { continue };
        let Some(at) = c.ports_ran_out_ns().filter(|&at| at < t.params.warmup_ns) else {
            continue;
        };
        let ports = c
            .port_range
            .as_ref()
            .map_or("ports".into(), |r| counted(r.ports.into(), "port"));
        out.push_str(&format!(
            "{}: its {ports} ran out at {}, during the {} warm-up: the measured window saw only what \
             followed (shorten --warmup, widen --port-range or lower --conn-rate to measure the run-up)\n",
            printable(&t.id),
            human_ns(at),
            human_ns(t.params.warmup_ns)
        ));
    }
    // Whole trials, warm-up included, as quinn counts them.
    for t in &results.trials {
        let Some(sender) = &t.quic_datagrams else { continue };
        let receiver = t.receiver.quic_datagrams.unwrap_or_default();
        let id = printable(&t.id);
        for (way, from, to) in [("sent", sender, &receiver), ("answered", &receiver, sender)] {
            if let Some(line) = datagram_fates(from, to) {
                out.push_str(&format!("{id}: QUIC datagrams {way}, warm-up included: {line}\n"));
            }
        }
    }
    for t in results.trials.iter().filter(|t| !t.valid) {
        let retried = match &t.superseded_by {
            Some(next) => format!(" (retried: {})", printable(next)),
            None => String::new(),
        };
        out.push_str(&format!(
            "{} ({}) invalid: {}{retried}\n",
            t.transport,
            printable(&t.id),
            printable(&t.invalid_reasons.join("; "))
        ));
    }
    if let Some(line) = schedule_note(results) {
        out.push_str(&line);
        out.push('\n');
    }
}

/// What became of the datagrams one side offered, when any did not reach
/// the other side's application; `None` when all did.
fn datagram_fates(
    from: &transbench_wire::DatagramCounts,
    to: &transbench_wire::DatagramCounts,
) -> Option<String> {
    let fates = [
        (
            from.too_large,
            "too large for quinn's max_datagram_size (never sent)",
        ),
        (
            from.dropped_sending(),
            "dropped by quinn before sending (its send buffer full behind the congestion window)",
        ),
        (
            from.sent.saturating_sub(to.received),
            "lost between the two quinns (the path, or a socket buffer)",
        ),
        (
            to.dropped_receiving(),
            "dropped by the receiving quinn (read too slowly)",
        ),
    ];
    let lost: Vec<String> = fates
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    (!lost.is_empty()).then(|| {
        format!(
            "of {} offered, {}",
            from.offered + from.too_large,
            lost.join(", ")
        )
    })
}

/// One line, when a trial missed its send schedule (at any attempt): how
/// many did, that the host and not the network missed it, how many a
/// retry made valid, and what to do about the rest. `None` when none did.
pub fn schedule_note(results: &RunResults) -> Option<String> {
    let finals: Vec<&TrialResult> = results
        .trials
        .iter()
        .filter(|t| t.is_final() && !t.baseline)
        .collect();
    // A retry follows only a missed schedule: a later attempt's trial missed it once.
    let missed: Vec<&&TrialResult> = finals
        .iter()
        .filter(|t| t.missed_schedule || t.attempt > 1)
        .collect();
    if missed.is_empty() {
        return None;
    }
    let recovered = missed.iter().filter(|t| t.valid).count();
    let still = missed.iter().filter(|t| !t.valid && t.missed_schedule).count();
    let mut bounds: Vec<u64> = results
        .trials
        .iter()
        .filter(|t| t.missed_schedule)
        .map(|t| t.params.max_send_lag_ns.unwrap_or(DEFAULT_MAX_SEND_LAG_NS))
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    let bound = match bounds[..] {
        [one] if one % 1_000_000 == 0 => format!("{} ms", one / 1_000_000),
        [one] => human_ns(one),
        _ => "its bound".to_string(),
    };
    let mut line = format!(
        "{} of {} trials missed their send schedule on this machine (send lag p99 over {bound}: the host was \
         busy, not the network)",
        missed.len(),
        finals.len()
    );
    if recovered > 0 {
        line.push_str(&format!("; {recovered} retried and valid on a later attempt"));
    }
    let otherwise = missed.len().saturating_sub(recovered + still);
    if otherwise > 0 {
        line.push_str(&format!(
            "; {otherwise} retried and invalid for another reason (above)"
        ));
    }
    if still > 0 {
        // A scenario's retries are recorded; a run's, seen in its attempts.
        let retries = match &results.scenario {
            Some(s) => s.retry_invalid,
            None => missed
                .iter()
                .filter(|t| t.missed_schedule)
                .map(|t| t.attempt.saturating_sub(1))
                .max()
                .unwrap_or(0),
        };
        let after = match retries {
            0 => String::new(),
            1 => " after 1 retry".to_string(),
            n => format!(" after {n} retries"),
        };
        let advice = match (&results.scenario, retries) {
            (Some(_), 0) => {
                "rerun on a quieter machine or raise trials, or set retry_invalid = 2 in the scenario to run \
                 such trials again"
            }
            (Some(_), _) => "rerun on a quieter machine or raise trials",
            // A sweep's steps are not retried: a step's trial decides its knee.
            (None, 0) if !results.sweeps.is_empty() => {
                "rerun on a quieter machine (a sweep's steps are not retried)"
            }
            (None, 0) => "rerun on a quieter machine, or with --retry-invalid 2 to run such trials again",
            (None, _) => "rerun on a quieter machine",
        };
        line.push_str(&format!("; {still} still invalid{after}: {advice}"));
    }
    Some(line)
}

/// The send lag bound of a trial that did not record its own (schema 1).
const DEFAULT_MAX_SEND_LAG_NS: u64 = 1_000_000;

#[cfg(test)]
mod tests {

    #[test]
    fn datagram_fates_name_each_way_a_datagram_was_lost() {
        use transbench_wire::DatagramCounts;
        let sender = DatagramCounts {
            offered: 100,
            too_large: 2,
            sent: 95,
            ..Default::default()
        };
        let receiver = DatagramCounts {
            received: 90,
            read: 89,
            ..Default::default()
        };
        assert_eq!(
            datagram_fates(&sender, &receiver).unwrap(),
            "of 102 offered, 2 too large for quinn's max_datagram_size (never sent), 5 dropped by quinn \
             before sending (its send buffer full behind the congestion window), 5 lost between the two quinns \
             (the path, or a socket buffer), 1 \
             dropped by the receiving quinn (read too slowly)"
        );
        let all = DatagramCounts {
            offered: 10,
            sent: 10,
            received: 10,
            read: 10,
            ..Default::default()
        };
        assert_eq!(datagram_fates(&all, &all), None);
    }
    use super::*;

    /// Four trials of a scenario with retries: one valid at once, one
    /// valid on its second attempt, one invalid after both retries, one
    /// invalid for another reason.
    fn retried_run() -> RunResults {
        let mut r = crate::store::tests::sample();
        let template = r.trials.remove(0);
        r.scenario = Some(crate::schema::ScenarioInfo {
            name: "s".into(),
            file: "s.toml".into(),
            seed: 1,
            order: "random".into(),
            cells: vec!["c".into()],
            trials_per_cell: 4,
            retry_invalid: 2,
        });
        let mut push = |repetition: u32, attempt: u32, missed: bool, other: bool, last: bool| {
            let mut t = template.clone();
            t.id = format!("tcp+tls-{}", r.trials.len() + 1);
            t.cell = Some("c".into());
            t.repetition = Some(repetition);
            t.attempt = attempt;
            t.missed_schedule = missed;
            if missed || other {
                t.valid = false;
                t.invalid_reasons = vec![match missed {
                    true => "send_lag p99 1.500 ms exceeds 1.000 ms".into(),
                    false => "2 data-plane errors".into(),
                }];
            }
            t.superseded_by = (!last).then(|| format!("tcp+tls-{}", r.trials.len() + 2));
            r.trials.push(t);
        };
        push(0, 1, false, false, true);
        push(1, 1, true, false, false);
        push(1, 2, false, false, true);
        push(2, 1, true, false, false);
        push(2, 2, true, false, false);
        push(2, 3, true, false, true);
        push(3, 1, false, true, true);
        r
    }

    #[test]
    fn the_summary_ends_saying_the_host_missed_the_schedule() {
        let r = retried_run();
        assert_eq!(r.final_attempts().trials.len(), 4);
        assert_eq!(
            schedule_note(&r).unwrap(),
            "2 of 4 trials missed their send schedule on this machine (send lag p99 over 1 ms: the host was \
             busy, not the network); 1 retried and valid on a later attempt; 1 still invalid after 2 retries: \
             rerun on a quieter machine or raise trials"
        );
        let table = summary_table(&r);
        assert!(
            table.ends_with(&format!("{}\n", schedule_note(&r).unwrap())),
            "{table}"
        );
        assert_eq!(table.matches("NO (retried)").count(), 3, "{table}");
        assert!(table.contains("invalid: send_lag p99 1.500 ms exceeds 1.000 ms (retried: tcp+tls-3)"));

        // Every miss made good: no advice; none at all: no line.
        let mut good = r.clone();
        good.trials.truncate(3);
        assert_eq!(
            schedule_note(&good).unwrap(),
            "1 of 2 trials missed their send schedule on this machine (send lag p99 over 1 ms: the host was \
             busy, not the network); 1 retried and valid on a later attempt"
        );
        let mut broke = good.clone();
        broke.trials[2].valid = false;
        broke.trials[2].invalid_reasons = vec!["2 data-plane errors".into()];
        assert!(schedule_note(&broke)
            .unwrap()
            .ends_with("not the network); 1 retried and invalid for another reason (above)"));
        good.trials.truncate(1);
        assert_eq!(schedule_note(&good), None);
        // No retries asked for: says how to.
        let mut once = r.clone();
        once.trials.truncate(4);
        once.trials[3].superseded_by = None;
        once.scenario.as_mut().unwrap().retry_invalid = 0;
        assert!(schedule_note(&once)
            .unwrap()
            .ends_with("1 still invalid: rerun on a quieter machine or raise trials, or set retry_invalid = 2 in the scenario to run such trials again"));
    }

    #[test]
    fn a_run_without_a_scenario_counts_its_retries_from_its_attempts() {
        let mut r = retried_run();
        r.scenario = None;
        assert!(schedule_note(&r)
            .unwrap()
            .ends_with("1 still invalid after 2 retries: rerun on a quieter machine"));
        r.trials.truncate(4);
        r.trials[3].superseded_by = None;
        assert!(schedule_note(&r).unwrap().ends_with(
            "1 still invalid: rerun on a quieter machine, or with --retry-invalid 2 to run such trials again"
        ));
        // A sweep's steps are never retried: no flag is suggested.
        r.sweeps.push(crate::schema::Sweep {
            transport: r.trials[0].transport,
            workload: transbench_wire::Workload::Handshake,
            ttfb_p99_bound_ns: 1,
            bound_source: "--knee-p99".into(),
            steps: vec![],
            knee_rate: None,
            knee_reason: None,
        });
        assert!(schedule_note(&r)
            .unwrap()
            .ends_with("1 still invalid: rerun on a quieter machine (a sweep's steps are not retried)"));
    }

    #[test]
    fn human_units() {
        assert_eq!(human_ns(850), "850ns");
        assert_eq!(human_ns(23_450), "23.4us");
        assert_eq!(human_ns(1_250_000), "1.25ms");
        assert_eq!(human_ns(2_000_000_000), "2.00s");
        assert_eq!(counted(1, "message"), "1 message");
        assert_eq!(counted(0, "trial"), "0 trials");
        assert_eq!(counted(3, "cell"), "3 cells");
    }

    #[test]
    fn multistream_rows_show_hol_next_to_theory() {
        use crate::schema::{Fanout, HolExpectation, HolMetrics};
        let mut r = crate::store::tests::sample();
        let mut t = r.trials[0].clone();
        t.id = "tcp-mux-2".into();
        t.params.streams = Some(8);
        t.hol = Some(HolMetrics {
            streams: 8,
            base_ns: 1,
            base_source: "this trial".into(),
            rtt_ns: 2,
            rtt_source: "2 x base".into(),
            late_threshold_ns: 2_000_000,
            late_frac: 0.0838,
            episodes: 3,
            hol_fanout: Fanout {
                median: 4.0,
                ..Default::default()
            },
            hol_frac: 0.0542,
            hol_delay: t.lat.clone(),
            overtakes: 0,
            ambiguous_episodes: 0,
            ontime_ratio: vec![],
            backlog: true,
            theory: HolExpectation {
                loss_p: 0.02,
                loss_source: "link".into(),
                packet_rate: 160.0,
                recovery_ns: 25_000_000,
                p_l_r: 0.2,
                late_frac: 0.0701,
                hol_frac: 0.0526,
                valid: false,
                note: None,
            },
            timeline: None,
        });
        r.trials.push(t);
        let table = summary_table(&r);
        let row = table.lines().find(|l| l.starts_with("tcp-mux-2")).unwrap();
        assert!(row.contains("8x1000/s"), "{row}");
        assert!(
            row.contains("8.38% (7.01%*)") && row.contains("5.42% (5.26%*)"),
            "{row}"
        );
        assert!(table.contains("* p L R > 0.1"), "{table}");
        assert!(table.contains("tcp-mux-2: 0 messages undelivered"), "{table}");
        assert!(table.contains("fell behind the offered load"), "{table}");
        // A few of many: stalls, not a queue.
        let t = r.trials.last_mut().unwrap();
        (t.counters.sent, t.counters.lost) = (600, 2);
        let table = summary_table(&r);
        assert!(
            table.contains("tcp-mux-2: 2 messages undelivered at the loss timeout")
                && table.contains("stalls that long"),
            "{table}"
        );
        let rr_row = table.lines().find(|l| l.starts_with("tcp+tls-1")).unwrap();
        assert!(
            rr_row.trim_end().ends_with('-'),
            "rr rows have no HOL figures: {rr_row}"
        );
    }

    #[test]
    fn text_from_the_file_is_escaped() {
        let mut r = crate::store::tests::sample();
        let t = &mut r.trials[0];
        t.id = "tcp-1\x1b[2J".into();
        t.valid = false;
        t.invalid_reasons = vec!["\x1b]0;title\x07\nforged".into()];
        let table = summary_table(&r);
        assert!(!table.contains('\x1b') && !table.contains('\x07'), "{table}");
        assert!(table.contains("tcp-1\\u{1b}[2J"), "{table}");
        assert!(table.contains("\\u{1b}]0;title\\u{7}\\nforged"), "{table}");
    }

    #[test]
    fn rates_read_short() {
        assert_eq!(si(1000.0), "1000");
        assert_eq!(si(20_833.33), "20.8k");
        assert_eq!(si(2e8), "200M");
        assert_eq!(si(12.5), "12.5");
    }

    #[test]
    fn small_losses_stay_visible() {
        assert_eq!(percent(1.0 / 22_659.0), "0.00441%");
        assert_eq!(percent(0.25), "25.0%");
        assert_eq!(percent(0.031), "3.10%");
    }

    #[test]
    fn table_has_a_row_per_trial_and_flags_invalid_ones() {
        let mut r = crate::store::tests::sample();
        r.trials[0].counters.sent = 200;
        r.trials[0].counters.lost = 1;
        let mut bad = r.trials[0].clone();
        bad.valid = false;
        bad.invalid_reasons = vec!["send_lag too high".into()];
        r.trials.push(bad);
        let t = summary_table(&r);
        assert_eq!(
            t.lines()
                .filter(|l| l.starts_with("tcp+tls") && l.contains("1000/s"))
                .count(),
            2
        );
        assert!(t.contains("1 (0.500%)"), "{t}");
        assert!(t.contains("invalid: send_lag too high"), "{t}");
        assert!(!t.contains("rejected"), "no column without strangers: {t}");
    }

    #[test]
    fn strangers_traffic_gets_a_column_beside_the_trials_own() {
        let mut r = crate::store::tests::sample();
        r.trials[0].receiver.rejected = 37;
        let t = summary_table(&r);
        let header = t.lines().next().unwrap();
        assert!(header.trim_end().ends_with("valid  rejected"), "{t}");
        assert!(t.lines().nth(1).unwrap().trim_end().ends_with(" 37"), "{t}");
        assert!(t.contains("rejected: strangers'"), "{t}");
    }
}
