//! promlet's gzip encoder (`http::gzip`, our own DEFLATE) checked by other decoders: the
//! system `gzip` (`-t` verifies the CRC-32 and length trailer; `-dc` gives the bytes back)
//! and python3's zlib. The unit tests in src/http/deflate.rs round-trip through miniz_oxide;
//! these show the streams are standard, not just miniz-compatible.

use crate::common;
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `cmd` with `input` on stdin; its stdout, or why it failed.
fn pipe(cmd: &mut Command, input: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let input = input.to_vec();
    // Written from a thread so a large output cannot deadlock against a full stdin pipe.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    writer
        .join()
        .map_err(|_| "writer panicked".to_string())?
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut rng = fastrand::Rng::with_seed(99);
    let mut v: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), vec![]),
        ("one byte".into(), b"x".to_vec()),
        ("258 equal bytes".into(), vec![b'a'; 258]),
        ("100 KB of one byte".into(), vec![0; 100_000]),
        (
            "200 KB random".into(),
            (0..200_000).map(|_| rng.u8(..)).collect(),
        ),
        (
            "text lines".into(),
            (0..20_000)
                .flat_map(|i| format!("m{{i=\"{}\"}} {}\n", i % 300, i * 7).into_bytes())
                .collect(),
        ),
    ];
    if let Some(dir) = common::shared_dir("node-fixtures") {
        for f in ["node_exporter-1.11.1-on-fixtures.prom", "e2e-output.txt"] {
            v.push((f.into(), std::fs::read(dir.join(f)).unwrap()));
        }
    }
    v
}

#[test]
fn system_gzip_verifies_and_inflates_our_gzip() {
    if Command::new("gzip").arg("--version").output().is_err() {
        return common::missing("the gzip command").unwrap_or(());
    }
    for (what, data) in inputs() {
        let gz = promlet::http::gzip::gzip(&data);
        pipe(Command::new("gzip").arg("-t"), &gz)
            .unwrap_or_else(|e| panic!("gzip -t rejects {what}: {e}"));
        let back = pipe(Command::new("gzip").arg("-dc"), &gz)
            .unwrap_or_else(|e| panic!("gzip -dc fails on {what}: {e}"));
        assert!(back == data, "gzip -dc gives other bytes for {what}");
    }
}

#[test]
fn python_zlib_inflates_our_gzip() {
    if Command::new("python3").arg("--version").output().is_err() {
        return common::missing("python3").unwrap_or(());
    }
    // wbits 31: a gzip member, header and trailer checked.
    let script =
        "import sys, zlib; sys.stdout.buffer.write(zlib.decompress(sys.stdin.buffer.read(), 31))";
    for (what, data) in inputs() {
        let gz = promlet::http::gzip::gzip(&data);
        let back = pipe(Command::new("python3").args(["-c", script]), &gz)
            .unwrap_or_else(|e| panic!("python zlib rejects {what}: {e}"));
        assert!(back == data, "python zlib gives other bytes for {what}");
    }
}
