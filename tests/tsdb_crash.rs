//! Process-level crash test: a real writer process (examples/tsdb_writer.rs, driving the real
//! store on a real directory) is SIGKILLed at random moments, 25 times, and restarted each time.
//! After every kill the data directory is opened and checked: every sample flushed before the
//! kill is there with its exact value, series are gap-free, and nothing panicked.
//! The agent's main loop has not landed yet; when it does, this test moves to the `promlet`
//! binary itself.

use crate::tsdb::temp_dir;
use promlet::tsdb::{Options, OsFs, Querier, Store};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

#[path = "../examples/tsdb_writer.rs"]
#[allow(dead_code)]
mod writer;

/// The writer example of this build profile. `cargo test` builds examples but a filtered
/// `cargo test --test tests` does not, and a stale writer would test old code: so ask cargo
/// (a no-op when it is fresh).
fn writer_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let bin = profile_dir.join("examples").join("tsdb_writer");
    {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--example", "tsdb_writer"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.ends_with("release") {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().unwrap().success(),
            "building tsdb_writer failed"
        );
    }
    bin
}

#[test]
fn tsdb_survives_sigkill_at_random_moments() {
    let bin = writer_bin();
    assert!(
        bin.exists(),
        "{} not built (cargo test builds examples)",
        bin.display()
    );
    let dir = temp_dir("crash");
    let mut rng = fastrand::Rng::with_seed(2026);
    let mut last_flushed: Option<i64> = None;
    let mut kills = 0;
    for round in 0..25 {
        let mut child = Command::new(&bin)
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.u64(20..250)));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success());
        kills += 1;
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(
            !err.contains("panicked"),
            "round {round}: writer panicked:\n{err}"
        );
        assert!(!out.contains("append error"), "round {round}: {out}");
        let started: i64 = out
            .lines()
            .find_map(|l| l.strip_prefix("started "))
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("round {round}: no start line in {out:?}"));
        if let Some(f) = last_flushed {
            assert!(
                started > f,
                "round {round}: restarted at {started}, flushed up to {f}"
            );
        }
        if let Some(f) = out
            .lines()
            .rev()
            .filter_map(|l| l.strip_prefix("flushed "))
            .find_map(|n| n.parse::<i64>().ok())
        {
            last_flushed = Some(f);
        }
        // Open what the killed process left and check it.
        let st = Store::open(
            Options {
                retention_bytes: 512 << 10,
                segment_bytes: 16 << 10,
                ..Options::default()
            },
            &dir,
            Box::new(OsFs),
        );
        let all = st.select(&[], i64::MIN, i64::MAX);
        if let Some(f) = last_flushed {
            assert_eq!(all.len(), writer::SERIES, "round {round}");
            for s in &all {
                let idx: usize = s.labels.get("s").unwrap().parse().unwrap();
                let first = s.samples[0].t / writer::STEP_MS;
                let last = s.samples.last().unwrap().t / writer::STEP_MS;
                assert!(
                    last >= f,
                    "round {round}: {} ends at {last}, flushed {f}",
                    s.labels
                );
                for (k, x) in s.samples.iter().enumerate() {
                    let tick = first + k as i64;
                    assert_eq!(
                        x.t,
                        tick * writer::STEP_MS,
                        "round {round}: gap in {}",
                        s.labels
                    );
                    assert_eq!(
                        x.v.to_bits(),
                        writer::expected(idx, tick).to_bits(),
                        "round {round}: value of {} at {tick}",
                        s.labels
                    );
                }
            }
        }
    }
    let files = std::fs::read_dir(&dir).unwrap().count();
    let bytes: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "tsdb crash test: {kills} SIGKILLs, flushed up to tick {last_flushed:?}, {files} segment \
         files, {bytes} bytes on disk"
    );
    assert!(
        last_flushed.is_some_and(|f| f > 500),
        "the writer made progress"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
