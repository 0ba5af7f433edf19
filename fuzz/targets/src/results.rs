//! Results files: the input as a `results.json`, read as `report` and
//! `compare` read one (`transbench_reports::parse_results`, what
//! `read_results` does with a file's bytes), then each trial's histograms
//! decoded (see [`crate::hdr`]) and the summary table `run` prints made.
//!
//! Holds: no panic; results that load write out as JSON that loads as the
//! same results; every histogram that decodes holds what [`crate::hdr`]
//! asserts.

use std::path::Path;
use transbench_reports::cell::{cell_key, params_key, path_label};
use transbench_reports::{parse_results, summary_table};

pub fn run(data: &[u8]) {
    let path = Path::new("results.json");
    let Ok(results) = parse_results(path, data) else {
        return;
    };
    let json = serde_json::to_vec(&results).expect("results always serialize");
    let again = parse_results(path, &json).unwrap_or_else(|e| {
        panic!(
            "results write as {:?}, which does not load: {e}",
            String::from_utf8_lossy(&json)
        )
    });
    assert!(
        again == results,
        "results write as JSON that loads as the same results"
    );
    for t in &results.trials {
        for summary in [&t.lat, &t.send_lag] {
            if let Ok(h) = summary.histogram() {
                crate::hdr::check(&h);
            }
        }
        let _ = (cell_key(t), params_key(t), path_label(t.impairment.as_ref()));
        let _ = t.goodput_bps();
    }
    let _ = summary_table(&results);
}
