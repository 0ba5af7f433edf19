//! Scenario files: the input as a scenario's text, checked as `run`
//! checks one (`transbench_scenario::parse`, profiles by name from
//! `netem-scripts/profiles/`), then its trials put in order. Expansion is
//! bounded by the scenario crate itself: it counts a matrix's trials
//! before it makes any cell, and refuses more than `MAX_TRIALS`.
//!
//! Holds: no panic; an error points at a line of the file; a scenario has
//! cells with distinct ids, at most `MAX_TRIALS` trials in all, and its
//! order holds each trial of each cell once, the same on every call.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;
use transbench_scenario::{parse, TrialPlan, MAX_TRIALS};

const FILE: &str = "fuzz.toml";

pub fn run(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    let lookup = |name: &str| profiles().get(name).cloned();
    let scenario = match parse(FILE, text, &lookup) {
        Ok(s) => s,
        Err(e) => {
            assert_eq!(e.file, FILE);
            assert!(e.line <= text.matches('\n').count() + 1, "{e}");
            assert!(!e.message.is_empty());
            return;
        }
    };
    assert!(!scenario.cells.is_empty() && scenario.trials >= 1 && !scenario.duration.is_zero());
    let ids: HashSet<&str> = scenario.cells.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), scenario.cells.len(), "cell ids are distinct");
    let total = scenario.cells.len() as u64 * u64::from(scenario.trials);
    assert!(total <= MAX_TRIALS, "{total} trials");
    let plan = scenario.trials();
    assert_eq!(plan.len() as u64, total);
    let distinct: HashSet<TrialPlan> = plan.iter().copied().collect();
    assert_eq!(distinct.len(), plan.len());
    assert!(plan
        .iter()
        .all(|t| t.cell < scenario.cells.len() && t.repetition < scenario.trials));
    assert_eq!(scenario.trials(), plan, "one seed, one order");
}

/// The shipped profiles, by name, read once.
fn profiles() -> &'static BTreeMap<String, String> {
    static PROFILES: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    PROFILES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../netem-scripts/profiles");
        let mut found = BTreeMap::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "netem") {
                if let (Some(name), Ok(text)) = (path.file_stem(), std::fs::read_to_string(&path)) {
                    found.insert(name.to_string_lossy().into_owned(), text);
                }
            }
        }
        found
    })
}
