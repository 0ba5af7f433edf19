//! The report's tables, once, for both Markdown and HTML.

use transbench_reports::schema::{Detector, SettingOutcome};
use transbench_reports::stats::median;
use transbench_reports::{human_ns, DirectionGoodput, RunResults, TrialResult};
use transbench_wire::BulkDirection;

use crate::cells::CellTrials;

pub struct Table {
    pub title: String,
    pub note: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Whether a column holds numbers (each value, where there is one,
    /// starts with a digit: "2", "40.1ms", "0.51 Mbit/s", "3 (1 invalid)"),
    /// set flush right so their places line up; text reads from the left.
    pub fn numeric(&self, column: usize) -> bool {
        let values: Vec<&str> = self
            .rows
            .iter()
            .filter_map(|r| r.get(column).map(String::as_str))
            .filter(|v| *v != "-")
            .collect();
        !values.is_empty() && values.iter().all(|v| v.starts_with(|c: char| c.is_ascii_digit()))
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("### {}\n\n", self.title);
        if !self.note.is_empty() {
            s.push_str(&format!("{}\n\n", self.note));
        }
        let cell = |v: &str| v.replace('|', "\\|");
        s.push_str(&format!(
            "| {} |\n",
            self.headers
                .iter()
                .map(|h| cell(h))
                .collect::<Vec<_>>()
                .join(" | ")
        ));
        let rule: String = (0..self.headers.len())
            .map(|i| if self.numeric(i) { "--:|" } else { "---|" })
            .collect();
        s.push_str(&format!("|{rule}\n"));
        for row in &self.rows {
            s.push_str(&format!(
                "| {} |\n",
                row.iter().map(|v| cell(v)).collect::<Vec<_>>().join(" | ")
            ));
        }
        s.push('\n');
        s
    }

    pub fn html(&self) -> String {
        let mut s = format!("<h3>{}</h3>\n", escape(&self.title));
        if !self.note.is_empty() {
            s.push_str(&format!(
                "<p class=\"note\">{}</p>\n",
                code_spans(&escape(&self.note))
            ));
        }
        let class = |i: usize| if self.numeric(i) { " class=\"num\"" } else { "" };
        s.push_str("<div class=\"table\"><table>\n<tr>");
        for (i, h) in self.headers.iter().enumerate() {
            s.push_str(&format!("<th{}>{}</th>", class(i), escape(h)));
        }
        s.push_str("</tr>\n");
        for row in &self.rows {
            s.push_str("<tr>");
            for (i, v) in row.iter().enumerate() {
                s.push_str(&format!("<td{}>{}</td>", class(i), escape(v)));
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table></div>\n");
        s
    }
}

/// Markdown's `code` spans as HTML.
fn code_spans(s: &str) -> String {
    s.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{part}</code>")
            } else {
                part.to_string()
            }
        })
        .collect()
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn median_of(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    (!v.is_empty()).then(|| median(&v))
}

fn med(c: &CellTrials, f: impl Fn(&TrialResult) -> Option<f64>) -> Option<f64> {
    median_of(c.trials.iter().filter_map(|t| f(t)).collect())
}

fn ns(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| human_ns(v as u64))
}

/// Bits per second in Mbit/s, or Gbit/s from 10 Gbit/s on.
fn bits(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 1e10 => format!("{:.2} Gbit/s", v / 1e9),
        Some(v) => format!("{:.2} Mbit/s", v / 1e6),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.2} %", v * 100.0))
}

fn trials_cell(c: &CellTrials) -> String {
    let valid = c.valid();
    if valid == c.trials.len() {
        valid.to_string()
    } else {
        format!("{} ({} invalid)", c.trials.len(), c.trials.len() - valid)
    }
}

/// Latency and delivery per cell: medians over its trials; strangers'
/// traffic the receiver rejected, summed, where any trial had some.
pub fn latency(cells: &[CellTrials]) -> Option<Table> {
    let with_rejected = cells
        .iter()
        .any(|c| c.trials.iter().any(|t| t.receiver.rejected > 0));
    let rows: Vec<Vec<String>> = cells
        .iter()
        .map(|c| {
            let goodput = med(c, TrialResult::goodput_bps);
            let mut row = vec![
                c.id.clone(),
                trials_cell(c),
                ns(med(c, |t| (t.lat.count > 0).then_some(t.lat.p50 as f64))),
                ns(med(c, |t| (t.lat.count > 0).then_some(t.lat.p99 as f64))),
                ns(med(c, |t| (t.lat.count > 0).then_some(t.lat.p999 as f64))),
                pct(med(c, |t| {
                    (t.counters.sent > 0).then(|| t.counters.lost as f64 / t.counters.sent as f64)
                })),
                bits(goodput),
            ];
            if with_rejected {
                let rejected: u64 = c.trials.iter().map(|t| t.receiver.rejected).sum();
                row.push(rejected.to_string());
            }
            row
        })
        .collect();
    let mut headers: Vec<String> = ["cell", "trials", "p50", "p99", "p99.9", "lost", "goodput"]
        .map(String::from)
        .to_vec();
    let mut note = "Medians over each cell's trials. Latency is `lat`: delivery minus intended send time (one-way), or the round trip for rr and connection workloads.".to_string();
    if with_rejected {
        headers.push("rejected".into());
        note.push_str(" rejected: strangers' datagrams and connections the receiver dropped unanswered (without the trial's token), summed over the cell's trials.");
    }
    (!rows.is_empty()).then(|| Table {
        title: "Latency and delivery per cell".into(),
        note,
        headers,
        rows,
    })
}

/// Head-of-line blocking per multistream cell, theory beside it.
pub fn hol(cells: &[CellTrials]) -> Option<Table> {
    let rows: Vec<Vec<String>> = cells
        .iter()
        .filter(|c| c.trials.iter().any(|t| t.hol.is_some()))
        .map(|c| {
            let h = |f: fn(&transbench_reports::HolMetrics) -> f64| med(c, |t| t.hol.as_ref().map(f));
            vec![
                c.id.clone(),
                trials_cell(c),
                pct(h(|m| m.late_frac)),
                pct(h(|m| m.theory.late_frac)),
                pct(h(|m| m.hol_frac)),
                h(|m| m.hol_fanout.median).map_or("-".into(), |v| format!("{v:.1}")),
                h(|m| m.episodes as f64).map_or("-".into(), |v| format!("{v:.0}")),
                pct(h(|m| {
                    m.ontime_ratio
                        .iter()
                        .find(|o| (o.rtts - 2.0).abs() < 1e-9)
                        .map_or(f64::NAN, |o| o.ratio)
                })),
            ]
        })
        .collect();
    (!rows.is_empty()).then(|| Table {
        title: "Head-of-line blocking".into(),
        note: "late: messages over the no-loss p1 by more than max(2 ms, RTT/8); theory: p L R for one ordered connection, p (L/N) R per stream; collateral: late messages on streams other than the stalled one.".into(),
        headers: ["cell", "trials", "late", "late (theory)", "collateral", "fan-out (median)", "episodes", "on time at 2 RTT"]
            .map(String::from)
            .to_vec(),
        rows,
    })
}

/// Bulk transfer per cell: goodput against what the link leaves,
/// fairness, and the congestion controller's losses.
pub fn bulk(cells: &[CellTrials]) -> Option<Table> {
    let rows: Vec<Vec<String>> = cells
        .iter()
        .filter(|c| c.trials.iter().any(|t| t.bulk.is_some()))
        .map(|c| {
            let b = |f: fn(&transbench_reports::BulkMetrics) -> Option<f64>| {
                med(c, |t| t.bulk.as_ref().and_then(f))
            };
            let jain = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
            // Both ways: each direction apart, as "up X, down Y".
            let ways: Vec<BulkDirection> = c
                .trials
                .iter()
                .find_map(|t| t.bulk.as_ref())
                .map(|m| m.directions.iter().map(|d| d.direction).collect())
                .unwrap_or_default();
            let each = |f: fn(&DirectionGoodput) -> Option<f64>, show: &dyn Fn(Option<f64>) -> String| {
                ways.iter()
                    .map(|&way| {
                        let v = med(c, |t| {
                            let d = t.bulk.as_ref()?.directions.iter().find(|d| d.direction == way)?;
                            f(d)
                        });
                        format!("{way} {}", show(v))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let (goodput, expected, fairness) = if ways.is_empty() {
                (
                    bits(b(|m| Some(m.goodput_bps))),
                    bits(b(|m| m.expected.as_ref().map(|e| e.goodput_bps))),
                    jain(b(|m| m.jain)),
                )
            } else {
                (
                    each(|d| Some(d.goodput_bps), &bits),
                    each(|d| d.expected.as_ref().map(|e| e.goodput_bps), &bits),
                    each(|d| d.jain, &jain),
                )
            };
            vec![
                c.id.clone(),
                trials_cell(c),
                b(|m| Some(m.flows.len() as f64)).map_or("-".into(), |v| format!("{v:.0}")),
                goodput,
                expected,
                fairness,
                b(|m| {
                    let tcp: u32 = m
                        .flows
                        .iter()
                        .filter_map(|f| f.tcp_info.last())
                        .map(|i| i.total_retrans)
                        .sum();
                    let quic: u64 = m
                        .quic
                        .iter()
                        .filter_map(|q| q.samples.last())
                        .map(|s| s.lost_packets)
                        .sum();
                    Some(f64::from(tcp) + quic as f64)
                })
                .map_or("-".into(), |v| format!("{v:.0}")),
                b(|m| Some(m.sender_cpu_ns_per_byte)).map_or("-".into(), |v| format!("{v:.3}")),
                b(|m| Some(m.receiver_cpu_ns_per_byte)).map_or("-".into(), |v| format!("{v:.3}")),
            ]
        })
        .collect();
    (!rows.is_empty()).then(|| Table {
        title: "Bulk transfer".into(),
        note: "Medians over each cell's trials. goodput: what the reading application read in the measured window, all flows (flows both ways: each direction's); expected: the emulated rate less each packet's headers (see SCHEMA.md); fairness: Jain's index over the flows; TCP retransmits or QUIC lost: segments TCP retransmitted (TCP_INFO), or packets quinn declared lost; CPU per byte read, each agent's trial thread.".into(),
        headers: ["cell", "trials", "flows", "goodput", "expected", "fairness", "TCP retransmits or QUIC lost", "sender CPU ns/B", "receiver CPU ns/B"]
            .map(String::from)
            .to_vec(),
        rows,
    })
}

/// Latency under load per cell: the probe before, during and after the
/// flows, and what the load added.
pub fn load(cells: &[CellTrials]) -> Option<Table> {
    let rows: Vec<Vec<String>> = cells
        .iter()
        .filter(|c| c.trials.iter().any(|t| t.load.is_some()))
        .map(|c| {
            let phase = |i: usize, q: fn(&transbench_reports::LatencySummary) -> u64| {
                ns(med(c, |t| {
                    let p = t.load.as_ref()?.phases.get(i)?;
                    (p.lat.count > 0).then(|| q(&p.lat) as f64)
                }))
            };
            let added = med(c, |t| t.load.as_ref()?.added_p50_ns.map(|v| v as f64));
            vec![
                c.id.clone(),
                trials_cell(c),
                phase(0, |l| l.p50),
                phase(1, |l| l.p50),
                phase(1, |l| l.p99),
                phase(2, |l| l.p50),
                added.map_or("-".into(), |v| {
                    let sign = if v < 0.0 { "-" } else { "+" };
                    format!("{sign}{}", human_ns(v.abs() as u64))
                }),
                ns(med(c, |t| t.load.as_ref()?.queue_drain_ns.map(|v| v as f64))),
            ]
        })
        .collect();
    (!rows.is_empty()).then(|| Table {
        title: "Latency under load".into(),
        note: "Medians over each cell's trials of the probe's round trip before the load, while its flows wrote, and after; added: the p50 during less the p50 before; full queue: how long the emulated link's queue limit of full-size packets takes to drain at its rate, the most a queue can add.".into(),
        headers: ["cell", "trials", "before p50", "during p50", "during p99", "after p50", "added p50", "full queue"]
            .map(String::from)
            .to_vec(),
        rows,
    })
}

/// Delivery semantics per cell (rr with a retry policy or idempotency
/// keys): counts summed over the cell's trials.
pub fn delivery(cells: &[CellTrials]) -> Option<Table> {
    let rows: Vec<Vec<String>> = cells
        .iter()
        .filter(|c| c.trials.iter().any(|t| t.delivery.is_some()))
        .map(|c| {
            let sum = |f: fn(&transbench_reports::DeliveryMetrics) -> u64| -> u64 {
                c.trials.iter().filter_map(|t| t.delivery.as_ref()).map(f).sum()
            };
            let requests = sum(|d| d.requests);
            let effectively_once = sum(|d| d.effectively_once);
            let share = (requests > 0).then(|| effectively_once as f64 / requests as f64);
            vec![
                c.id.clone(),
                trials_cell(c),
                requests.to_string(),
                format!("{} / {}", sum(|d| d.retries_sent), sum(|d| d.retries_arrived)),
                sum(|d| d.duplicates).to_string(),
                format!(
                    "{} ({} extra)",
                    sum(|d| d.processed_more_than_once),
                    sum(|d| d.extra_processings)
                ),
                sum(|d| d.answered_from_store).to_string(),
                sum(|d| d.never_processed).to_string(),
                sum(|d| d.unanswered).to_string(),
                format!("{effectively_once} ({})", pct(share)),
            ]
        })
        .collect();
    (!rows.is_empty()).then(|| Table {
        title: "Delivery semantics".into(),
        note: "Measured requests of each cell's trials, summed. retries: sent by the client / arrived at the receiver; duplicates: arrivals of a request beyond its first (at-least-once duplicates); processed > once: requests the receiver processed more than once, and the processings beyond each one's first; from store: repeats answered from the stored response (idempotency keys); never processed: at-most-once losses; unanswered: no response reached the client; effectively once: answered and processed exactly once.".into(),
        headers: [
            "cell",
            "trials",
            "requests",
            "retries",
            "duplicates",
            "processed > once",
            "from store",
            "never processed",
            "unanswered",
            "effectively once",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    })
}

/// The failure detectors per cell: a row per setting, medians over the
/// cell's trials, each beside the normal model's theory.
pub fn heartbeat(cells: &[CellTrials]) -> Option<Table> {
    let mut rows = Vec::new();
    let after_failure = cells
        .iter()
        .flat_map(|c| &c.trials)
        .filter_map(|t| t.heartbeat.as_ref())
        .all(|h| h.fail_at_ns.is_some());
    for c in cells {
        let trials: Vec<&transbench_reports::HeartbeatMetrics> =
            c.trials.iter().filter_map(|t| t.heartbeat.as_ref()).collect();
        let Some(first) = trials.first() else { continue };
        for (i, setting) in first.monitor.settings.iter().enumerate() {
            let of = |f: &dyn Fn(&SettingOutcome) -> Option<f64>| {
                median_of(
                    trials
                        .iter()
                        .filter_map(|h| f(h.monitor.settings.get(i)?))
                        .collect(),
                )
            };
            let rate = |v: Option<f64>| match v {
                None => "-".into(),
                Some(0.0) => "0".into(),
                Some(v) => format!("{v:.3e}"),
            };
            let count: u64 = trials
                .iter()
                .filter_map(|h| h.monitor.settings.get(i))
                .map(|s| s.false_suspicions)
                .sum();
            let watched: u64 = trials
                .iter()
                .filter_map(|h| h.monitor.settings.get(i))
                .map(|s| s.intervals_watched)
                .sum();
            let mut row = vec![
                c.id.clone(),
                match setting.detector {
                    Detector::Phi { threshold } => format!("φ > {threshold}"),
                    Detector::FixedTimeout { timeout_ns } => format!("timeout {}", human_ns(timeout_ns)),
                },
                format!("{count} of {watched}"),
                rate(of(&|s| s.false_suspicions_per_interval)),
                rate(of(&|s| s.expected_per_interval)),
                of(&|s| s.false_suspicions_per_hour).map_or("-".into(), |v| format!("{v:.1}")),
                ns(of(&|s| s.detection_after_last_arrival_ns.map(|v| v as f64))),
                ns(of(&|s| s.expected_detection_ns.map(|v| v as f64))),
            ];
            if after_failure {
                row.push(
                    of(&|s| s.detection_after_silence_ns.map(|v| v as f64)).map_or("-".into(), signed_ns),
                );
            }
            rows.push(row);
        }
    }
    let mut headers: Vec<String> = [
        "cell",
        "detector",
        "false suspicions",
        "per interval",
        "theory",
        "per hour",
        "detection",
        "theory",
    ]
    .map(String::from)
    .to_vec();
    if after_failure {
        headers.push("after the failure".into());
    }
    (!rows.is_empty()).then(|| Table {
        title: "Failure detectors".into(),
        note: format!(
            "Each setting replayed over the heartbeats' arrivals at the monitor. False suspicions: intervals of the live peer during which the detector suspected it, summed over the cell's trials; per interval and per hour, medians over its trials, beside the normal model's chance per interval (φ: for independent normal intervals and the window in use; timeout: from the intervals' mean and deviation). Detection: how long after the last heartbeat's arrival the detector suspects a peer that sends no more, beside the normal model of all the intervals (the timeout itself for a fixed one){}.",
            if after_failure { "; after the failure: from the moment the sender fell silent (--fail-at) to the suspicion, what the application waits" } else { "" }
        ),
        headers,
        rows,
    })
}

/// A time that may be negative (a detection before the failure's moment).
fn signed_ns(v: f64) -> String {
    match v < 0.0 {
        true => format!("-{}", human_ns(-v as u64)),
        false => human_ns(v as u64),
    }
}

/// Connection churn and setup per cell.
pub fn churn(cells: &[CellTrials]) -> Option<Table> {
    let rows: Vec<Vec<String>> = cells
        .iter()
        .filter(|c| c.trials.iter().any(|t| t.churn.is_some()))
        .map(|c| {
            let m = |f: fn(&transbench_reports::ChurnMetrics) -> f64| med(c, |t| t.churn.as_ref().map(f));
            let errors = c
                .trials
                .iter()
                .filter_map(|t| t.churn.as_ref())
                .flat_map(|m| m.errors.iter())
                .fold(
                    std::collections::BTreeMap::<&str, u64>::new(),
                    |mut acc, (k, v)| {
                        *acc.entry(k).or_default() += v;
                        acc
                    },
                );
            let errors = if errors.is_empty() {
                "-".to_string()
            } else {
                errors
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let eaddr = med(c, |t| t.churn.as_ref()?.ports_ran_out_ns().map(|v| v as f64));
            vec![
                c.id.clone(),
                trials_cell(c),
                m(|x| x.offered_rate).map_or("-".into(), |v| format!("{v:.0}/s")),
                m(|x| x.achieved_rate).map_or("-".into(), |v| format!("{v:.0}/s")),
                errors,
                m(|x| x.time_wait.samples.iter().map(|s| s.sender).max().unwrap_or(0) as f64)
                    .map_or("-".into(), |v| format!("{v:.0}")),
                ns(eaddr),
                // Over the trials that completed a connection.
                ns(med(c, |t| {
                    t.churn
                        .as_ref()
                        .filter(|x| x.ttfb.count > 0)
                        .map(|x| x.ttfb.p50 as f64)
                })),
                ns(med(c, |t| {
                    t.churn.as_ref()?.expectation.ttfb_ns.map(|v| v as f64)
                })),
            ]
        })
        .collect();
    (!rows.is_empty()).then(|| Table {
        title: "Connections".into(),
        note: "Medians over trials; errors summed. TIME_WAIT: the sender namespace's peak.".into(),
        headers: [
            "cell",
            "trials",
            "offered",
            "achieved",
            "errors",
            "TIME_WAIT peak",
            "ports out at",
            "TTFB p50",
            "TTFB expected",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    })
}

/// Trials whose numbers should not be trusted, and why.
pub fn invalid(results: &RunResults) -> Option<Table> {
    let rows: Vec<Vec<String>> = results
        .trials
        .iter()
        .filter(|t| !t.valid)
        .map(|t| {
            let why = t.invalid_reasons.join("; ");
            vec![
                t.id.clone(),
                t.cell.clone().unwrap_or_else(|| "-".into()),
                match &t.superseded_by {
                    Some(next) => format!("{why} (retried: {next})"),
                    None => why,
                },
            ]
        })
        .collect();
    (!rows.is_empty()).then(|| Table {
        title: "Invalid trials".into(),
        note:
            "Their numbers are in the tables and charts below, but the run could not hold its method during \
               them; a retried one's are not, its final attempt's are."
                .into(),
        headers: ["trial", "cell", "why"].map(String::from).to_vec(),
        rows,
    })
}
