//! Process-level crash test: a real writer process (examples/tsdb_writer.rs, driving the real
//! store on a real directory) is SIGKILLed at random moments, 25 times, and restarted each time.
//! After every kill the data directory is opened and checked: every sample flushed before the
//! kill is there with its exact value, series are gap-free, and nothing panicked.
//! A second test runs the writer on a tiny tmpfs to fill the disk for real.
//! The agent's main loop has not landed yet; when it does, these tests move to the `promlet`
//! binary itself.

use crate::common::TempDir;
use promlet::tsdb::{Options, OsFs, Querier, Store};
use std::io::Read;
use std::path::{Path, PathBuf};
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

/// Opens what a killed writer left in `dir` and checks every series: present, gap-free, exact
/// values, and reaching at least tick `flushed`. Returns the newest tick found.
fn check_store(dir: &Path, flushed: i64, ctx: &str) -> i64 {
    let st = Store::open(
        Options {
            retention_bytes: 512 << 10,
            segment_bytes: 16 << 10,
            ..Options::default()
        },
        dir,
        Box::new(OsFs),
    );
    let all = st.select(&[], i64::MIN, i64::MAX);
    assert_eq!(all.len(), writer::SERIES, "{ctx}");
    let mut newest = 0;
    for s in &all {
        let idx: usize = s.labels.get("s").unwrap().parse().unwrap();
        let first = s.samples[0].t / writer::STEP_MS;
        let last = s.samples.last().unwrap().t / writer::STEP_MS;
        newest = newest.max(last);
        assert!(
            last >= flushed,
            "{ctx}: {} ends at {last}, flushed {flushed}",
            s.labels
        );
        for (k, x) in s.samples.iter().enumerate() {
            let tick = first + k as i64;
            assert_eq!(x.t, tick * writer::STEP_MS, "{ctx}: gap in {}", s.labels);
            assert_eq!(
                x.v.to_bits(),
                writer::expected(idx, tick).to_bits(),
                "{ctx}: value of {} at {tick}",
                s.labels
            );
        }
    }
    newest
}

#[test]
fn tsdb_survives_sigkill_at_random_moments() {
    let bin = writer_bin();
    assert!(
        bin.exists(),
        "{} not built (cargo test builds examples)",
        bin.display()
    );
    let dir = TempDir::new("crash");
    let mut rng = fastrand::Rng::with_seed(2026);
    let mut last_flushed: Option<i64> = None;
    let mut kills = 0;
    let mut killed_in_recovery = 0;
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
        let started: Option<i64> = out
            .lines()
            .find_map(|l| l.strip_prefix("started "))
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse().ok());
        let Some(started) = started else {
            // Killed while still recovering (no output yet): a valid crash moment too.
            killed_in_recovery += 1;
            continue;
        };
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
        if let Some(f) = last_flushed {
            check_store(&dir, f, &format!("round {round}"));
        }
    }
    let files = std::fs::read_dir(&dir).unwrap().count();
    let bytes: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "tsdb crash test: {kills} SIGKILLs ({killed_in_recovery} during start-up recovery), \
         flushed up to tick {last_flushed:?}, {files} segment files, {bytes} bytes on disk"
    );
    assert!(
        last_flushed.is_some_and(|f| f > 500),
        "the writer made progress"
    );
}

/// Disk full, for real: the writer process runs on a 96 KiB tmpfs. When it fills, flushes fail
/// and are reported while ingestion goes on; after the tmpfs is grown (space returns) the next
/// flushes succeed and write what piled up, so everything up to the last flush is recovered.
#[test]
fn tsdb_disk_full_on_tmpfs_then_space_returns() {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;
    let bin = writer_bin();
    let base = TempDir::new("tmpfs");
    let Some(_unmount) = TmpfsMount::new(&base, "96k") else {
        return;
    };
    let dir = base.join("data");
    let mut child = crate::common::ChildGuard::spawn(
        Command::new(&bin)
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| -> i64 {
        loop {
            let l = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("writer said nothing while waiting for {what}"));
            if let Some(n) = l.strip_prefix(what) {
                return n.parse().unwrap();
            }
        }
    };
    let first_failure = next("flush failed ");
    // Ingestion continues in memory while the disk stays full.
    let mut failed_at = first_failure;
    while failed_at < first_failure + 70 {
        failed_at = next("flush failed ");
    }
    _unmount.resize("8m");
    let recovered_at = next("flushed ");
    assert!(recovered_at > failed_at);
    let mut flushed = recovered_at;
    while flushed < recovered_at + 35 {
        flushed = next("flushed ");
    }
    child.0.kill().unwrap();
    let _ = child.0.wait();
    let newest = check_store(&dir, flushed, "after disk full");
    println!(
        "tsdb disk full (tmpfs): first failed flush at tick {first_failure}, still failing at \
         {failed_at}, space back at {recovered_at}; recovered up to {newest} (flushed {flushed})"
    );
}

/// The real `promlet` binary collecting this machine's /proc every second, flushing every
/// second, SIGKILLed at random moments 20 times and restarted on the same data directory.
/// Before each kill the test waits until /metrics reports a flush that covers new samples
/// (`promlet_tsdb_persisted_until_timestamp_seconds`); after the kill it opens the directory
/// and checks that everything up to that point is there, that everything seen after the
/// previous kill is still there sample for sample, and that every series is in order.
#[test]
fn tsdb_promlet_survives_sigkill_loop() {
    use promlet::model::Sample;
    use std::collections::BTreeMap;
    let dir = TempDir::new("promlet-crash");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("promlet.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 1s\n").unwrap();
    let data = dir.join("data");
    let mut rng = fastrand::Rng::with_seed(77);
    let mut prev: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    let mut prev_until = 0i64;
    let mut corrupt_seen = 0;
    for round in 0..20 {
        let port = crate::common::free_port();
        let mut child = crate::common::ChildGuard::spawn(
            Command::new(crate::common::promlet_bin())
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg("--storage.tsdb.flush-interval=1s")
                .arg("--storage.tsdb.retention.size=64MB")
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        assert!(
            crate::common::wait_for_port(port),
            "round {round}: not listening"
        );
        // Wait for a flush that covers samples newer than anything flushed before.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let until = loop {
            let until = persisted_until_ms(port).expect("persisted_until metric");
            if until > prev_until {
                break until;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: no flush"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        // Kill at a random moment: mid-collection, mid-flush, or idle.
        std::thread::sleep(Duration::from_millis(rng.u64(0..1500)));
        kill_and_assert_no_panic(&mut child, &format!("round {round}"));

        let st = Store::open(Options::default(), &data, Box::new(OsFs));
        corrupt_seen += st.stats().corrupt_records;
        let now: BTreeMap<String, Vec<Sample>> = st
            .select(&[], i64::MIN, i64::MAX)
            .into_iter()
            .map(|s| (s.labels.to_string(), s.samples))
            .collect();
        let newest = now.values().filter_map(|s| s.last()).map(|s| s.t).max();
        assert!(
            newest.is_some_and(|t| t >= until),
            "round {round}: newest recovered {newest:?} < flushed {until}"
        );
        for (name, samples) in &now {
            assert!(
                samples.windows(2).all(|w| w[0].t < w[1].t),
                "round {round}: {name} out of order"
            );
        }
        for (name, old) in &prev {
            let new = now.get(name).map(Vec::as_slice).unwrap_or(&[]);
            let old_flushed: Vec<_> = old.iter().filter(|s| s.t <= prev_until).collect();
            let new_part: Vec<_> = new.iter().filter(|s| s.t <= prev_until).collect();
            assert_eq!(
                old_flushed.len(),
                new_part.len(),
                "round {round}: {name} lost flushed samples"
            );
            for (a, b) in old_flushed.iter().zip(&new_part) {
                assert_eq!(
                    (a.t, a.v.to_bits()),
                    (b.t, b.v.to_bits()),
                    "round {round}: {name}"
                );
            }
        }
        prev = now;
        prev_until = until;
    }
    let samples: usize = prev.values().map(Vec::len).sum();
    println!(
        "promlet crash test: 20 SIGKILLs of the real binary; {} series, {samples} samples \
         recovered at the end; {corrupt_seen} damaged records seen in all",
        prev.len()
    );
    assert!(samples > 0);
}

/// `activeAt` (ms) of alert `name` in an /api/v1/alerts body.
fn alert_active_at(body: &str, name: &str) -> Option<i64> {
    let at = body.find(&format!("\"alertname\":\"{name}\""))?;
    // activeAt belongs to the same alert object: the first one after its labels.
    let rest = &body[at..];
    let v = rest.split("\"activeAt\":\"").nth(1)?.split('"').next()?;
    promlet::notify::silence::parse_rfc3339(v)
}

/// The whole agent under a SIGKILL loop: besides the TSDB (above), the state of rules (a
/// pending `for: 1h` alert restored from ALERTS_FOR_STATE), the Alertmanager queue (its
/// Alertmanager is unreachable, so a firing alert stays queued on disk) and pushed groups (one
/// more each round) must all survive being killed at random moments. Every round prints nothing;
/// the end prints what was held and lost.
#[test]
fn agent_state_survives_sigkill_loop() {
    const ROUNDS: usize = 8;
    let dir = TempDir::new("promlet-agent-crash");
    std::fs::create_dir_all(&dir).unwrap();
    let dead = crate::common::free_port(); // nothing listens: Alertmanager unreachable
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n- name: g\n  interval: 1s\n  rules:\n  - alert: Slow\n    expr: vector(1)\n    \
         for: 1h\n  - alert: Now\n    expr: vector(1)\n",
    )
    .unwrap();
    let cfg = dir.join("promlet.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n\
             alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['127.0.0.1:{dead}']\n"
        ),
    )
    .unwrap();
    let data = dir.join("data");
    let mut rng = fastrand::Rng::with_seed(7);
    let mut original_active: Option<i64> = None;
    let (mut groups_lost, mut queue_lost, mut rules_lost) = (0, 0, 0);
    for round in 0..ROUNDS {
        let port = crate::common::free_port();
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let mut child = crate::common::ChildGuard::spawn(
            Command::new(crate::common::promlet_bin())
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg("--storage.tsdb.flush-interval=1s")
                .arg("--web.enable-push")
                .arg("--collector.disable-defaults")
                .arg("--collector.loadavg")
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        assert!(
            crate::common::wait_for_port(port),
            "round {round}: not listening"
        );
        // Push one more group; the answer comes after it is on disk.
        let body = format!("# TYPE round gauge\nround {round}\n");
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        use std::io::Write;
        write!(
            s,
            "PUT /metrics/job/round{round} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(
            resp.starts_with("HTTP/1.1 200"),
            "round {round}: push: {resp}"
        );
        // The pending alert: restored (older than this start) after the first round.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let active = loop {
            let (_, _, b) = crate::common::http_get(port, "/api/v1/alerts", "");
            if let Some(t) = alert_active_at(&String::from_utf8_lossy(&b), "Slow") {
                break t;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: Slow never pending"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        match original_active {
            None => original_active = Some(active),
            Some(orig) => {
                if !(active < started && active >= orig - 1000) {
                    rules_lost += 1;
                    eprintln!(
                        "round {round}: Slow activeAt {active}, first {orig}, started {started}"
                    );
                }
            }
        }
        // Wait for a TSDB flush that covers ALERTS_FOR_STATE from this run, then kill at a
        // random moment. The flush must hold a sample stamped after the alert was seen pending
        // (so it came after the evaluation that wrote ALERTS_FOR_STATE): on a loaded machine the
        // first evaluation can come later than a fixed 2 s after the start.
        let pending_seen = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let want = (started + 2000).max(pending_seen + 1000);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if persisted_until_ms(port).is_some_and(|until| until >= want) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: no flush"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(rng.u64(0..1000)));
        kill_and_assert_no_panic(&mut child, &format!("round {round}"));

        // What the next start will read: every pushed group, the queued alert.
        let push = promlet::push::Store::open(&data).unwrap();
        groups_lost += (round + 1).saturating_sub(push.group_count());
        let q = promlet::notify::queue::Queue::open(&data.join("notify"), 10_000).unwrap();
        let queued: Vec<String> = q.head(100).map(|(_, a)| a.labels.to_string()).collect();
        if !queued.iter().any(|l| l.contains("alertname=\"Now\"")) {
            queue_lost += 1;
            eprintln!("round {round}: queue holds {queued:?}");
        }
    }
    println!(
        "chaos: whole agent SIGKILLed {ROUNDS} times: held {ROUNDS} pushed groups (lost \
         {groups_lost}), the queued alert in {} of {ROUNDS} rounds (lost {queue_lost}), the \
         pending alert's progress in {} of {} restarts (lost {rules_lost})",
        ROUNDS - queue_lost,
        ROUNDS - 1 - rules_lost,
        ROUNDS - 1
    );
    assert_eq!(groups_lost, 0, "pushed groups lost");
    assert_eq!(queue_lost, 0, "the queued alert was lost");
    assert_eq!(rules_lost, 0, "pending alert progress lost");
}

/// A tmpfs of a given size mounted on a directory (needs root), unmounted on drop; the disk
/// for the disk-full tests.
struct TmpfsMount<'a>(&'a Path);

impl<'a> TmpfsMount<'a> {
    /// Mounts it, or reports the missing capability (a failure with CI=true) and gives None.
    fn new(dir: &'a Path, size: &str) -> Option<TmpfsMount<'a>> {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            crate::common::missing::<()>("a tmpfs mount for the disk-full test (needs root)");
            return None;
        }
        Some(TmpfsMount(dir))
    }

    /// Space returns: the same mount, grown to `size`.
    fn resize(&self, size: &str) {
        let grown = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.0)
            .status()
            .unwrap();
        assert!(grown.success(), "remount to {size} failed");
    }
}

impl Drop for TmpfsMount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

/// SIGKILLs a promlet started with piped stderr and fails if it had panicked before.
fn kill_and_assert_no_panic(child: &mut crate::common::ChildGuard, when: &str) {
    child.0.kill().unwrap();
    let _ = child.0.wait();
    let mut err = String::new();
    if let Some(mut stderr) = child.0.stderr.take() {
        stderr.read_to_string(&mut err).unwrap();
    }
    assert!(
        !err.contains("panicked"),
        "{when}: promlet panicked:\n{err}"
    );
}

/// The newest flushed sample time the agent reports (ms), if /metrics has it.
fn persisted_until_ms(port: u16) -> Option<i64> {
    let seconds = metric(port, "promlet_tsdb_persisted_until_timestamp_seconds");
    (!seconds.is_nan()).then(|| (seconds * 1000.0).round() as i64)
}

/// A self-metric's value in a /metrics body (first sample of `name` without labels).
fn metric(port: u16, name: &str) -> f64 {
    let (_, _, b) = crate::common::http_get(port, "/metrics", "");
    String::from_utf8_lossy(&b)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

fn push(port: u16, job: &str) -> u16 {
    use std::io::Write;
    let body = format!("# TYPE pushed gauge\npushed{{from=\"{job}\"}} 1\n");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "PUT /metrics/job/{job} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Disk full for the whole agent: its data directory (TSDB, Alertmanager queue, pushed groups)
/// is on a 256 KiB tmpfs that fills up. The agent keeps answering, collecting and accepting
/// pushes, and counts the failed writes; once the tmpfs is grown, flushes resume and, after a
/// SIGKILL, the directory holds every sample up to the last reported flush, the pushed groups
/// and the queued alert.
#[test]
fn agent_disk_full_on_tmpfs_then_space_returns() {
    let base = TempDir::new("agent-tmpfs");
    let Some(_unmount) = TmpfsMount::new(&base, "256k") else {
        return;
    };
    let etc = TempDir::new("agent-tmpfs-etc");
    std::fs::create_dir_all(&etc).unwrap();
    let dead = crate::common::free_port();
    std::fs::write(
        etc.join("rules.yml"),
        "groups:\n- name: g\n  interval: 1s\n  rules:\n  - alert: Now\n    expr: vector(1)\n",
    )
    .unwrap();
    let cfg = etc.join("promlet.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n\
             alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['127.0.0.1:{dead}']\n"
        ),
    )
    .unwrap();
    let data = base.join("data");
    let port = crate::common::free_port();
    let mut child = crate::common::ChildGuard::spawn(
        Command::new(crate::common::promlet_bin())
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg("--storage.tsdb.flush-interval=1s")
            .arg("--web.enable-push")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    assert!(crate::common::wait_for_port(port), "not listening");
    assert_eq!(push(port, "before"), 200);
    // Fill the disk: the TSDB's own segments do it within seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while metric(port, "promlet_tsdb_persist_errors_total").partial_cmp(&0.0)
        != Some(std::cmp::Ordering::Greater)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the 256 KiB tmpfs never filled"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Full: still answering, collecting and taking pushes (kept in memory).
    let appended = metric(port, "promlet_tsdb_samples_appended_total");
    assert_eq!(push(port, "during"), 200, "a push while the disk is full");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        metric(port, "promlet_tsdb_samples_appended_total") > appended,
        "collection stopped"
    );
    let errors_full = metric(port, "promlet_tsdb_persist_errors_total");
    // Space returns.
    _unmount.resize("16m");
    let back = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64
        / 1000.0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let until = loop {
        let u = metric(port, "promlet_tsdb_persisted_until_timestamp_seconds");
        if u > back + 1.0 {
            break u;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "flushes did not resume"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(push(port, "after"), 200);
    kill_and_assert_no_panic(&mut child, "after space returned");

    let st = Store::open(Options::default(), &data, Box::new(OsFs));
    let all = st.select(&[], i64::MIN, i64::MAX);
    let newest = all
        .iter()
        .filter_map(|s| s.samples.last())
        .map(|s| s.t)
        .max();
    let samples: usize = all.iter().map(|s| s.samples.len()).sum();
    let push = promlet::push::Store::open(&data).unwrap();
    let q = promlet::notify::queue::Queue::open(&data.join("notify"), 10_000).unwrap();
    println!(
        "chaos: agent disk full (256 KiB tmpfs): {errors_full} failed writes while full; after \
         space returned: held {samples} samples up to {newest:?} (flushed until {until}), {} of 3 \
         pushed groups, {} queued alert(s); lost: {} pushed groups",
        push.group_count(),
        q.len(),
        3 - push.group_count().min(3)
    );
    assert!(
        newest.is_some_and(|t| t as f64 >= (until * 1000.0).floor()),
        "samples flushed before the kill are missing"
    );
    assert_eq!(push.group_count(), 3, "a pushed group was lost");
    assert!(!q.is_empty(), "the queued alert was lost");
}
