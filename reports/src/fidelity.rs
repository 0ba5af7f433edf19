//! linkemu held against the kernel's netem: the same profiles probed
//! through each (`transbench fidelity probe`, one trace file per profile
//! and backend), then compared feature by feature as distributions
//! (`transbench fidelity compare`). Pure: traces in, a table out.
//!
//! Rates (loss, duplicates, corruption, reordering) are compared by a
//! two-proportion z test; loss-burst lengths, reorder extents and delays
//! by a two-sample Kolmogorov-Smirnov test. Each side's clock adds noise
//! to what it delivers late (a QEMU guest's timers fire a varying fraction
//! of a millisecond late; the host's, microseconds): the set names a
//! constant-delay profile whose delays, less that constant, sample each
//! side's timing noise, and each side's delays get the other side's noise
//! added (seeded) before the test, so both carry both and only the
//! emulators' own difference remains. A constant delay has no shape to
//! test and is compared by its median, after removing each side's offset
//! (its median delay on the `baseline` profile). Holm's correction runs
//! over every tested row of the table, so a FAIL is a difference at
//! family-wise 1 %.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use linkemu::NetemSpec;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use transbench_analysis::seq::{self, Arrival};

use crate::stats;

pub const TRACE_SCHEMA: &str = "transbench-probe/1";
pub const TABLE_SCHEMA: &str = "transbench-fidelity/1";
/// Family-wise significance level of a table.
pub const ALPHA: f64 = 0.01;
/// How far the medians of a constant delay may be apart once each side's
/// offset is removed: about the spread of a TCG guest's timer wake-ups.
pub const DELAY_TOLERANCE_NS: f64 = 500_000.0;
/// How many datagrams reorder extents may differ by unremarked: a guest's
/// stalls bunch the probe's sends, and an overtaking datagram passes
/// however many were sent while it was held (1 ms of sending).
pub const EXTENT_TOLERANCE: f64 = 2.0;
/// Fewest events (bursts, reordered datagrams) a side needs for a
/// distribution test.
pub const MIN_EVENTS: usize = 30;
/// The profile without impairment whose delays give each backend's offset.
pub const BASELINE: &str = "baseline";

#[derive(Debug, Error)]
pub enum FidelityError {
    #[error("fidelity set: {0}")]
    Set(String),
}

/// One profile probed through one backend: every intact datagram that
/// arrived, and how many arrived corrupted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeTraceFile {
    pub schema: String,
    pub profile: String,
    /// The netem words as configured (limit included).
    pub netem: String,
    /// `netem` or `linkemu`.
    pub backend: String,
    /// `uname -r` where the probe ran.
    pub kernel: String,
    pub interval_ns: u64,
    /// How long after the last send arrivals still counted.
    pub wait_ns: u64,
    pub sent: u64,
    /// Datagrams delivered with their bytes changed (numbers untrusted).
    pub corrupted: u64,
    /// Intact datagrams that arrived marked Congestion Experienced (all
    /// leave ECN-capable).
    pub ce_marked: u64,
    /// (number, sent ns, received ns) of each intact datagram, in arrival
    /// order; duplicates appear once per copy.
    pub arrivals: Vec<[u64; 3]>,
}

/// The profiles to compare, from a TOML file (`bench/fidelity.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FidelitySet {
    /// Datagrams per profile, and microseconds between them.
    pub count: u64,
    pub interval_us: u64,
    /// The profile (a constant delay) whose delays sample each side's
    /// timing noise.
    pub timing: String,
    pub profile: Vec<FidelityProfile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FidelityProfile {
    pub name: String,
    /// tc-netem words (empty for no impairment).
    pub netem: String,
    pub count: Option<u64>,
    pub interval_us: Option<u64>,
    /// Why the kernel and linkemu differ in a feature, by feature name:
    /// shown beside that feature's row, and turns its FAIL into EXPLAINED.
    #[serde(default)]
    pub explain: BTreeMap<String, String>,
}

impl FidelityProfile {
    pub fn spec(&self) -> NetemSpec {
        self.spec_checked().expect("checked by FidelitySet::parse")
    }

    fn spec_checked(&self) -> Result<NetemSpec, linkemu::SpecError> {
        NetemSpec::parse(&self.netem)
    }
}

/// A delay without jitter, and nothing else that moves packets in time.
fn is_constant_delay(spec: &NetemSpec) -> bool {
    spec.delay.is_some_and(|d| d.jitter_ns == 0 && d.latency_ns > 0)
        && spec.rate.is_none()
        && spec.slot.is_none()
        && spec.reorder.is_none()
}

/// What a side's clock adds: its offset on the baseline, and samples of
/// its noise on the timing profile.
#[derive(Debug, Clone, Default)]
struct Timing {
    offset: f64,
    noise: Vec<f64>,
}

/// `delays` with a seeded draw of `noise` added to each (unchanged
/// without noise).
fn with_noise(delays: &[f64], noise: &[f64], seed: u64) -> Vec<f64> {
    if noise.is_empty() {
        return delays.to_vec();
    }
    let mut rng = linkemu::rng::Prng::new(seed);
    delays
        .iter()
        .map(|d| d + noise[rng.below(noise.len() as u32) as usize])
        .collect()
}

impl FidelitySet {
    pub fn parse(text: &str) -> Result<Self, FidelityError> {
        let set: FidelitySet = toml::from_str(text).map_err(|e| FidelityError::Set(e.to_string()))?;
        let bad = |m: String| Err(FidelityError::Set(m));
        if set.count == 0 || set.interval_us == 0 {
            return bad("count and interval_us must be above 0".into());
        }
        if set.profile.first().map(|p| (p.name.as_str(), p.netem.trim())) != Some((BASELINE, "")) {
            return bad(format!(
                "the first profile must be {BASELINE:?} with netem = \"\": it gives each backend's delay offset"
            ));
        }
        match set.profile.iter().find(|p| p.name == set.timing) {
            None => return bad(format!("timing = {:?} names no profile of the set", set.timing)),
            Some(p) => {
                let spec = p
                    .spec_checked()
                    .map_err(|e| FidelityError::Set(format!("profile {:?}: {e}", p.name)))?;
                if !is_constant_delay(&spec) {
                    return bad(format!(
                        "timing = {:?}: that profile must be a constant delay alone (e.g. \"delay 20ms\")",
                        set.timing
                    ));
                }
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for p in &set.profile {
            if p.name.is_empty() || !p.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return bad(format!(
                    "profile name {:?}: use letters, digits and '-' (it names files)",
                    p.name
                ));
            }
            if !names.insert(p.name.as_str()) {
                return bad(format!("profile {:?} appears twice", p.name));
            }
            if let Err(e) = NetemSpec::parse(&p.netem) {
                return bad(format!("profile {:?}: {e}", p.name));
            }
            if p.count == Some(0) || p.interval_us == Some(0) {
                return bad(format!(
                    "profile {:?}: count and interval_us must be above 0",
                    p.name
                ));
            }
            if let Some(k) = p.explain.keys().find(|k| Feature::from_name(k).is_none()) {
                return bad(format!(
                    "profile {:?}: explain.{k} is not a feature (one of: {})",
                    p.name,
                    Feature::ALL.map(Feature::name).join(", ")
                ));
            }
        }
        Ok(set)
    }

    pub fn count(&self, p: &FidelityProfile) -> u64 {
        p.count.unwrap_or(self.count)
    }

    pub fn interval_us(&self, p: &FidelityProfile) -> u64 {
        p.interval_us.unwrap_or(self.interval_us)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feature {
    Loss,
    LossBursts,
    Duplicate,
    Corrupt,
    Reorder,
    ReorderExtent,
    Delay,
    EcnMarked,
    /// With a seed: each datagram's fate (lost, delivered, how many
    /// copies), datagram by datagram.
    Decisions,
}

impl Feature {
    pub const ALL: [Feature; 9] = [
        Feature::Loss,
        Feature::LossBursts,
        Feature::Duplicate,
        Feature::Corrupt,
        Feature::Reorder,
        Feature::ReorderExtent,
        Feature::Delay,
        Feature::EcnMarked,
        Feature::Decisions,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Feature::Loss => "loss",
            Feature::LossBursts => "loss-bursts",
            Feature::Duplicate => "duplicate",
            Feature::Corrupt => "corrupt",
            Feature::Reorder => "reorder",
            Feature::ReorderExtent => "reorder-extent",
            Feature::Delay => "delay",
            Feature::EcnMarked => "ecn-marked",
            Feature::Decisions => "decisions",
        }
    }

    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FidelityVerdict {
    Pass,
    Fail,
    /// A FAIL whose cause the set explains.
    Explained,
    /// Too few events on a side to test.
    Untested,
}

impl std::fmt::Display for FidelityVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FidelityVerdict::Pass => "PASS",
            FidelityVerdict::Fail => "FAIL",
            FidelityVerdict::Explained => "EXPLAINED",
            FidelityVerdict::Untested => "UNTESTED",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FidelityRow {
    pub profile: String,
    pub netem: String,
    pub feature: Feature,
    /// The test and its statistic, e.g. "KS D=0.021".
    pub test: String,
    /// What the kernel's netem delivered, and what linkemu delivered.
    pub kernel: String,
    pub linkemu: String,
    pub p: Option<f64>,
    /// p after Holm's correction over the table.
    pub p_holm: Option<f64>,
    pub verdict: FidelityVerdict,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FidelityTable {
    pub schema: String,
    /// Kernel releases the two sides ran on.
    pub netem_kernel: String,
    pub linkemu_kernel: String,
    pub rows: Vec<FidelityRow>,
    /// Profiles of the set that lack a trace on a side.
    pub missing: Vec<String>,
}

impl FidelityTable {
    /// FAIL rows: differences nothing explains.
    pub fn failures(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.verdict == FidelityVerdict::Fail)
            .count()
    }
}

/// What a trace shows, per feature.
#[derive(Debug, Clone, PartialEq, Default)]
struct Observed {
    sent: u64,
    /// Never delivered (neither intact nor corrupted).
    lost: u64,
    /// How much burstier than independent draws each rate varies
    /// ([`stats::variance_inflation`]).
    lost_inflation: f64,
    /// Distinct intact datagrams.
    received: u64,
    /// Extra intact copies.
    duplicates: u64,
    duplicate_inflation: f64,
    corrupted: u64,
    ce_marked: u64,
    /// Arrived ahead of a lower-numbered datagram.
    early: u64,
    early_inflation: f64,
    bursts: Vec<f64>,
    extents: Vec<f64>,
    /// One-way delay of each first copy, ns, sorted.
    delays: Vec<f64>,
    /// Copies of each datagram that arrived intact, by number.
    copies: Vec<u32>,
    /// One-way delay of each datagram's first copy, by number.
    delay_of: Vec<Option<f64>>,
}

/// Batches for the variance inflation of rates: 200 datagrams each in a
/// probe of 5000, longer than netem's bursts.
const BATCHES: usize = 25;

fn observe(t: &ProbeTraceFile) -> Observed {
    let arrivals: Vec<Arrival> = t
        .arrivals
        .iter()
        .map(|&[seq, sent_ns, received_ns]| Arrival {
            seq,
            sent_ns,
            received_ns,
        })
        .collect();
    let m = seq::analyse(t.sent, t.wait_ns, &arrivals);
    // Per number: copies that arrived in time; first copies in arrival order.
    let mut copies = vec![0u32; t.sent as usize];
    let mut delay_of = vec![None; t.sent as usize];
    let mut order = Vec::new();
    for a in arrivals
        .iter()
        .filter(|a| a.seq < t.sent && a.received_ns.saturating_sub(a.sent_ns) <= t.wait_ns)
    {
        copies[a.seq as usize] += 1;
        if copies[a.seq as usize] == 1 {
            delay_of[a.seq as usize] = Some(a.received_ns.saturating_sub(a.sent_ns) as f64);
            order.push(a.seq);
        }
    }
    let mut delays: Vec<f64> = delay_of.iter().flatten().copied().collect();
    delays.sort_by(f64::total_cmp);
    let early: Vec<f64> = seq::early_flags(&order).iter().map(|&e| e as u8 as f64).collect();
    let inflation = |series: Vec<f64>| stats::variance_inflation(&series, BATCHES);
    let lost_series = copies.iter().map(|&c| (c == 0) as u8 as f64).collect();
    let duplicate_series = copies.iter().map(|&c| c.saturating_sub(1) as f64).collect();
    let missing = t.sent - m.received;
    Observed {
        sent: t.sent,
        lost: missing.saturating_sub(t.corrupted),
        lost_inflation: inflation(lost_series),
        received: m.received,
        duplicates: (m.dup_ratio * t.sent as f64).round() as u64,
        duplicate_inflation: inflation(duplicate_series),
        corrupted: t.corrupted,
        ce_marked: t.ce_marked,
        early: early.iter().sum::<f64>() as u64,
        early_inflation: inflation(early),
        bursts: m
            .loss_bursts
            .iter()
            .flat_map(|(&len, &n)| std::iter::repeat_n(len as f64, n as usize))
            .collect(),
        extents: m.reorder_extents.iter().map(|&e| e as f64).collect(),
        delays,
        copies,
        delay_of,
    }
}

/// The `q` quantile of sorted values (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn share(x: u64, n: u64) -> String {
    let pct = if n == 0 { 0.0 } else { 100.0 * x as f64 / n as f64 };
    format!("{pct:.2} % ({x}/{n})")
}

fn counts(v: &[f64]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let mean = s.iter().sum::<f64>() / s.len() as f64;
    format!(
        "mean {mean:.2}, p90 {}, max {} (n {})",
        quantile(&s, 0.9),
        s[s.len() - 1],
        s.len()
    )
}

fn delays_ms(sorted: &[f64]) -> String {
    let ms = |q| quantile(sorted, q) / 1e6;
    format!("p10 {:.2} / p50 {:.2} / p90 {:.2} ms", ms(0.1), ms(0.5), ms(0.9))
}

/// A row before Holm: its test's p, or for a median check its pass.
struct Pending {
    row: FidelityRow,
    passed_without_p: Option<bool>,
}

fn rows_for(
    p: &FidelityProfile,
    kernel: &Observed,
    emu: &Observed,
    timing: (&Timing, &Timing),
) -> Vec<Pending> {
    let spec = p.spec();
    let jitter = spec.delay.is_some_and(|d| d.jitter_ns > 0);
    let reorders = spec.reorder.is_some() || (jitter && spec.rate.is_none());
    let has_delay = spec.delay.is_some() || spec.rate.is_some() || spec.slot.is_some();
    let mut out = Vec::new();
    let mut push =
        |feature: Feature, test: String, k: String, l: String, p_value: Option<f64>, pass: Option<bool>| {
            out.push(Pending {
                row: FidelityRow {
                    profile: p.name.clone(),
                    netem: p.netem.clone(),
                    feature,
                    test,
                    kernel: k,
                    linkemu: l,
                    p: p_value,
                    p_holm: None,
                    verdict: FidelityVerdict::Untested,
                    note: p.explain.get(feature.name()).cloned(),
                },
                passed_without_p: pass,
            })
        };
    // (count, of, variance inflation) a side.
    let mut proportion = |feature: Feature, k: (u64, u64, f64), l: (u64, u64, f64)| {
        // None on either side: nothing to test, and no weight in Holm's family.
        if k.0 == 0 && l.0 == 0 {
            return push(
                feature,
                "none on either side".into(),
                share(k.0, k.1),
                share(l.0, l.1),
                None,
                Some(true),
            );
        }
        let inflation = k.2.max(l.2);
        push(
            feature,
            if inflation >= 1.5 {
                format!("two-proportion z, variance ×{inflation:.1} (batch means)")
            } else {
                "two-proportion z".into()
            },
            share(k.0, k.1),
            share(l.0, l.1),
            Some(stats::two_proportion_p_inflated(k, l)),
            None,
        )
    };
    proportion(
        Feature::Loss,
        (kernel.lost, kernel.sent, kernel.lost_inflation),
        (emu.lost, emu.sent, emu.lost_inflation),
    );
    if spec.duplicate.is_some() {
        proportion(
            Feature::Duplicate,
            (kernel.duplicates, kernel.sent, kernel.duplicate_inflation),
            (emu.duplicates, emu.sent, emu.duplicate_inflation),
        );
    }
    if spec.corrupt.is_some() {
        proportion(
            Feature::Corrupt,
            (kernel.corrupted, kernel.sent, 1.0),
            (emu.corrupted, emu.sent, 1.0),
        );
    }
    if spec.ecn {
        proportion(
            Feature::EcnMarked,
            (kernel.ce_marked, kernel.sent, 1.0),
            (emu.ce_marked, emu.sent, 1.0),
        );
    }
    if reorders {
        proportion(
            Feature::Reorder,
            (kernel.early, kernel.received, kernel.early_inflation),
            (emu.early, emu.received, emu.early_inflation),
        );
    }
    // Only where a side has enough events: too few on one side only is a
    // difference the rate rows test; too few on both, nothing to compare.
    let mut distribution =
        |feature: Feature, k: &[f64], l: &[f64], tolerance: f64, describe: &dyn Fn(&[f64]) -> String| {
            if k.len() < MIN_EVENTS && l.len() < MIN_EVENTS {
                return;
            }
            let enough = k.len() >= MIN_EVENTS && l.len() >= MIN_EVENTS;
            let (d, p_value) = stats::ks_two_sample(k, l, tolerance);
            push(
                feature,
                if !enough {
                    format!("KS needs {MIN_EVENTS} a side")
                } else if tolerance > 0.0 {
                    format!("KS D={d:.3}, ±{tolerance}")
                } else {
                    format!("KS D={d:.3}")
                },
                describe(k),
                describe(l),
                enough.then_some(p_value),
                None,
            )
        };
    // Probes are ECN-capable: with ecn, loss marks them and drops none.
    if (spec.loss.is_some() && !spec.ecn) || spec.rate.is_some() {
        distribution(Feature::LossBursts, &kernel.bursts, &emu.bursts, 0.0, &counts);
    }
    if reorders {
        distribution(
            Feature::ReorderExtent,
            &kernel.extents,
            &emu.extents,
            EXTENT_TOLERANCE,
            &counts,
        );
    }
    if has_delay {
        let shifted = |o: &Observed, by: f64| -> Vec<f64> { o.delays.iter().map(|d| d - by).collect() };
        let (k, l) = (shifted(kernel, timing.0.offset), shifted(emu, timing.1.offset));
        if is_constant_delay(&spec) {
            let gap = (quantile(&k, 0.5) - quantile(&l, 0.5)).abs();
            push(
                Feature::Delay,
                format!(
                    "|Δp50| {:.3} ms, at most {} ms",
                    gap / 1e6,
                    DELAY_TOLERANCE_NS / 1e6
                ),
                delays_ms(&k),
                delays_ms(&l),
                None,
                Some(gap <= DELAY_TOLERANCE_NS),
            );
        } else {
            let (kn, ln) = (
                with_noise(&kernel.delays, &timing.1.noise, 1),
                with_noise(&emu.delays, &timing.0.noise, 2),
            );
            let (d, p_value) = stats::ks_two_sample(&kn, &ln, DELAY_TOLERANCE_NS);
            push(
                Feature::Delay,
                format!("KS D={d:.3}, noise swapped, ±{} ms", DELAY_TOLERANCE_NS / 1e6),
                delays_ms(&k),
                delays_ms(&l),
                Some(p_value),
                None,
            );
        }
    }
    if spec.seed.is_some() {
        // The same seed should make the same decisions, datagram by datagram
        // (where the kernel's netem takes a seed; linkemu draws as it does):
        // the same fates, and with a delay the same delay for each datagram
        // up to the clocks' noise (the median gap; a draw out of step would
        // put it near the jitter).
        let same = kernel
            .copies
            .iter()
            .zip(&emu.copies)
            .filter(|(a, b)| a == b)
            .count();
        let n = kernel.copies.len().max(emu.copies.len());
        let fates = |o: &Observed| {
            format!(
                "{} lost, {} copied",
                o.copies.iter().filter(|&&c| c == 0).count(),
                o.copies.iter().filter(|&&c| c > 1).count()
            )
        };
        let mut gaps: Vec<f64> = kernel
            .delay_of
            .iter()
            .zip(&emu.delay_of)
            .filter_map(|(&k, &l)| Some(((k? - timing.0.offset) - (l? - timing.1.offset)).abs()))
            .collect();
        gaps.sort_by(f64::total_cmp);
        let delays_agree = !has_delay || quantile(&gaps, 0.5) <= DELAY_TOLERANCE_NS;
        let mut test = format!("same fate: {same} of {n} datagrams");
        if has_delay && !gaps.is_empty() {
            let within = gaps.iter().filter(|&&g| g <= DELAY_TOLERANCE_NS).count();
            test += &format!(
                "; delay per datagram: median gap {:.2} ms, {within} of {} within {} ms",
                quantile(&gaps, 0.5) / 1e6,
                gaps.len(),
                DELAY_TOLERANCE_NS / 1e6
            );
        }
        push(
            Feature::Decisions,
            test,
            fates(kernel),
            fates(emu),
            None,
            Some(same == n && delays_agree),
        );
    }
    out
}

/// Compares the kernel's traces with linkemu's, profile by profile in the
/// set's order. A profile lacking either trace is listed as missing.
pub fn compare(set: &FidelitySet, kernel: &[ProbeTraceFile], linkemu: &[ProbeTraceFile]) -> FidelityTable {
    let find = |traces: &[ProbeTraceFile], name: &str| traces.iter().find(|t| t.profile == name).map(observe);
    let latency = set
        .profile
        .iter()
        .find(|p| p.name == set.timing)
        .and_then(|p| p.spec().delay)
        .map_or(0.0, |d| d.latency_ns as f64);
    let timing_of = |traces: &[ProbeTraceFile]| Timing {
        offset: find(traces, BASELINE).map_or(0.0, |o| quantile(&o.delays, 0.5).max(0.0)),
        noise: find(traces, &set.timing)
            .map_or_else(Vec::new, |o| o.delays.iter().map(|d| d - latency).collect()),
    };
    let (kt, lt) = (timing_of(kernel), timing_of(linkemu));
    let mut pending = Vec::new();
    let mut missing = Vec::new();
    for p in &set.profile {
        // A trace of other words than the set's is stale, as good as none.
        let words = p.spec().to_string();
        let stale = [kernel, linkemu]
            .iter()
            .any(|side| side.iter().any(|t| t.profile == p.name && t.netem != words));
        match (find(kernel, &p.name), find(linkemu, &p.name)) {
            (Some(k), Some(l)) if !stale => pending.extend(rows_for(p, &k, &l, (&kt, &lt))),
            _ if stale => missing.push(format!("{} (a trace of other netem words: probe again)", p.name)),
            _ => missing.push(p.name.clone()),
        }
    }
    let tested: Vec<usize> = (0..pending.len())
        .filter(|&i| pending[i].row.p.is_some())
        .collect();
    let adjusted = stats::holm(
        &tested
            .iter()
            .map(|&i| pending[i].row.p.unwrap_or(1.0))
            .collect::<Vec<_>>(),
    );
    for (&i, &adj) in tested.iter().zip(&adjusted) {
        pending[i].row.p_holm = Some(adj);
    }
    let rows = pending
        .into_iter()
        .map(|mut pd| {
            let passed = match (pd.row.p_holm, pd.passed_without_p) {
                (Some(adj), _) => Some(adj >= ALPHA),
                (None, pass) => pass,
            };
            pd.row.verdict = match passed {
                None => FidelityVerdict::Untested,
                Some(true) => FidelityVerdict::Pass,
                Some(false) if pd.row.note.is_some() => FidelityVerdict::Explained,
                Some(false) => FidelityVerdict::Fail,
            };
            pd.row
        })
        .collect();
    let kernel_of = |traces: &[ProbeTraceFile]| traces.first().map(|t| t.kernel.clone()).unwrap_or_default();
    FidelityTable {
        schema: TABLE_SCHEMA.into(),
        netem_kernel: kernel_of(kernel),
        linkemu_kernel: kernel_of(linkemu),
        rows,
        missing,
    }
}

fn fmt_p(p: Option<f64>) -> String {
    match p {
        None => "—".into(),
        Some(p) if p < 1e-4 => format!("{p:.1e}"),
        Some(p) => format!("{p:.4}"),
    }
}

/// How a table was made, for its header.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// The command that regenerates it.
    pub command: String,
    /// Where the netem side ran, e.g. "in a QEMU guest".
    pub netem_where: String,
    /// When, as a date.
    pub date: String,
}

/// The table in Markdown, with its method.
pub fn markdown(t: &FidelityTable, set: &FidelitySet, made: &Provenance) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# linkemu against the kernel's netem\n");
    let _ = writeln!(
        s,
        "Generated by `{}` on {}; do not edit by hand. Each profile's probe: {} UDP datagrams of 64 bytes, \
         one every {} µs unless the profile says otherwise, one way through tc netem (kernel {}, {}) and \
         through linkemu (kernel {}).\n",
        made.command,
        made.date,
        set.count,
        set.interval_us,
        t.netem_kernel,
        made.netem_where,
        t.linkemu_kernel
    );
    let _ = writeln!(
        s,
        "Features: loss (never delivered), duplicate (extra copies), corrupt (delivered with changed bytes), \
         ecn-marked (CE), each over datagrams sent; reorder: the share of datagrams delivered that arrived ahead \
         of a lower-numbered one (what netem's reorder sets); loss-bursts: lengths of runs of lost numbers \
         (RFC 3357); reorder-extent: RFC 4737's extent of each datagram that arrived late (how many datagrams overtook it, \
         which depends on how evenly the probe was sent: compared ignoring shifts of up to {extent} datagrams, \
         1 ms of sending, which a guest's stalls bunch); delay: one-way delay \
         of first copies. Rates: two-proportion z test, its variance inflated for bursts by each side's batch \
         means (25 batches); a rate that is zero on both sides is not tested. Burst lengths, extents and delay \
         shapes: two-sample Kolmogorov-Smirnov, where a side has at least {MIN_EVENTS} events (UNTESTED when \
         only one has; no row when neither has). Each side's clock adds its own noise to delays (a QEMU guest's \
         timers fire 0.1 to 0.3 ms late, and at times milliseconds): before the delay test each side's delays \
         get a seeded draw of the other side's noise, sampled by the `{timing}` profile (its delays less its \
         constant), so both carry both (\"noise swapped\"), and the test ignores shifts of up to {margin} ms: \
         D is the gap between the CDFs left once either may move that far, read against Kolmogorov's \
         distribution, which is conservative for it (it tests for a difference beyond {margin} ms). A \
         constant delay is compared by its median (at most {margin} ms apart) after removing each side's \
         median on the `{BASELINE}` profile, as are the delays shown (where reordering makes delays two-humped, \
         a median may sit in either hump). p is each test's own; p (Holm) is \
         adjusted over the tested rows, and FAIL means a difference at family-wise {alpha} %. A PASS means no \
         difference was seen, not none: at 5 % loss and 5000 datagrams a side, a difference of 2 points is \
         caught 4 times in 5 after Holm over some 50 rows, smaller ones less often. EXPLAINED is a difference whose cause \
         the note gives.{decisions}\n",
        timing = set.timing,
        margin = DELAY_TOLERANCE_NS / 1e6,
        extent = EXTENT_TOLERANCE,
        alpha = ALPHA * 100.0,
        decisions = if t.rows.iter().any(|r| r.feature == Feature::Decisions) {
            format!(
                " decisions (profiles with a seed): whether each datagram met the same fate on both sides \
                 (lost, delivered, copied), and with a delay whether each datagram's delays, after the offsets, \
                 are at most {} ms apart at the median; PASS needs every fate the same and that median.",
                DELAY_TOLERANCE_NS / 1e6
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "| profile | netem | feature | test | kernel netem | linkemu | p | p (Holm) | verdict | note |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    for r in &t.rows {
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.profile,
            if r.netem.trim().is_empty() {
                "(none)"
            } else {
                r.netem.trim()
            },
            r.feature.name(),
            r.test.replace('|', "\\|"),
            r.kernel,
            r.linkemu,
            fmt_p(r.p),
            fmt_p(r.p_holm),
            r.verdict,
            r.note.as_deref().unwrap_or("").replace('|', "\\|")
        );
    }
    if !t.missing.is_empty() {
        let _ = writeln!(s, "\nNot compared: {}.", t.missing.join(", "));
    }
    let _ = writeln!(
        s,
        "\n{} rows: {} PASS, {} EXPLAINED, {} FAIL, {} UNTESTED.",
        t.rows.len(),
        t.rows
            .iter()
            .filter(|r| r.verdict == FidelityVerdict::Pass)
            .count(),
        t.rows
            .iter()
            .filter(|r| r.verdict == FidelityVerdict::Explained)
            .count(),
        t.failures(),
        t.rows
            .iter()
            .filter(|r| r.verdict == FidelityVerdict::Untested)
            .count(),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkemu::Pipeline;

    const SET: &str = r#"
count = 4000
interval_us = 500
timing = "delay"

[[profile]]
name = "baseline"
netem = ""

[[profile]]
name = "delay"
netem = "delay 5ms"

[[profile]]
name = "loss"
netem = "loss 5%"

[[profile]]
name = "jitter"
netem = "delay 10ms 4ms duplicate 3% corrupt 2%"
"#;

    /// How a side's clock delays delivery: a fixed offset, and for
    /// packets netem held back, up to `late_ns` more (uniform).
    #[derive(Clone, Copy)]
    struct Clock {
        offset_ns: u64,
        late_ns: u64,
    }

    /// A probe of profile `p` through linkemu's pipeline on a fake clock:
    /// what a trace file would hold. The pipeline runs `netem` (a stand-in
    /// for a kernel that does something else with the profile's words).
    fn simulate(
        set: &FidelitySet,
        p: &FidelityProfile,
        netem: &str,
        seed: u64,
        clock: Clock,
    ) -> ProbeTraceFile {
        let mut pipe = Pipeline::new(&NetemSpec::parse(netem).unwrap(), seed);
        let mut noise = linkemu::rng::Prng::new(seed ^ 0xabc);
        let interval = set.interval_us * 1000;
        let mut arrivals = Vec::new();
        let mut corrupted = 0;
        let mut take = |pipe: &mut Pipeline, now: u64| {
            while let Some(pkt) = pipe.dequeue(now) {
                let seq = u64::from_be_bytes(pkt[..8].try_into().unwrap());
                let sent = u64::from_be_bytes(pkt[8..16].try_into().unwrap());
                let held = now > sent;
                let late = if held && clock.late_ns > 0 {
                    noise.below(clock.late_ns as u32) as u64
                } else {
                    0
                };
                if pkt[16..] != [0xa5; 16] || sent != seq.wrapping_mul(interval) {
                    corrupted += 1;
                } else {
                    arrivals.push([seq, sent, now + clock.offset_ns + late]);
                }
            }
        };
        for seq in 0..set.count {
            let now = seq * interval;
            take(&mut pipe, now);
            let mut pkt = seq.to_be_bytes().to_vec();
            pkt.extend(now.to_be_bytes());
            pkt.extend([0xa5; 16]);
            pipe.enqueue(pkt, now);
        }
        let end = set.count * interval;
        for step in 0..2000 {
            take(&mut pipe, end + step * 50_000);
        }
        ProbeTraceFile {
            schema: TRACE_SCHEMA.into(),
            profile: p.name.clone(),
            netem: p.spec().to_string(),
            backend: "linkemu".into(),
            kernel: "test".into(),
            interval_ns: interval,
            wait_ns: 100_000_000,
            sent: set.count,
            corrupted,
            ce_marked: 0,
            arrivals,
        }
    }

    const HOST: Clock = Clock {
        offset_ns: 30_000,
        late_ns: 0,
    };
    /// A guest's: a steady 200 us, and timers up to 600 us late.
    const GUEST: Clock = Clock {
        offset_ns: 200_000,
        late_ns: 600_000,
    };

    /// Every profile of the set; `instead` runs other words for one.
    fn traces(
        set: &FidelitySet,
        seed: u64,
        clock: Clock,
        instead: Option<(&str, &str)>,
    ) -> Vec<ProbeTraceFile> {
        set.profile
            .iter()
            .map(|p| {
                let netem = match instead {
                    Some((name, words)) if name == p.name => words,
                    _ => &p.netem,
                };
                simulate(set, p, netem, seed, clock)
            })
            .collect()
    }

    fn row(t: &FidelityTable, profile: &str, feature: Feature) -> FidelityRow {
        t.rows
            .iter()
            .find(|r| r.profile == profile && r.feature == feature)
            .unwrap_or_else(|| panic!("no {profile} {feature:?} in {t:?}"))
            .clone()
    }

    #[test]
    fn one_model_under_two_clocks_passes() {
        let set = FidelitySet::parse(SET).unwrap();
        let t = compare(&set, &traces(&set, 1, GUEST, None), &traces(&set, 2, HOST, None));
        let features: Vec<_> = t.rows.iter().map(|r| (r.profile.as_str(), r.feature)).collect();
        assert_eq!(
            features,
            [
                ("baseline", Feature::Loss),
                ("delay", Feature::Loss),
                ("delay", Feature::Delay),
                ("loss", Feature::Loss),
                ("loss", Feature::LossBursts),
                ("jitter", Feature::Loss),
                ("jitter", Feature::Duplicate),
                ("jitter", Feature::Corrupt),
                ("jitter", Feature::Reorder),
                ("jitter", Feature::ReorderExtent),
                ("jitter", Feature::Delay),
            ]
        );
        for r in &t.rows {
            assert_eq!(r.verdict, FidelityVerdict::Pass, "{r:?}");
        }
        assert_eq!(t.failures(), 0);
        assert!(t.missing.is_empty());
        let md = markdown(&t, &set, &Provenance::default());
        assert_eq!(md.matches("| PASS |").count(), 11, "{md}");
    }

    #[test]
    fn without_swapping_noise_the_guest_clock_alone_would_fail_the_delay() {
        let set = FidelitySet::parse(SET).unwrap();
        let (k, l) = (traces(&set, 1, GUEST, None), traces(&set, 2, HOST, None));
        let delays = |t: &ProbeTraceFile| observe(t).delays;
        let (d, p) = stats::ks_two_sample(&delays(&k[3]), &delays(&l[3]), 0.0);
        assert!(p < 1e-6, "D {d} p {p}: the clocks should differ visibly");
        assert_eq!(
            row(&compare(&set, &k, &l), "jitter", Feature::Delay).verdict,
            FidelityVerdict::Pass
        );
    }

    #[test]
    fn a_wider_jitter_fails_despite_the_tolerance() {
        let set = FidelitySet::parse(SET).unwrap();
        let wider = "delay 10ms 5ms duplicate 3% corrupt 2%";
        let kernel = traces(&set, 1, GUEST, Some(("jitter", wider)));
        let delay = row(
            &compare(&set, &kernel, &traces(&set, 2, HOST, None)),
            "jitter",
            Feature::Delay,
        );
        assert_eq!(delay.verdict, FidelityVerdict::Fail, "{delay:?}");
    }

    #[test]
    fn another_loss_rate_fails_unless_explained() {
        let mut set = FidelitySet::parse(SET).unwrap();
        let (k, l) = (
            traces(&set, 1, GUEST, Some(("loss", "loss 8%"))),
            traces(&set, 2, HOST, None),
        );
        let loss = row(&compare(&set, &k, &l), "loss", Feature::Loss);
        assert_eq!(loss.verdict, FidelityVerdict::Fail, "{loss:?}");
        assert!(loss.p_holm.unwrap() < ALPHA);
        assert_eq!(compare(&set, &k, &l).failures(), 1);
        set.profile[2]
            .explain
            .insert("loss".into(), "the kernel loses more".into());
        let t = compare(&set, &k, &l);
        assert_eq!(t.failures(), 0);
        assert!(markdown(&t, &set, &Provenance::default()).contains("| EXPLAINED | the kernel loses more |"));
    }

    #[test]
    fn a_missing_trace_is_listed_and_a_constant_delay_compared_by_median() {
        let set = FidelitySet::parse(SET).unwrap();
        let kernel = traces(&set, 1, GUEST, None);
        let emu = traces(&set, 2, HOST, None);
        let t = compare(&set, &kernel[..3], &emu);
        assert_eq!(t.missing, ["jitter"]);
        let delay = row(&t, "delay", Feature::Delay);
        assert_eq!(delay.verdict, FidelityVerdict::Pass, "{delay:?}");
        // 1 ms more on the kernel side, beyond the baseline's offset.
        let mut late = kernel.clone();
        for a in &mut late[1].arrivals {
            a[2] += 1_000_000;
        }
        let delay = row(&compare(&set, &late, &emu), "delay", Feature::Delay);
        assert_eq!(delay.verdict, FidelityVerdict::Fail, "{delay:?}");
    }

    /// The decisions row of a seeded profile against linkemu with the same
    /// words, and against a kernel run of `other` words.
    fn seeded_decisions(
        words: &str,
        other: &str,
    ) -> (FidelityRow, FidelityRow, FidelitySet, Vec<ProbeTraceFile>) {
        let text = format!("{SET}\n[[profile]]\nname = \"seeded\"\nnetem = \"{words}\"\n");
        let set = FidelitySet::parse(&text).unwrap();
        let emu = traces(&set, 2, HOST, None);
        // The seed in the words wins over each side's own.
        let same = row(
            &compare(&set, &traces(&set, 1, GUEST, None), &emu),
            "seeded",
            Feature::Decisions,
        );
        let other = traces(&set, 1, GUEST, Some(("seeded", other)));
        let differs = row(&compare(&set, &other, &emu), "seeded", Feature::Decisions);
        assert_eq!(same.verdict, FidelityVerdict::Pass, "{same:?}");
        assert_eq!(differs.verdict, FidelityVerdict::Fail, "{differs:?}");
        (same, differs, set, other)
    }

    #[test]
    fn a_seed_makes_the_same_decisions_or_fails() {
        let (same, _, set, other) = seeded_decisions("loss 10% seed 7", "loss 10% seed 8");
        assert_eq!(same.test, "same fate: 4000 of 4000 datagrams");
        // The rates still agree: only the decisions tell the seeds apart.
        let emu = traces(&set, 2, HOST, None);
        assert_eq!(
            row(&compare(&set, &other, &emu), "seeded", Feature::Loss).verdict,
            FidelityVerdict::Pass
        );
    }

    #[test]
    fn a_seed_makes_the_same_delays_too_or_fails() {
        // Nothing lost, so every fate agrees whatever the seed: the delays,
        // datagram by datagram, are what tell draws out of step.
        let (_, differs, _, _) = seeded_decisions("delay 10ms 4ms seed 7", "delay 10ms 4ms seed 8");
        assert!(differs.test.starts_with("same fate: 4000 of 4000"), "{differs:?}");
    }

    #[test]
    fn a_trace_of_other_words_is_stale() {
        let set = FidelitySet::parse(SET).unwrap();
        let mut kernel = traces(&set, 1, GUEST, None);
        kernel[2].netem = "limit 1000 loss 6%".into();
        let t = compare(&set, &kernel, &traces(&set, 2, HOST, None));
        assert_eq!(t.missing, ["loss (a trace of other netem words: probe again)"]);
        assert!(t.rows.iter().all(|r| r.profile != "loss"));
    }

    #[test]
    fn sets_are_checked() {
        let err = |text: &str| FidelitySet::parse(text).unwrap_err().to_string();
        assert!(err(&SET.replace("name = \"baseline\"", "name = \"base\"")).contains("first profile"));
        assert!(err(&SET.replace("loss 5%", "loss 500%")).contains("profile \"loss\""));
        assert!(err(&SET.replace("name = \"jitter\"", "name = \"loss\"")).contains("twice"));
        assert!(err(&SET.replace("name = \"jitter\"", "name = \"a b\"")).contains("letters"));
        let explained = format!("{SET}explain.lost = \"x\"\n");
        assert!(err(&explained).contains("explain.lost is not a feature"));
        assert!(err(&SET.replace("count = 4000", "count = 0")).contains("above 0"));
        assert!(err(&SET.replace("timing = \"delay\"", "timing = \"nope\"")).contains("names no profile"));
        assert!(err(&SET.replace("timing = \"delay\"", "timing = \"jitter\"")).contains("constant delay"));
    }
}
