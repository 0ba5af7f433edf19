//! Properties of Holm's correction (`stats::holm`) over arbitrary families
//! of p-values: bounds, monotonicity, and the hypotheses it rejects against
//! the step-down procedure computed naively.

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use transbench_reports::stats::{holm, ALPHA};

/// p-values and levels on a grid of 2^-20: `alpha / k` then never rounds
/// onto a p-value, so the naive procedure below divides as the textbook
/// does without floating-point ties deciding anything.
const GRID: f64 = (1u64 << 20) as f64;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        rng_seed: RngSeed::Fixed(0x0068_6f6c_6d70_726f),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A family of p-values: exact 0 and 1, small ones, repeats (ties).
fn family() -> impl Strategy<Value = Vec<f64>> {
    let grid = 1u64 << 20;
    let p = prop_oneof![
        1 => Just(0),
        1 => Just(grid),
        3 => 0..=grid / 10,
        3 => 0..=grid,
        2 => (1u64..=8).prop_map(move |k| k * grid / 64),
    ]
    .prop_map(|k| k as f64 / GRID);
    proptest::collection::vec(p, 1..=40)
}

/// Holm's step-down procedure as written: order the p-values, reject the
/// k-th smallest (k from 1) while it is below alpha / (m - k + 1), stop at
/// the first that is not. Strict, as `stats` reads "significant".
fn naive_rejections(p: &[f64], alpha: f64) -> Vec<bool> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut rejected = vec![false; m];
    for (k, &i) in order.iter().enumerate() {
        if p[i] < alpha / (m - k) as f64 {
            rejected[i] = true;
        } else {
            break;
        }
    }
    rejected
}

proptest! {
    #![proptest_config(config())]

    // Adjusted p-values lie in [raw, 1], keep the raw p-values' order, and
    // reject (adjusted < alpha) exactly what the step-down procedure does.
    #[test]
    fn holm_bounds_order_and_rejections(
        p in family(),
        alpha_k in 1u64..=(1 << 20),
    ) {
        let adjusted = holm(&p);
        prop_assert_eq!(adjusted.len(), p.len());
        for (raw, adj) in p.iter().zip(&adjusted) {
            prop_assert!(adj >= raw, "adjusted {} below raw {}", adj, raw);
            prop_assert!(*adj <= 1.0, "adjusted {} above 1", adj);
        }
        for i in 0..p.len() {
            for j in 0..p.len() {
                if p[i] <= p[j] {
                    prop_assert!(
                        adjusted[i] <= adjusted[j],
                        "p {} -> {} but p {} -> {}", p[i], adjusted[i], p[j], adjusted[j]
                    );
                }
            }
        }
        if p.len() == 1 {
            prop_assert_eq!(adjusted[0], p[0]);
        }
        for alpha in [ALPHA, 0.01, alpha_k as f64 / GRID] {
            let by_holm: Vec<bool> = adjusted.iter().map(|&a| a < alpha).collect();
            prop_assert_eq!(by_holm, naive_rejections(&p, alpha), "alpha {}", alpha);
        }
    }
}
