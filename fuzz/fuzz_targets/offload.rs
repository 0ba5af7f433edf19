#![no_main]
//! libFuzzer's inputs to `transbench_fuzz_targets::offload::run` (what it
//! takes and asserts is documented there).

libfuzzer_sys::fuzz_target!(|data: &[u8]| transbench_fuzz_targets::offload::run(data));
