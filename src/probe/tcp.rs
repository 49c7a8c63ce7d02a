//! The TCP prober: connect, then optional `query_response` steps (expect a line matching a
//! regexp, send a line).
//!
//! Owns: the connection, line reading (Go's `bufio.Scanner` rules: `\n` ends a line, a `\r`
//! before it is dropped), `${n}` expansion of `send` from the `expect` match, and
//! `probe_failed_due_to_regex`/`probe_failed_due_to_bytes`.
//! Must not touch: the TSDB. TLS (`tls: true`, `starttls`) waits for the `tls` feature.

use super::config::TcpModule;
use super::{resolve, split_host_port, Report};
use crate::rt::Async;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use std::net::{SocketAddr, TcpStream};

/// Longest line `expect` reads (Go's Scanner default token limit).
const MAX_LINE: usize = 64 << 10;

/// Probes `target` (`host:port`).
pub async fn probe(target: &str, m: &TcpModule, r: &mut Report) -> bool {
    let (host, port) = split_host_port(target);
    let Some(port) = port else {
        r.log(|| format!("target {target:?} has no port"));
        return false;
    };
    let Ok((ip, _)) = resolve(&host, m.ip, r).await else {
        return false;
    };
    let addr = SocketAddr::new(ip, port);
    let mut stream = match Async::<TcpStream>::connect(addr).await {
        Ok(s) => s,
        Err(e) => {
            r.log(|| format!("error dialing TCP {addr}: {e}"));
            return false;
        }
    };
    r.log(|| format!("successfully dialed {addr}"));
    r.register(
        "probe_failed_due_to_regex",
        "Indicates if probe failed due to regex",
    );
    r.register(
        "probe_failed_due_to_bytes",
        "Indicates if probe failed due to bytes",
    );
    let mut lines = LineReader::default();
    for step in &m.query_response {
        let mut send = step.send.clone();
        if let Some(re) = &step.expect {
            let mut matched = None;
            loop {
                match lines.next(&mut stream).await {
                    Ok(Some(line)) => {
                        let text = String::from_utf8_lossy(&line).into_owned();
                        if let Some(c) = re.0.captures(&text) {
                            let mut expanded = String::new();
                            c.expand(&send, &mut expanded);
                            matched = Some(expanded);
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        r.log(|| format!("error reading from connection: {e}"));
                        return false;
                    }
                }
            }
            let Some(expanded) = matched else {
                r.set(
                    "probe_failed_due_to_regex",
                    "Indicates if probe failed due to regex",
                    1.0,
                );
                r.log(|| format!("regexp {:?} did not match", re.0.as_str()));
                return false;
            };
            r.set(
                "probe_failed_due_to_regex",
                "Indicates if probe failed due to regex",
                0.0,
            );
            send = expanded;
        }
        if !send.is_empty() {
            send.push('\n');
            if let Err(e) = stream.write_all(send.as_bytes()).await {
                r.log(|| format!("failed to send: {e}"));
                return false;
            }
        }
    }
    true
}

/// Splits a stream into lines without losing bytes read past a line end.
#[derive(Default)]
struct LineReader {
    buf: Vec<u8>,
    eof: bool,
}

impl LineReader {
    /// The next line without its `\n` (and `\r`); None at EOF with nothing left.
    async fn next(&mut self, s: &mut Async<TcpStream>) -> Result<Option<Vec<u8>>, String> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            if self.eof {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
            if self.buf.len() > MAX_LINE {
                return Err("bufio.Scanner: token too long".into());
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                self.eof = true;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
