//! Criterion micro-benchmarks of transbench's hot paths live in `benches/`;
//! run them with `cargo bench -p transbench-bench`. Whole-transport
//! comparisons are `transbench run` next to peers such as sockperf (see the
//! README), not micro-benchmarks.
