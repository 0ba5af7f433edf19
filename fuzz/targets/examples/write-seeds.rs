//! Writes every target's seeds (`transbench_fuzz_targets::seeds`) to
//! `fuzz/corpus/TARGET/seed-NAME`, replacing the seeds already there and
//! leaving every other file (crashers kept as regressions) alone.
//!
//! `cargo run -p transbench-fuzz-targets --example write-seeds`

use transbench_fuzz_targets::{seeds, TARGETS};

fn main() -> std::io::Result<()> {
    let corpus = seeds::root().join("fuzz/corpus");
    for t in &TARGETS {
        let dir = corpus.join(t.name);
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
            {
                std::fs::remove_file(&path)?;
            }
        }
        let made = seeds::seeds(t.name);
        for (name, bytes) in &made {
            std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        }
        println!("{}: {} seeds", dir.display(), made.len());
    }
    Ok(())
}
