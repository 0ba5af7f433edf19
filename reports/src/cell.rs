//! Which cell a trial belongs to: the same workload, transport, path and
//! parameters. Reports group trials by it and `compare` matches two runs
//! by it.

use linkemu::spec::IMPAIRED_LIMIT;
use linkemu::{ImpairSchedule, NetemSpec};

use crate::schema::{Impairment, ScheduleRecord, TrialResult};
use transbench_wire::BulkDirection;

/// A trial's path in netem words, without what every trial of a run
/// shares or differs in by design: the per-trial seed and the queue limit
/// `run` adds to a profile that sets none. "loopback" without a link.
pub fn path_label(impairment: Option<&Impairment>) -> String {
    match impairment {
        None => "loopback".into(),
        Some(i) => profiles_label(&i.forward, &i.reverse),
    }
}

/// Both directions' netem profiles as [`path_label`] words them: once
/// when they agree, else `FORWARD / back: REVERSE`.
pub fn profiles_label(forward: &str, reverse: &str) -> String {
    let unseeded = |words: &str| match NetemSpec::parse(words) {
        Ok(spec) => {
            let added = spec.limit.is_none_or(|l| l == IMPAIRED_LIMIT);
            let spec = NetemSpec {
                seed: None,
                limit: None,
                ..spec
            };
            let words = spec.to_string();
            // netem words always start with the queue limit.
            let rest = words
                .split_once(' ')
                .map_or("", |(_, r)| r)
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim();
            match (added, rest.is_empty()) {
                (true, true) => "emulated link, no impairment".to_string(),
                (true, false) => rest.to_string(),
                (false, _) => words,
            }
        }
        Err(_) => words.to_string(),
    };
    both_ways(unseeded(forward), unseeded(reverse))
}

/// One direction's label when both have the same, else `FORWARD / back:
/// REVERSE`.
fn both_ways(forward: String, reverse: String) -> String {
    if forward == reverse {
        forward
    } else {
        format!("{forward} / back: {reverse}")
    }
}

/// A trial's impairment schedules as given, without the per-trial seeds
/// and the queue limit `run` adds (`0s: delay 5ms; partition 2s 1s`):
/// once when both directions have the same, else `FORWARD / back:
/// REVERSE`. A schedule that does not parse stays as recorded.
pub fn schedule_label(schedules: &ScheduleRecord) -> String {
    let unseeded = |text: &str| match ImpairSchedule::parse(text) {
        Ok(mut schedule) => {
            for profile in schedule.profiles_mut() {
                profile.seed = None;
                if profile.limit == Some(IMPAIRED_LIMIT) {
                    profile.limit = None;
                }
            }
            schedule.to_string()
        }
        Err(_) => text.to_string(),
    };
    both_ways(unseeded(&schedules.forward), unseeded(&schedules.reverse))
}

/// The path without its loss and corruption: trials whose paths differ
/// only in loss share it, and only they belong on one loss axis.
pub fn lossless_path_label(impairment: Option<&Impairment>) -> String {
    let strip = |words: &str| match NetemSpec::parse(words) {
        Ok(spec) => NetemSpec {
            loss: None,
            corrupt: None,
            ..spec
        }
        .to_string(),
        Err(_) => words.to_string(),
    };
    let stripped = impairment.map(|i| Impairment {
        forward: strip(&i.forward),
        reverse: strip(&i.reverse),
        ..i.clone()
    });
    path_label(stripped.as_ref())
}

/// `workload transport path [param=value ...]`: the parameters that make
/// an experiment (offered rate, sizes, streams, loop, churn's close mode),
/// not the trial's duration or its seed.
pub fn cell_key(t: &TrialResult) -> String {
    format!(
        "{} {} {}{}",
        t.workload,
        t.transport,
        path_label(t.impairment.as_ref()),
        params_key(t)
    )
}

/// The parameters of [`cell_key`], each ` name=value`.
pub fn params_key(t: &TrialResult) -> String {
    let p = &t.params;
    let mut key = String::new();
    let mut add = |name: &str, value: String| key.push_str(&format!(" {name}={value}"));
    if let Some(rate) = p.rate {
        add("rate", rate.to_string());
    }
    add("size", p.size.to_string());
    if let Some(b) = &t.bulk {
        // Paced by its transport, not closed-loop; its controller is the experiment.
        let flows = b.flows.len() as u32;
        match b.direction {
            BulkDirection::Up => add("flows", flows.to_string()),
            BulkDirection::Down => {
                add("flows", flows.to_string());
                add("dir", "down".into());
            }
            BulkDirection::Both => {
                add("flows", (flows / 2).to_string());
                add("dir", "both".into());
            }
        }
        if let Some(n) = b.quic_connections.filter(|&n| n > 1) {
            add("connections", n.to_string());
        }
        if let Some(cc) = p.congestion() {
            add("cc", cc.to_string());
        }
        return key;
    }
    if let Some(streams) = p.streams {
        add("streams", streams.to_string());
    }
    if let Some(bitrate) = p.bitrate {
        add("bitrate", bitrate.to_string());
    }
    if p.closed_loop {
        add("loop", "closed".into());
    }
    if let Some(c) = &t.churn {
        add("close", c.close.name().to_string());
        add("ports", c.port_choice.name().to_string());
    }
    // A retry policy and idempotency keys change what is measured.
    if let Some(d) = &t.delivery {
        add("retry", d.retry.clone());
        if d.idempotency_keys {
            add("keys", "idempotency".into());
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(forward: &str, reverse: &str) -> ScheduleRecord {
        ScheduleRecord {
            forward: forward.into(),
            reverse: reverse.into(),
            changes: Vec::new(),
        }
    }

    #[test]
    fn a_schedule_is_labelled_as_given_without_seeds_or_the_added_limit() {
        let both = record(
            "0s: limit 100000 delay 5ms seed 333393803431503618; partition 2s 1s",
            "0s: limit 100000 delay 5ms seed 5327369937300885488; partition 2s 1s",
        );
        assert_eq!(schedule_label(&both), "0s: delay 5ms; partition 2s 1s");
        let one_way = record(
            "0s: limit 100000 delay 5ms seed 1",
            "0s: limit 100000 delay 5ms seed 2; 3s: limit 500 delay 50ms seed 2",
        );
        assert_eq!(
            schedule_label(&one_way),
            "0s: delay 5ms / back: 0s: delay 5ms; 3s: limit 500 delay 50ms"
        );
        assert_eq!(schedule_label(&record("nonsense", "nonsense")), "nonsense");
    }
}
