//! tc-netem's argument grammar (tc-netem(8)), parsed into a [`NetemSpec`].
//!
//! What tc refuses is refused here too, with the word and what was
//! expected: reorder without delay, gap without reorder, a distribution
//! without delay and jitter, ecn without a loss model, probabilities outside
//! 0-100 %. Stricter than tc in two ways: times and rates need a unit (tc
//! reads a bare number as microseconds or bits/s, a classic source of
//! thousand-fold mistakes), and a time is at most [`MAX_TIME_NS`], an hour
//! (linkemu adds times to a monotonic clock and to each other, which a
//! time of centuries overflows).

use std::fmt;
use thiserror::Error;

use crate::dist::Distribution;

/// netem's default queue limit, in packets.
pub const DEFAULT_LIMIT: u32 = 1000;

/// The queue limit transbench gives a profile that sets none: deep enough
/// that the queue drops nothing the profile did not ask for.
pub const IMPAIRED_LIMIT: u32 = 100_000;

/// The longest time a profile may give (a delay, a jitter, a slot): an
/// hour, longer than any link transbench emulates waits.
pub const MAX_TIME_NS: u64 = 3_600_000_000_000;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetemSpec {
    /// Queue limit in packets; `None`: netem's default, [`DEFAULT_LIMIT`].
    pub limit: Option<u32>,
    pub delay: Option<Delay>,
    pub loss: Option<Loss>,
    /// Mark ECN-capable packets CE instead of dropping them.
    pub ecn: bool,
    pub duplicate: Option<Chance>,
    pub corrupt: Option<Chance>,
    pub reorder: Option<Reorder>,
    pub rate: Option<Rate>,
    pub slot: Option<Slot>,
    pub seed: Option<u64>,
}

/// A probability and its correlation with the previous draw, as fractions.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Chance {
    pub probability: f64,
    pub correlation: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delay {
    pub latency_ns: u64,
    pub jitter_ns: u64,
    pub correlation: f64,
    pub distribution: Distribution,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    Random(Chance),
    /// The 4-state Markov model (GI model): transition probabilities.
    FourState {
        p13: f64,
        p31: f64,
        p32: f64,
        p23: f64,
        p14: f64,
    },
    /// Gilbert-Elliott: p (good to bad), r (bad to good), loss probability
    /// in the bad state (`1-h`) and in the good state (`1-k`).
    GilbertElliott {
        p: f64,
        r: f64,
        bad_loss: f64,
        good_loss: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reorder {
    pub chance: Chance,
    /// Every `gap`-th packet is eligible to be sent at once; 1 = any.
    pub gap: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub bytes_per_sec: u64,
    /// Added to every packet's length (may be negative).
    pub packet_overhead: i32,
    /// Link-layer cell size (ATM: 53), 0 for none.
    pub cell_size: u32,
    pub cell_overhead: i32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    /// Time between slots: uniform in `[min, max)`, or drawn from a
    /// distribution around a delay.
    pub interval: SlotInterval,
    /// Most packets / bytes sent in one slot.
    pub packets: Option<u32>,
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SlotInterval {
    Range {
        min_ns: u64,
        max_ns: u64,
    },
    Distributed {
        distribution: Distribution,
        delay_ns: u64,
        jitter_ns: u64,
    },
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("netem profile, word {position} ({word:?}): expected {expected}")]
pub struct SpecError {
    /// 1-based position of the offending word; one past the end when a
    /// value is missing.
    pub position: usize,
    pub word: String,
    pub expected: String,
}

struct Words<'a> {
    words: Vec<&'a str>,
    next: usize,
}

impl<'a> Words<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.words.get(self.next).copied()
    }

    fn take(&mut self) -> Option<&'a str> {
        let w = self.peek();
        if w.is_some() {
            self.next += 1;
        }
        w
    }

    /// The error for the word just taken (or the missing one).
    fn error(&self, expected: impl Into<String>) -> SpecError {
        let at = self.next.saturating_sub(1);
        SpecError {
            position: at + 1,
            word: self.words.get(at).copied().unwrap_or("").to_string(),
            expected: expected.into(),
        }
    }

    fn missing(&self, expected: impl Into<String>) -> SpecError {
        SpecError {
            position: self.words.len() + 1,
            word: String::new(),
            expected: expected.into(),
        }
    }

    /// The next word, which must be there.
    fn value(&mut self, expected: &str) -> Result<&'a str, SpecError> {
        self.take().ok_or_else(|| self.missing(expected))
    }

    /// tc's NEXT_IS_NUMBER: optional arguments are taken only when the next
    /// word starts like a number.
    fn next_is_number(&self) -> bool {
        self.peek()
            .and_then(|w| w.chars().next())
            .is_some_and(|c| c.is_ascii_digit() || c == '.')
    }

    fn next_is_signed_number(&self) -> bool {
        self.next_is_number() || self.peek().is_some_and(|w| w.starts_with('-'))
    }

    fn percent(&mut self, what: &str) -> Result<f64, SpecError> {
        let w = self.value(what)?;
        parse_percent(w)
            .ok_or_else(|| self.error(format!("{what}: a percentage from 0 to 100 (e.g. 1%, 0.5%)")))
    }

    fn optional_percent(&mut self, what: &str) -> Result<f64, SpecError> {
        if self.next_is_number() {
            self.percent(what)
        } else {
            Ok(0.0)
        }
    }

    fn chance(&mut self, what: &str) -> Result<Chance, SpecError> {
        let probability = self.percent(what)?;
        let correlation = self.optional_percent(&format!("{what} correlation"))?;
        Ok(Chance {
            probability,
            correlation,
        })
    }

    fn time(&mut self, what: &str) -> Result<u64, SpecError> {
        let w = self.value(what)?;
        parse_time(w).ok_or_else(|| {
            self.error(format!(
                "{what}: a time with a unit, at most an hour (e.g. 10ms, 500us, 1.5s)"
            ))
        })
    }

    fn integer<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, SpecError> {
        let w = self.value(what)?;
        w.parse()
            .map_err(|_| self.error(format!("{what}: a whole number")))
    }

    fn distribution(&mut self) -> Result<Distribution, SpecError> {
        let w = self.value("a distribution")?;
        w.parse()
            .map_err(|_| self.error("a distribution: uniform, normal, pareto or paretonormal"))
    }
}

pub(crate) fn parse_percent(w: &str) -> Option<f64> {
    let number = w.strip_suffix('%').unwrap_or(w);
    let v: f64 = number.parse().ok()?;
    (v.is_finite() && (0.0..=100.0).contains(&v)).then_some(v / 100.0)
}

fn split_unit(w: &str) -> Option<(f64, &str)> {
    let at = w.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E'))?;
    let (number, unit) = w.split_at(at);
    let v: f64 = number.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some((v, unit))
}

pub(crate) fn parse_time(w: &str) -> Option<u64> {
    let (v, unit) = split_unit(w)?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "s" | "sec" | "secs" => 1e9,
        "ms" | "msec" | "msecs" => 1e6,
        "us" | "usec" | "usecs" => 1e3,
        "ns" | "nsec" | "nsecs" => 1.0,
        _ => return None,
    };
    let ns = (v * scale).round();
    (ns <= MAX_TIME_NS as f64).then_some(ns as u64)
}

/// A rate in bytes per second; tc's units (`kbit` = 1000 bits/s, `mbps` =
/// megabytes/s, `kibit` = 1024 bits/s).
fn parse_rate(w: &str) -> Option<u64> {
    let (v, unit) = split_unit(w)?;
    // `tc qdisc show` prints `100Mbit`: units are read case-blind.
    let unit = unit.to_ascii_lowercase();
    let unit = unit.as_str();
    let (bits, prefix) = if let Some(p) = unit.strip_suffix("bit") {
        (true, p)
    } else if let Some(p) = unit.strip_suffix("bps") {
        (false, p)
    } else {
        return None;
    };
    let multiplier = match prefix {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "ki" => 1024.0,
        "mi" => 1024.0 * 1024.0,
        "gi" => 1024.0 * 1024.0 * 1024.0,
        "ti" => 1024.0f64.powi(4),
        _ => return None,
    };
    let bytes = v * multiplier / if bits { 8.0 } else { 1.0 };
    (bytes >= 1.0).then_some(bytes.round() as u64)
}

fn parse_size(w: &str) -> Option<u64> {
    if let Ok(v) = w.parse::<u64>() {
        return Some(v);
    }
    let (v, unit) = split_unit(w)?;
    let scale = match unit {
        "b" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024.0 * 1024.0,
        "g" | "gb" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((v * scale).round() as u64)
}

impl NetemSpec {
    /// Whether every packet is dropped: random loss of 100 % (without
    /// ECN, which would mark ECN-capable packets instead).
    pub fn drops_everything(&self) -> bool {
        !self.ecn && matches!(self.loss, Some(Loss::Random(c)) if c.probability >= 1.0)
    }

    pub fn effective_limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }

    /// The mean packet loss this spec configures: 0 without loss, `None`
    /// for a model without a closed form here (4-state).
    pub fn mean_loss(&self) -> Option<f64> {
        match self.loss {
            None => Some(0.0),
            Some(Loss::Random(c)) => Some(c.probability),
            Some(Loss::GilbertElliott {
                p,
                r,
                bad_loss,
                good_loss,
            }) if p + r > 0.0 => {
                let bad = p / (p + r);
                Some(bad * bad_loss + (1.0 - bad) * good_loss)
            }
            Some(_) => None,
        }
    }

    /// A profile file (`netem-scripts/profiles/*.netem`): netem words over
    /// any number of lines, `#` starting a comment. The shell scripts read
    /// the same files, so a profile has one definition.
    pub fn parse_profile_file(text: &str) -> Result<Self, SpecError> {
        let words: Vec<&str> = text
            .lines()
            .map(|line| line.split('#').next().unwrap_or(""))
            .collect();
        Self::parse(&words.join(" "))
    }

    pub fn parse(profile: &str) -> Result<Self, SpecError> {
        let mut w = Words {
            words: profile.split_whitespace().collect(),
            next: 0,
        };
        let mut spec = NetemSpec::default();
        let mut gap: Option<u32> = None;
        let mut distribution: Option<Distribution> = None;
        // Where each keyword was last seen, for errors found at the end.
        let mut seen = std::collections::HashMap::new();
        while let Some(word) = w.take() {
            seen.insert(word, w.next);
            match word {
                "limit" => spec.limit = Some(w.integer("limit: packets")?),
                "delay" | "latency" => {
                    let latency_ns = w.time("delay")?;
                    let mut delay = Delay {
                        latency_ns,
                        jitter_ns: 0,
                        correlation: 0.0,
                        distribution: Distribution::Uniform,
                    };
                    if w.next_is_number() {
                        delay.jitter_ns = w.time("jitter")?;
                        delay.correlation = w.optional_percent("delay correlation")?;
                    }
                    spec.delay = Some(delay);
                }
                "distribution" => distribution = Some(w.distribution()?),
                "loss" | "drop" => spec.loss = Some(parse_loss(&mut w)?),
                "ecn" => spec.ecn = true,
                "duplicate" => spec.duplicate = Some(w.chance("duplicate")?),
                "corrupt" => spec.corrupt = Some(w.chance("corrupt")?),
                "reorder" => {
                    spec.reorder = Some(Reorder {
                        chance: w.chance("reorder")?,
                        gap: 0,
                    })
                }
                "gap" => gap = Some(w.integer("gap: packets")?),
                "rate" => spec.rate = Some(parse_rate_args(&mut w)?),
                "slot" => spec.slot = Some(parse_slot(&mut w)?),
                "seed" => spec.seed = Some(w.integer("seed")?),
                "reject" => {
                    return Err(w.error(
                        "a netem keyword: reject is no netem feature (netem cannot answer); in an impairment \
                         schedule it is a step of its own (\"2s: reject\") or a partition's kind (\"partition 2s \
                         1s reject\")",
                    ))
                }
                _ => {
                    return Err(w.error(
                        "a netem keyword: limit, delay, distribution, loss, ecn, duplicate, corrupt, \
                         reorder, gap, rate, slot or seed",
                    ))
                }
            }
        }
        spec.finish(gap, distribution, &seen)
    }

    /// The cross-field rules tc applies after reading every word.
    fn finish(
        mut self,
        gap: Option<u32>,
        distribution: Option<Distribution>,
        seen: &std::collections::HashMap<&str, usize>,
    ) -> Result<Self, SpecError> {
        let refuse = |word: &str, expected: &str| SpecError {
            position: seen.get(word).copied().unwrap_or(0),
            word: word.to_string(),
            expected: expected.to_string(),
        };
        let latency = self.delay.map_or(0, |d| d.latency_ns);
        match (&mut self.reorder, gap) {
            (Some(r), _) if r.chance.probability > 0.0 && latency == 0 => {
                return Err(refuse(
                    "reorder",
                    "a delay as well: reordering sends some packets ahead of delayed ones",
                ))
            }
            (Some(r), gap) => r.gap = gap.unwrap_or(0).max(1),
            (None, Some(_)) => return Err(refuse("gap", "reorder as well: gap applies to reordering")),
            (None, None) => {}
        }
        if let Some(dist) = distribution {
            match &mut self.delay {
                Some(d) if d.latency_ns > 0 && d.jitter_ns > 0 => d.distribution = dist,
                _ => {
                    return Err(refuse(
                        "distribution",
                        "a delay with a jitter to shape (delay 20ms 5ms distribution normal)",
                    ))
                }
            }
        }
        if self.ecn && self.loss.is_none() {
            return Err(refuse(
                "ecn",
                "a loss model as well: ecn marks packets that loss would drop",
            ));
        }
        Ok(self)
    }
}

fn parse_loss(w: &mut Words<'_>) -> Result<Loss, SpecError> {
    match w.peek() {
        Some("random") => {
            w.take();
            Ok(Loss::Random(w.chance("loss")?))
        }
        Some("state") => {
            w.take();
            let p13 = w.percent("loss state p13")?;
            // tc's defaults for the ones left out.
            let mut p = [1.0 - p13, 0.0, 1.0, 0.0];
            for (i, name) in ["p31", "p32", "p23", "p14"].iter().enumerate() {
                if !w.next_is_number() {
                    break;
                }
                p[i] = w.percent(&format!("loss state {name}"))?;
            }
            Ok(Loss::FourState {
                p13,
                p31: p[0],
                p32: p[1],
                p23: p[2],
                p14: p[3],
            })
        }
        Some("gemodel") => {
            w.take();
            let p = w.percent("loss gemodel p")?;
            let mut rest = [1.0 - p, 1.0, 0.0];
            for (i, name) in ["r", "1-h", "1-k"].iter().enumerate() {
                if !w.next_is_number() {
                    break;
                }
                rest[i] = w.percent(&format!("loss gemodel {name}"))?;
            }
            Ok(Loss::GilbertElliott {
                p,
                r: rest[0],
                bad_loss: rest[1],
                good_loss: rest[2],
            })
        }
        _ => Ok(Loss::Random(w.chance("loss")?)),
    }
}

fn parse_rate_args(w: &mut Words<'_>) -> Result<Rate, SpecError> {
    let word = w.value("rate")?;
    let bytes_per_sec = parse_rate(word).ok_or_else(|| {
        w.error("rate: a rate with a unit (e.g. 100mbit, 1gbit, 500kbit; mbps means megabytes/s)")
    })?;
    let mut rate = Rate {
        bytes_per_sec,
        packet_overhead: 0,
        cell_size: 0,
        cell_overhead: 0,
    };
    if w.next_is_signed_number() {
        rate.packet_overhead = w.integer("rate packet overhead: bytes")?;
        if w.next_is_number() {
            rate.cell_size = w.integer("rate cell size: bytes")?;
            if w.next_is_signed_number() {
                rate.cell_overhead = w.integer("rate cell overhead: bytes")?;
            }
        }
    }
    Ok(rate)
}

fn parse_slot(w: &mut Words<'_>) -> Result<Slot, SpecError> {
    let interval = if w.peek() == Some("distribution") {
        w.take();
        let distribution = w.distribution()?;
        let delay_ns = w.time("slot delay")?;
        let jitter_ns = w.time("slot jitter")?;
        SlotInterval::Distributed {
            distribution,
            delay_ns,
            jitter_ns,
        }
    } else {
        let min_ns = w.time("slot minimum delay")?;
        let max_ns = if w.next_is_number() {
            w.time("slot maximum delay")?
        } else {
            min_ns
        };
        if max_ns < min_ns {
            return Err(w.error("slot maximum delay: at least the minimum"));
        }
        SlotInterval::Range { min_ns, max_ns }
    };
    let mut slot = Slot {
        interval,
        packets: None,
        bytes: None,
    };
    loop {
        match w.peek() {
            Some("packets") => {
                w.take();
                slot.packets = Some(w.integer("slot packets")?);
            }
            Some("bytes") => {
                w.take();
                let word = w.value("slot bytes")?;
                slot.bytes =
                    Some(parse_size(word).ok_or_else(|| w.error("slot bytes: a size (e.g. 1500, 64kb)"))?);
            }
            _ => return Ok(slot),
        }
    }
}

/// In units tc reads (it has no `ns`): sub-microsecond parts as decimals.
fn fmt_time(ns: u64) -> String {
    match ns {
        0 => "0us".into(),
        _ if ns % 1_000_000 == 0 => format!("{}ms", ns / 1_000_000),
        _ if ns % 1_000 == 0 => format!("{}us", ns / 1_000),
        _ => format!("{}us", ns as f64 / 1e3),
    }
}

pub(crate) fn fmt_pct(p: f64) -> String {
    format!("{}%", (p * 100.0 * 1e6).round() / 1e6)
}

/// The canonical profile string: tc netem accepts it, and parsing it gives
/// the same spec back.
impl fmt::Display for NetemSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![format!("limit {}", self.effective_limit())];
        if let Some(d) = &self.delay {
            let mut s = format!("delay {}", fmt_time(d.latency_ns));
            if d.jitter_ns > 0 {
                s += &format!(" {}", fmt_time(d.jitter_ns));
                if d.correlation > 0.0 {
                    s += &format!(" {}", fmt_pct(d.correlation));
                }
                if d.distribution != Distribution::Uniform {
                    s += &format!(" distribution {}", d.distribution);
                }
            }
            parts.push(s);
        }
        match &self.loss {
            None => {}
            Some(Loss::Random(c)) => parts.push(format!("loss random {}", fmt_chance(c))),
            Some(Loss::FourState {
                p13,
                p31,
                p32,
                p23,
                p14,
            }) => parts.push(format!(
                "loss state {} {} {} {} {}",
                fmt_pct(*p13),
                fmt_pct(*p31),
                fmt_pct(*p32),
                fmt_pct(*p23),
                fmt_pct(*p14)
            )),
            Some(Loss::GilbertElliott {
                p,
                r,
                bad_loss,
                good_loss,
            }) => parts.push(format!(
                "loss gemodel {} {} {} {}",
                fmt_pct(*p),
                fmt_pct(*r),
                fmt_pct(*bad_loss),
                fmt_pct(*good_loss)
            )),
        }
        if self.ecn {
            parts.push("ecn".into());
        }
        if let Some(c) = &self.duplicate {
            parts.push(format!("duplicate {}", fmt_chance(c)));
        }
        if let Some(c) = &self.corrupt {
            parts.push(format!("corrupt {}", fmt_chance(c)));
        }
        if let Some(r) = &self.reorder {
            parts.push(format!("reorder {} gap {}", fmt_chance(&r.chance), r.gap));
        }
        if let Some(r) = &self.rate {
            let mut s = format!("rate {}bps", r.bytes_per_sec);
            if r.packet_overhead != 0 || r.cell_size != 0 {
                s += &format!(" {} {} {}", r.packet_overhead, r.cell_size, r.cell_overhead);
            }
            parts.push(s);
        }
        if let Some(slot) = &self.slot {
            let mut s = match slot.interval {
                SlotInterval::Range { min_ns, max_ns } => {
                    format!("slot {} {}", fmt_time(min_ns), fmt_time(max_ns))
                }
                SlotInterval::Distributed {
                    distribution,
                    delay_ns,
                    jitter_ns,
                } => format!(
                    "slot distribution {distribution} {} {}",
                    fmt_time(delay_ns),
                    fmt_time(jitter_ns)
                ),
            };
            if let Some(p) = slot.packets {
                s += &format!(" packets {p}");
            }
            if let Some(b) = slot.bytes {
                s += &format!(" bytes {b}");
            }
            parts.push(s);
        }
        if let Some(seed) = self.seed {
            parts.push(format!("seed {seed}"));
        }
        f.write_str(&parts.join(" "))
    }
}

fn fmt_chance(c: &Chance) -> String {
    if c.correlation > 0.0 {
        format!("{} {}", fmt_pct(c.probability), fmt_pct(c.correlation))
    } else {
        fmt_pct(c.probability)
    }
}
