//! Impairment schedules: a netem profile that changes over time, for one
//! direction of a link, and [`ScheduledPipeline`], a [`Pipeline`] that
//! follows one.
//!
//! # Grammar
//!
//! Items separated by `;` (an empty item, after a trailing `;` say, is
//! ignored):
//!
//! ```text
//! item := TIME: PROFILE                               a step
//!       | TIME: reject [tcp-reset]                    a step that rejects
//!       | partition AT FOR [reject [tcp-reset]]       a blackhole, or a rejecting path
//!       | flap PERIOD [at AT] [for DURATION]          blackholes, every other PERIOD
//!       | ramp loss FROM TO OVER [at AT]              loss rising (or falling) over time
//! ```
//!
//! Times have a unit (`0s`, `5s`, `1500ms`, `1.5s`, `250us`) and are at
//! most an hour, as in netem profiles; percentages are netem's (`10%`).
//!
//! - **Steps**: from TIME on, PROFILE is in force: any profile
//!   [`NetemSpec::parse`] takes, or `none` (no impairment). A step replaces
//!   the whole profile. Steps are written in rising order of time; a
//!   schedule without a step at `0s` starts with `0s: none`.
//! - **Reject** (`TIME: reject`, `TIME: reject tcp-reset`): from TIME on,
//!   every packet is dropped, as by `loss 100%`, and answered toward its
//!   sender as a firewall's REJECT would: ICMP destination unreachable,
//!   or with `tcp-reset` a TCP reset for TCP segments (see [`crate::reject`]).
//!   It is no netem profile (netem cannot answer), so it takes no netem
//!   words, and [`ImpairSchedule::at`] gives the `loss 100%` a netem
//!   backend would have to make of it.
//! - **Shapes** lie over the steps, whatever order they are written in:
//!   - `partition AT FOR`: every packet arriving from AT until AT+FOR is
//!     dropped (a blackhole). The profile in force keeps everything but
//!     its loss, which becomes `loss 100%`, and `ecn`, which is dropped
//!     (it would mark ECN-capable packets instead of dropping them). Its
//!     delay is kept but applies to nothing. With `reject` or `reject
//!     tcp-reset`, each packet dropped is also answered, as after a
//!     reject step. A partition decides over the step in force: a
//!     blackhole partition over a reject step answers nothing; where
//!     partitions overlap, one that rejects decides (the later-starting
//!     one, if several).
//!   - `flap PERIOD`: the link alternates, down for PERIOD (as in a
//!     partition), up for PERIOD. The first outage starts at AT, by
//!     default at PERIOD, so a flap starts up; with `for DURATION` the
//!     flapping stops (up) at AT+DURATION, without it it goes on to the
//!     end of the trial, computed as asked, never listed. PERIOD is at
//!     least [`MIN_FLAP_PERIOD_NS`].
//!   - `ramp loss FROM TO OVER`: from AT (by default `0s`) the loss is
//!     FROM, and moves by (TO-FROM)/n every [`RAMP_STEP_NS`] (n: OVER in
//!     such steps, rounded up) to reach TO at AT+OVER; it holds TO until
//!     the next step at or after AT+OVER, or the next ramp, takes over. A
//!     step during the ramp changes the rest of the profile; the ramp keeps
//!     the loss. The ramp's loss is random loss without correlation, in
//!     place of the profile's loss model. Ramps may not overlap.
//!   - A partition or a flap's outage wins over a ramp.
//!
//! A change takes effect exactly at its time: a packet arriving at or
//! after it sees the new spec, one that arrived before keeps the delay it
//! was given and is delivered, even into a partition (it is past the cut,
//! as with `tc qdisc change`); see [`Pipeline::set_spec`] for the rest of
//! the state. [`ImpairSchedule::at`] and
//! [`ImpairSchedule::next_change_after`] compute the spec and the change
//! times as asked, so an unending flap costs nothing.
//!
//! A schedule is per direction: a one-way partition is a partition in one
//! direction's schedule only, e.g. the reverse direction's to cut the
//! responses and not the requests.
//!
//! Examples:
//!
//! ```text
//! 0s: delay 10ms; 5s: loss 100%; 13s: delay 10ms   dark from 5s to 13s, as steps
//! 0s: delay 10ms; partition 5s 8s                  the same, with the delay kept
//! partition 1s 4s                                  a clean link, dark from 1s to 5s
//! 0s: delay 20ms 5ms; flap 2s at 10s for 20s       down 10-12s, 14-16s, ..., 26-28s
//! 0s: delay 5ms; partition 2s 1s reject tcp-reset  rejected from 2s to 3s, TCP with resets
//! 0s: delay 5ms; 2s: reject; 3s: delay 5ms         the same with ICMP for all, as steps
//! 0s: delay 10ms; ramp loss 0% 10% 10s at 5s; 30s: delay 10ms
//!                                                  loss 0% at 5s, 0.1% at 5.1s, ...,
//!                                                  10% from 15s to 30s, none after
//! ```
//!
//! [`ImpairSchedule`]'s `Display` is the canonical form, which parses
//! back to the same schedule: steps first (the implicit `0s: none` too),
//! profiles in [`NetemSpec`]'s canonical form (without netem's default
//! limit unless one was given), then shapes by start time with every
//! optional part stated; times in the largest unit that is exact.

use std::collections::VecDeque;
use std::fmt;

use thiserror::Error;

use crate::pipeline::{LinkCounters, Pipeline};
use crate::reject::{self, Reject};
use crate::spec::{fmt_pct, parse_percent, parse_time, Chance, Loss, NetemSpec, SpecError, DEFAULT_LIMIT};

/// How often a ramp's loss moves: often enough that a ramp looks smooth
/// to a transport, seldom enough that a netem backend can follow with
/// `tc qdisc change` (some 10 a second) within the 10 ms the change times
/// are held to.
pub const RAMP_STEP_NS: u64 = 100_000_000;

/// The shortest flap period: a shorter flap is burst loss (a Gilbert-Elliott
/// profile says it better), and a netem backend running tc for each
/// change could not keep up with it.
pub const MIN_FLAP_PERIOD_NS: u64 = 10_000_000;

const STEP_USAGE: &str = "TIME: PROFILE (e.g. 5s: loss 100%)";
const PARTITION_USAGE: &str =
    "partition AT FOR [reject [tcp-reset]] (e.g. partition 5s 8s: dark from 5s to 13s)";
const REJECT_USAGE: &str = "reject, or reject tcp-reset";
const FLAP_USAGE: &str = "flap PERIOD [at AT] [for DURATION] (e.g. flap 2s at 10s for 20s)";
const RAMP_USAGE: &str = "ramp loss FROM TO OVER [at AT] (e.g. ramp loss 0% 10% 10s at 5s)";

/// A netem profile over time (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct ImpairSchedule {
    /// Rising times, the first at 0.
    steps: Vec<ScheduleStep>,
    /// By start time; ramps do not overlap.
    shapes: Vec<Shape>,
}

/// `TIME: PROFILE`: the profile in force from `at_ns` (schedule time).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleStep {
    pub at_ns: u64,
    /// `none` in a step that rejects.
    pub profile: NetemSpec,
    /// `TIME: reject [tcp-reset]`.
    pub reject: Option<Reject>,
}

/// A named shape, over the steps. Times are schedule times, ns;
/// percentages are fractions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    Partition {
        at_ns: u64,
        for_ns: u64,
        /// `None`: a blackhole.
        reject: Option<Reject>,
    },
    Flap {
        period_ns: u64,
        at_ns: u64,
        /// `None`: to the end of the trial.
        for_ns: Option<u64>,
    },
    RampLoss {
        from: f64,
        to: f64,
        over_ns: u64,
        at_ns: u64,
    },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ScheduleError {
    /// `item` counts from 1 among the `;`-separated items.
    #[error("impairment schedule, item {item} ({text:?}): expected {expected}")]
    Item {
        item: usize,
        text: String,
        expected: String,
    },
    #[error("impairment schedule, item {item} ({text:?}): {source}")]
    Profile {
        item: usize,
        text: String,
        #[source]
        source: SpecError,
    },
}

impl ImpairSchedule {
    /// One profile throughout.
    pub fn constant(profile: NetemSpec) -> Self {
        ImpairSchedule {
            steps: vec![ScheduleStep {
                at_ns: 0,
                profile,
                reject: None,
            }],
            shapes: Vec::new(),
        }
    }

    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let mut steps: Vec<ScheduleStep> = Vec::new();
        let mut shapes: Vec<(usize, &str, Shape)> = Vec::new();
        for (i, raw) in text.split(';').enumerate() {
            let item = raw.trim();
            if item.is_empty() {
                continue;
            }
            let number = i + 1;
            let refuse = |expected: String| ScheduleError::Item {
                item: number,
                text: item.to_string(),
                expected,
            };
            let words: Vec<&str> = item.split_whitespace().collect();
            if !words[0].starts_with(|c: char| c.is_ascii_digit() || c == '.') {
                shapes.push((number, item, parse_shape(&words).map_err(refuse)?));
                continue;
            }
            let Some((time, profile)) = item.split_once(':') else {
                let rest = words[1..].join(" ");
                let profile = if rest.is_empty() { "PROFILE" } else { &rest };
                return Err(refuse(format!(
                    "a colon after the time: \"{}: {profile}\"",
                    words[0]
                )));
            };
            let at_ns = parse_time(time.trim()).ok_or_else(|| {
                refuse(format!(
                    "a time with a unit, at most an hour, before the colon (e.g. 0s, 5s, 1500ms): {STEP_USAGE}"
                ))
            })?;
            if let Some(previous) = steps.last().filter(|s| s.at_ns >= at_ns) {
                return Err(refuse(format!(
                    "a time after the previous step's {}: steps go in rising order of time",
                    fmt_time(previous.at_ns)
                )));
            }
            let profile = profile.trim();
            if profile.is_empty() {
                return Err(refuse(format!(
                    "a profile after the colon: netem words, or none for no impairment (e.g. {}: none)",
                    fmt_time(at_ns)
                )));
            }
            let step = match profile.strip_prefix("reject") {
                Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                    let words: Vec<&str> = rest.split_whitespace().collect();
                    ScheduleStep {
                        at_ns,
                        profile: NetemSpec::default(),
                        reject: Some(parse_reject(&words).map_err(|e| {
                            refuse(format!(
                                "{e}: a rejecting link drops everything, so no netem words go with it (e.g. {}: \
                                 reject tcp-reset)",
                                fmt_time(at_ns)
                            ))
                        })?),
                    }
                }
                _ => ScheduleStep {
                    at_ns,
                    profile: parse_profile(profile).map_err(|source| ScheduleError::Profile {
                        item: number,
                        text: item.to_string(),
                        source,
                    })?,
                    reject: None,
                },
            };
            steps.push(step);
        }
        if steps.first().is_none_or(|s| s.at_ns > 0) {
            steps.insert(
                0,
                ScheduleStep {
                    at_ns: 0,
                    profile: NetemSpec::default(),
                    reject: None,
                },
            );
        }
        // Stable: shapes starting together stay in the order written, so
        // the canonical form, already in order, parses to itself.
        shapes.sort_by_key(|(_, _, shape)| shape.start_ns());
        let mut previous_ramp: Option<(u64, u64)> = None;
        for &(number, item, shape) in &shapes {
            if let Shape::RampLoss { over_ns, at_ns, .. } = shape {
                if let Some((start, end)) = previous_ramp.filter(|&(_, end)| at_ns < end) {
                    return Err(ScheduleError::Item {
                        item: number,
                        text: item.to_string(),
                        expected: format!(
                            "a ramp starting at or after {}, where the ramp from {} ends: ramps may not overlap",
                            fmt_time(end),
                            fmt_time(start)
                        ),
                    });
                }
                previous_ramp = Some((at_ns, at_ns + over_ns));
            }
        }
        Ok(ImpairSchedule {
            steps,
            shapes: shapes.into_iter().map(|(_, _, shape)| shape).collect(),
        })
    }

    pub fn steps(&self) -> &[ScheduleStep] {
        &self.steps
    }

    pub fn shapes(&self) -> &[Shape] {
        &self.shapes
    }

    /// Every step's profile, e.g. to give each transbench's queue limit
    /// where it states none; a step that rejects has none to give.
    pub fn profiles_mut(&mut self) -> impl Iterator<Item = &mut NetemSpec> {
        self.steps
            .iter_mut()
            .filter(|s| s.reject.is_none())
            .map(|s| &mut s.profile)
    }

    /// Whether any step or partition rejects.
    pub fn rejects(&self) -> bool {
        self.steps.iter().any(|s| s.reject.is_some())
            || self
                .shapes
                .iter()
                .any(|s| matches!(s, Shape::Partition { reject: Some(_), .. }))
    }

    /// How the link answers what it drops at schedule time `t_ns`; `None`
    /// where it does not reject (a blackhole, or packets go through).
    pub fn rejects_at(&self, t_ns: u64) -> Option<Reject> {
        if !self.is_partitioned(t_ns) {
            let step = self.steps.iter().rev().find(|s| s.at_ns <= t_ns);
            return step.expect("the first step is at 0").reject;
        }
        // By start time: the later-starting of overlapping ones first.
        self.shapes.iter().rev().find_map(|shape| match *shape {
            Shape::Partition { reject, .. } if shape.outages().is_some_and(|o| o.contains(t_ns)) => reject,
            _ => None,
        })
    }

    /// The reject in force anywhere in `[start_ns, end_ns)`, if any (the
    /// first one there).
    pub fn rejects_between(&self, start_ns: u64, end_ns: u64) -> Option<Reject> {
        std::iter::successors(Some(start_ns), |&t| self.next_change_after(t))
            .take_while(|&t| t < end_ns)
            .find_map(|t| self.rejects_at(t))
    }

    /// What is in force at `t_ns`, in words: `reject` or `reject
    /// tcp-reset` where the link rejects, else the netem profile
    /// [`ImpairSchedule::at`] gives, in canonical form.
    pub fn describe_at(&self, t_ns: u64) -> String {
        match self.rejects_at(t_ns) {
            Some(reject) => reject.to_string(),
            None => self.at(t_ns).to_string(),
        }
    }

    /// The spec in force at schedule time `t_ns` (computed: shapes are
    /// never expanded into a list).
    pub fn at(&self, t_ns: u64) -> NetemSpec {
        let step = self.steps.iter().rev().find(|s| s.at_ns <= t_ns);
        let mut spec = step.expect("the first step is at 0").profile.clone();
        if let Some(probability) = self.ramp_loss_at(t_ns) {
            spec.loss = Some(Loss::Random(Chance {
                probability,
                correlation: 0.0,
            }));
        }
        if self.is_partitioned(t_ns) || self.rejects_at(t_ns).is_some() {
            spec.loss = Some(Loss::Random(Chance {
                probability: 1.0,
                correlation: 0.0,
            }));
            spec.ecn = false;
        }
        spec
    }

    /// Whether the profile never changes.
    pub fn is_constant(&self) -> bool {
        self.next_change_after(0).is_none()
    }

    /// The stretches of `[0, until_ns)` in which the link drops every
    /// packet (a partition, a flap's outage, a step with `loss 100%`, a
    /// reject), in order, as `(start, end)`; adjacent ones joined.
    pub fn blackouts(&self, until_ns: u64) -> Vec<(u64, u64)> {
        self.stretches(until_ns, |t| self.at(t).drops_everything())
    }

    /// The stretches of `[0, until_ns)` in which the link rejects, as
    /// [`ImpairSchedule::blackouts`] gives those it drops everything in.
    pub fn rejecting(&self, until_ns: u64) -> Vec<(u64, u64)> {
        self.stretches(until_ns, |t| self.rejects_at(t).is_some())
    }

    /// The stretches of `[0, until_ns)` where `holds` (asked at each
    /// change), adjacent ones joined.
    fn stretches(&self, until_ns: u64, holds: impl Fn(u64) -> bool) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        let mut t = 0;
        while t < until_ns {
            let next = self.next_change_after(t).unwrap_or(u64::MAX).min(until_ns);
            if holds(t) {
                match out.last_mut() {
                    Some(last) if last.1 == t => last.1 = next,
                    _ => out.push((t, next)),
                }
            }
            t = next;
        }
        out
    }

    /// Whether a partition or a flap's outage drops everything at `t_ns`.
    pub fn is_partitioned(&self, t_ns: u64) -> bool {
        self.shapes
            .iter()
            .filter_map(Shape::outages)
            .any(|o| o.contains(t_ns))
    }

    /// The first time after `t_ns` when the spec may change: a step, or
    /// where a shape starts, moves or ends. `None`: never again.
    pub fn next_change_after(&self, t_ns: u64) -> Option<u64> {
        let step = self.steps.iter().map(|s| s.at_ns).find(|&at| at > t_ns);
        let shapes = self.shapes.iter().filter_map(|shape| match shape.outages() {
            Some(o) => o.next_edge_after(t_ns),
            None => shape.ramp_edge_after(t_ns),
        });
        step.into_iter().chain(shapes).min()
    }

    /// The last time at or before `t_ns` when the spec may have changed
    /// (0, the first step, at the latest): what
    /// [`ImpairSchedule::next_change_after`] gave for an earlier time.
    pub fn last_change_at_or_before(&self, t_ns: u64) -> u64 {
        let step = self.steps.iter().rev().map(|s| s.at_ns).find(|&at| at <= t_ns);
        let shapes = self.shapes.iter().filter_map(|shape| match shape.outages() {
            Some(o) => o.last_edge_at_or_before(t_ns),
            None => shape.ramp_edge_at_or_before(t_ns),
        });
        step.into_iter().chain(shapes).max().unwrap_or(0)
    }

    /// The loss a ramp sets at `t_ns`, if one is in force.
    fn ramp_loss_at(&self, t_ns: u64) -> Option<f64> {
        // Ramps do not overlap: the last one started is the only candidate.
        let (from, to, over_ns, at_ns) = self.shapes.iter().rev().find_map(|shape| match *shape {
            Shape::RampLoss {
                from,
                to,
                over_ns,
                at_ns,
            } if at_ns <= t_ns => Some((from, to, over_ns, at_ns)),
            _ => None,
        })?;
        let end = at_ns + over_ns;
        if self.steps.iter().any(|s| s.at_ns >= end && s.at_ns <= t_ns) {
            return None;
        }
        let elapsed = t_ns - at_ns;
        if elapsed >= over_ns {
            return Some(to);
        }
        let steps = over_ns.div_ceil(RAMP_STEP_NS);
        Some(from + (to - from) * (elapsed / RAMP_STEP_NS) as f64 / steps as f64)
    }
}

/// `none`, or netem words.
fn parse_profile(text: &str) -> Result<NetemSpec, SpecError> {
    if text == "none" {
        Ok(NetemSpec::default())
    } else {
        NetemSpec::parse(text)
    }
}

/// A shape's words; the error says what was expected.
fn parse_shape(words: &[&str]) -> Result<Shape, String> {
    match words[0] {
        "partition" => {
            let [_, at, duration, rest @ ..] = words else {
                return Err(PARTITION_USAGE.into());
            };
            let at_ns = time(at, "AT", PARTITION_USAGE)?;
            let for_ns = time(duration, "FOR", PARTITION_USAGE)?;
            if for_ns == 0 {
                return Err(format!("FOR longer than 0s: {PARTITION_USAGE}"));
            }
            let reject = match rest {
                [] => None,
                ["reject", how @ ..] => {
                    Some(parse_reject(how).map_err(|e| format!("{e}; {PARTITION_USAGE}"))?)
                }
                [word, ..] => {
                    return Err(format!(
                        "nothing more after FOR, or reject, not {word:?}: {PARTITION_USAGE}"
                    ))
                }
            };
            Ok(Shape::Partition {
                at_ns,
                for_ns,
                reject,
            })
        }
        "flap" => {
            let period = words.get(1).ok_or(FLAP_USAGE)?;
            let period_ns = time(period, "PERIOD", FLAP_USAGE)?;
            if period_ns < MIN_FLAP_PERIOD_NS {
                return Err(format!(
                    "PERIOD at least {}: a faster flap is burst loss (loss gemodel); {FLAP_USAGE}",
                    fmt_time(MIN_FLAP_PERIOD_NS)
                ));
            }
            let (at_ns, for_ns) = options(&words[2..], true, FLAP_USAGE)?;
            if for_ns == Some(0) {
                return Err(format!("DURATION longer than 0s: {FLAP_USAGE}"));
            }
            Ok(Shape::Flap {
                period_ns,
                at_ns: at_ns.unwrap_or(period_ns),
                for_ns,
            })
        }
        "ramp" => {
            match words.get(1) {
                Some(&"loss") => {}
                Some(other) => return Err(format!("loss, not {other:?}: only loss ramps; {RAMP_USAGE}")),
                None => return Err(RAMP_USAGE.into()),
            }
            let [_, _, from, to, over, rest @ ..] = words else {
                return Err(RAMP_USAGE.into());
            };
            let from = percent(from, "FROM")?;
            let to = percent(to, "TO")?;
            let over_ns = time(over, "OVER", RAMP_USAGE)?;
            if over_ns == 0 {
                return Err(format!("OVER longer than 0s: {RAMP_USAGE}"));
            }
            let (at_ns, _) = options(rest, false, RAMP_USAGE)?;
            Ok(Shape::RampLoss {
                from,
                to,
                over_ns,
                at_ns: at_ns.unwrap_or(0),
            })
        }
        "reject" => Err(format!(
            "a time first: \"0s: {}\" for a step, or \"partition AT FOR {}\" for a stretch",
            words.join(" "),
            words.join(" ")
        )),
        "one-way" => Err(
            "a partition in one direction's schedule only: a schedule is per direction, so give \
             `partition AT FOR` to the direction to cut (the reverse one to cut the responses)"
                .into(),
        ),
        word => {
            let item = words.join(" ");
            if parse_profile(&item).is_ok() {
                Err(format!("a time first: \"0s: {item}\" ({STEP_USAGE})"))
            } else {
                Err(format!(
                    "a step or a shape, not {word:?}: {STEP_USAGE}, {PARTITION_USAGE}, {FLAP_USAGE}, or \
                     {RAMP_USAGE}"
                ))
            }
        }
    }
}

/// The words after `reject`: none (ICMP), or `tcp-reset`.
fn parse_reject(words: &[&str]) -> Result<Reject, String> {
    match words {
        [] => Ok(Reject::Icmp),
        ["tcp-reset"] => Ok(Reject::TcpReset),
        _ => Err(format!("{REJECT_USAGE}, not \"reject {}\"", words.join(" "))),
    }
}

fn time(word: &str, what: &str, usage: &str) -> Result<u64, String> {
    parse_time(word).ok_or_else(|| {
        format!("{what}: a time with a unit, at most an hour (e.g. 5s, 500ms), not {word:?}; {usage}")
    })
}

fn percent(word: &str, what: &str) -> Result<f64, String> {
    parse_percent(word)
        .ok_or_else(|| format!("{what}: a percentage from 0 to 100 (e.g. 10%), not {word:?}; {RAMP_USAGE}"))
}

/// `at AT` and (if `with_for`) `for DURATION`, each at most once.
fn options(words: &[&str], with_for: bool, usage: &str) -> Result<(Option<u64>, Option<u64>), String> {
    let (mut at, mut duration) = (None, None);
    for pair in words.chunks(2) {
        let slot = match pair[0] {
            "at" if at.is_none() => &mut at,
            "for" if with_for && duration.is_none() => &mut duration,
            _ => {
                return Err(format!(
                    "nothing more, or another option, not {:?}: {usage}",
                    pair[0]
                ))
            }
        };
        let value = pair
            .get(1)
            .ok_or_else(|| format!("a time after {:?}: {usage}", pair[0]))?;
        *slot = Some(time(value, pair[0], usage)?);
    }
    Ok((at, duration))
}

/// A partition's or a flap's outages: `[at + 2kP, at + 2kP + P)` for k =
/// 0, 1, ..., cut at `end`.
struct Outages {
    at: u64,
    period: u64,
    end: Option<u64>,
}

impl Outages {
    fn contains(&self, t: u64) -> bool {
        t >= self.at && self.end.is_none_or(|end| t < end) && ((t - self.at) / self.period) % 2 == 0
    }

    /// Edges are `at + kP` before `end`, and `end` if it cuts an outage.
    fn next_edge_after(&self, t: u64) -> Option<u64> {
        if t < self.at {
            return Some(self.at);
        }
        let phase = (t - self.at) / self.period;
        let edge = (phase + 1)
            .checked_mul(self.period)
            .and_then(|d| d.checked_add(self.at));
        match (edge, self.end) {
            (Some(edge), Some(end)) if edge >= end => (t < end && self.contains(end - 1)).then_some(end),
            (edge, _) => edge,
        }
    }

    fn last_edge_at_or_before(&self, t: u64) -> Option<u64> {
        if t < self.at {
            return None;
        }
        let t = match self.end {
            Some(end) if t >= end && self.contains(end - 1) => return Some(end),
            Some(end) => t.min(end - 1),
            None => t,
        };
        Some(self.at + (t - self.at) / self.period * self.period)
    }
}

impl Shape {
    fn start_ns(&self) -> u64 {
        match *self {
            Shape::Partition { at_ns, .. } | Shape::Flap { at_ns, .. } | Shape::RampLoss { at_ns, .. } => {
                at_ns
            }
        }
    }

    /// A partition is a flap with one outage.
    fn outages(&self) -> Option<Outages> {
        match *self {
            Shape::Partition { at_ns, for_ns, .. } => Some(Outages {
                at: at_ns,
                period: for_ns,
                end: Some(at_ns + for_ns),
            }),
            Shape::Flap {
                period_ns,
                at_ns,
                for_ns,
            } => Some(Outages {
                at: at_ns,
                period: period_ns,
                end: for_ns.map(|d| at_ns + d),
            }),
            Shape::RampLoss { .. } => None,
        }
    }

    /// A ramp's edges: `at + k·RAMP_STEP_NS` before its end, and its end.
    /// (Where it stops holding is a step's time or another ramp's start.)
    fn ramp_edge_after(&self, t: u64) -> Option<u64> {
        let Shape::RampLoss { over_ns, at_ns, .. } = *self else {
            return None;
        };
        if t < at_ns {
            return Some(at_ns);
        }
        let elapsed = t - at_ns;
        (elapsed < over_ns).then(|| at_ns + ((elapsed / RAMP_STEP_NS + 1) * RAMP_STEP_NS).min(over_ns))
    }

    fn ramp_edge_at_or_before(&self, t: u64) -> Option<u64> {
        let Shape::RampLoss { over_ns, at_ns, .. } = *self else {
            return None;
        };
        let elapsed = t.checked_sub(at_ns)?;
        Some(
            at_ns
                + if elapsed >= over_ns {
                    over_ns
                } else {
                    elapsed / RAMP_STEP_NS * RAMP_STEP_NS
                },
        )
    }
}

/// The largest unit that is exact.
fn fmt_time(ns: u64) -> String {
    match ns {
        0 => "0s".into(),
        _ if ns % 1_000_000_000 == 0 => format!("{}s", ns / 1_000_000_000),
        _ if ns % 1_000_000 == 0 => format!("{}ms", ns / 1_000_000),
        _ if ns % 1_000 == 0 => format!("{}us", ns / 1_000),
        _ => format!("{ns}ns"),
    }
}

/// [`NetemSpec`]'s canonical form, without the limit it states when the
/// profile gave none: a step without a limit keeps none, so that a caller
/// can still give it its own default.
fn fmt_profile(profile: &NetemSpec) -> String {
    let text = profile.to_string();
    let text = match profile.limit {
        Some(_) => text.as_str(),
        None => text
            .strip_prefix(&format!("limit {DEFAULT_LIMIT}"))
            .unwrap_or(&text)
            .trim_start(),
    };
    if text.is_empty() {
        "none".into()
    } else {
        text.into()
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Shape::Partition {
                at_ns,
                for_ns,
                reject,
            } => {
                write!(f, "partition {} {}", fmt_time(at_ns), fmt_time(for_ns))?;
                match reject {
                    Some(reject) => write!(f, " {reject}"),
                    None => Ok(()),
                }
            }
            Shape::Flap {
                period_ns,
                at_ns,
                for_ns,
            } => {
                write!(f, "flap {} at {}", fmt_time(period_ns), fmt_time(at_ns))?;
                match for_ns {
                    Some(d) => write!(f, " for {}", fmt_time(d)),
                    None => Ok(()),
                }
            }
            Shape::RampLoss {
                from,
                to,
                over_ns,
                at_ns,
            } => write!(
                f,
                "ramp loss {} {} {} at {}",
                fmt_pct(from),
                fmt_pct(to),
                fmt_time(over_ns),
                fmt_time(at_ns)
            ),
        }
    }
}

/// The canonical form (see the module documentation).
impl fmt::Display for ImpairSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let steps = self.steps.iter().map(|s| match s.reject {
            Some(reject) => format!("{}: {reject}", fmt_time(s.at_ns)),
            None => format!("{}: {}", fmt_time(s.at_ns), fmt_profile(&s.profile)),
        });
        let items: Vec<String> = steps.chain(self.shapes.iter().map(Shape::to_string)).collect();
        f.write_str(&items.join("; "))
    }
}

/// One direction of a link following an [`ImpairSchedule`]: a [`Pipeline`]
/// given each change with [`Pipeline::set_spec`] at the change's own time
/// (see there for what a change does to queued packets and state). A
/// packet arriving at or after a change's time sees the new spec.
///
/// Schedule time 0 is a start time on the caller's clock, given at
/// [`ScheduledPipeline::new`] or [`ScheduledPipeline::start`]; before it
/// the schedule's first spec applies. A held pipeline (not started, or
/// [`ScheduledPipeline::hold`]) keeps the first spec and changes nothing:
/// a link between trials.
///
/// Where the schedule rejects, a packet never reaches the pipeline: it is
/// dropped, counted `rejected`, and its answer ([`reject::answer`]) waits
/// in [`ScheduledPipeline::take_answer`] for the caller to send back the
/// way the packet came, past both directions' pipelines: the firewall
/// stands at the link's entrance, so an answer takes no delay, is never
/// lost, and cannot meet a reject itself.
pub struct ScheduledPipeline {
    schedule: ImpairSchedule,
    pipeline: Pipeline,
    /// `None`: held.
    start_ns: Option<u64>,
    /// The schedule time of the last change applied.
    applied_ns: u64,
    /// The reject in force at `applied_ns`.
    rejecting: Option<Reject>,
    /// Answers not yet taken, oldest first.
    answers: VecDeque<Vec<u8>>,
    rejected: u64,
    reject_answers: u64,
}

impl ScheduledPipeline {
    /// Started at `start_ns`; `seed` as for [`Pipeline::new`].
    pub fn new(schedule: ImpairSchedule, seed: u64, start_ns: u64) -> Self {
        let mut p = Self::held(schedule, seed);
        p.start_ns = Some(start_ns);
        p
    }

    /// Held at the schedule's first spec until [`ScheduledPipeline::start`].
    pub fn held(schedule: ImpairSchedule, seed: u64) -> Self {
        ScheduledPipeline {
            pipeline: Pipeline::new(&schedule.at(0), seed),
            rejecting: schedule.rejects_at(0),
            schedule,
            start_ns: None,
            applied_ns: 0,
            answers: VecDeque::new(),
            rejected: 0,
            reject_answers: 0,
        }
    }

    /// Schedule time 0 is `start_ns` from now on; a pipeline not held is
    /// held first (at `now_ns`), so every start begins at the first spec.
    pub fn start(&mut self, start_ns: u64, now_ns: u64) {
        self.hold(now_ns);
        self.start_ns = Some(start_ns);
    }

    /// Back to the schedule's first spec at `now_ns` (as a change would
    /// be), after any change due by then, and no more changes until the
    /// next [`ScheduledPipeline::start`].
    pub fn hold(&mut self, now_ns: u64) {
        self.apply_changes(now_ns);
        if self.applied_ns != 0 {
            self.pipeline.set_spec(&self.schedule.at(0), now_ns);
            self.rejecting = self.schedule.rejects_at(0);
            self.applied_ns = 0;
        }
        self.start_ns = None;
    }

    pub fn schedule(&self) -> &ImpairSchedule {
        &self.schedule
    }

    /// As [`Pipeline::enqueue`], after any change due by `now_ns`; where
    /// the schedule rejects, the packet is dropped and its answer, if it
    /// may have one, kept for [`ScheduledPipeline::take_answer`].
    pub fn enqueue(&mut self, packet: Vec<u8>, now_ns: u64) {
        self.apply_changes(now_ns);
        match self.rejecting {
            Some(how) => {
                self.rejected += 1;
                if let Some(answer) = reject::answer(&packet, how) {
                    self.reject_answers += 1;
                    self.answers.push_back(answer);
                }
            }
            None => self.pipeline.enqueue(packet, now_ns),
        }
    }

    /// The oldest answer to a rejected packet not yet taken: the caller
    /// sends it back toward the rejected packet's sender.
    pub fn take_answer(&mut self) -> Option<Vec<u8>> {
        self.answers.pop_front()
    }

    /// As [`Pipeline::dequeue`], after any change due by `now_ns`.
    pub fn dequeue(&mut self, now_ns: u64) -> Option<Vec<u8>> {
        self.apply_changes(now_ns);
        self.pipeline.dequeue(now_ns)
    }

    /// As [`Pipeline::deliver_at_once`] for a packet arriving now. `now`
    /// reads the caller's clock, only when a change may be due: a link
    /// with none pending passes packets on without a clock read.
    pub fn deliver_at_once(&mut self, now: impl FnOnce() -> u64, packets: u64) -> bool {
        if self.next_change().is_some() {
            self.apply_changes(now());
        }
        self.rejecting.is_none() && self.pipeline.deliver_at_once(packets)
    }

    /// When to call [`ScheduledPipeline::dequeue`] next: the next packet
    /// due or the next change, whichever comes first (on the caller's
    /// clock), so that a change is applied at its time even on an idle
    /// link.
    pub fn next_due(&self) -> Option<u64> {
        self.pipeline
            .next_due()
            .into_iter()
            .chain(self.next_change())
            .min()
    }

    /// When the next change not yet applied takes effect, on the caller's
    /// clock; `None`: no more, or held.
    pub fn next_change(&self) -> Option<u64> {
        let start = self.start_ns?;
        let t = self.schedule.next_change_after(self.applied_ns)?;
        Some(start.saturating_add(t))
    }

    /// The pipeline's counters, with the packets rejected before it
    /// counted as arrived.
    pub fn counters(&self) -> LinkCounters {
        let c = self.pipeline.counters();
        LinkCounters {
            arrived: c.arrived + self.rejected,
            rejected: self.rejected,
            reject_answers: self.reject_answers,
            ..c
        }
    }

    pub fn queued(&self) -> usize {
        self.pipeline.queued()
    }

    /// Applies the latest change due by `now_ns`, at its own time: the
    /// pipeline after a change does not depend on earlier changes (see
    /// [`Pipeline::set_spec`]), so changes passed over while the caller
    /// slept need not be applied one by one.
    fn apply_changes(&mut self, now_ns: u64) {
        let Some(start) = self.start_ns else { return };
        let t = now_ns.saturating_sub(start);
        let change = self.schedule.last_change_at_or_before(t);
        if change > self.applied_ns {
            self.pipeline
                .set_spec(&self.schedule.at(change), start.saturating_add(change));
            self.rejecting = self.schedule.rejects_at(change);
            self.applied_ns = change;
        }
    }
}
