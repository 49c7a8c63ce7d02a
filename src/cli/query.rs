//! `promlet query EXPR`: evaluates PromQL on a running promlet (or any Prometheus) through its
//! HTTP API and prints the result, following `promtool query instant|range`.
//!
//! Owns: the subcommand's flags, a minimal blocking HTTP/1.1 client (plain `http://` only), a
//! small JSON reader for the API's answers, and the output formats. Must not touch: the agent
//! (this runs in its own short-lived process) and the engine (the server evaluates).
//!
//! Output as promtool's default (`promql`): one `metric => value @[timestamp]` line per
//! series for an instant query; `metric =>` and one `value @[timestamp]` line per point for a
//! range query. `--format=json` prints the API's `data` object unchanged. An API error prints
//! `query error: <errorType>: <error>` and exits 1.

use super::UsageError;
use crate::http::json::Value as Json;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The local agent at its default port.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:9099";

/// How long to wait for the server's answer (its own `--query.timeout` is the real bound).
const IO_TIMEOUT: Duration = Duration::from_secs(150);
/// Name resolution and TCP connect, each.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Promql,
    Json,
}

/// The subcommand's arguments. Times stay as typed (Unix seconds or RFC 3339); the server
/// parses them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryArgs {
    pub server: String,
    pub expr: String,
    pub range: bool,
    pub time: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub step: Option<String>,
    pub format: Format,
}

/// Usage of the subcommand, for `--help`.
pub const USAGE: &str =
    "query [--server=URL] [--time=T] [--range [--start=T] [--end=T] [--step=D]] \
                         [--format=promql|json] EXPR";
pub const HELP: &str =
    "Evaluate EXPR on a running promlet (default --server=http://127.0.0.1:9099; \
     any Prometheus works too) and print the result as promtool does: `metric => value \
     @[time]` lines. Instant at --time (default now); with --range, from --start (default \
     --end minus 5m) to --end (default now) every --step (default (end-start)/250, at least \
     1s). Times are Unix seconds or RFC 3339; --format=json prints the API's data. Exit 1 on \
     a query or connection error.";

/// Parses the words after `query`.
pub fn parse(argv: &[String]) -> Result<QueryArgs, UsageError> {
    let mut a = QueryArgs {
        server: DEFAULT_SERVER.into(),
        expr: String::new(),
        range: false,
        time: None,
        start: None,
        end: None,
        step: None,
        format: Format::Promql,
    };
    let mut expr: Option<String> = None;
    let mut it = argv.iter();
    let mut only_expr = false;
    while let Some(arg) = it.next() {
        if arg == "--" && !only_expr {
            only_expr = true;
            continue;
        }
        let flag = arg.strip_prefix("--").filter(|_| !only_expr);
        let Some(body) = flag else {
            if expr.is_some() {
                return Err(UsageError(format!(
                    "query takes one EXPR; unexpected {arg:?} (quote the expression)"
                )));
            }
            expr = Some(arg.clone());
            continue;
        };
        if body == "range" {
            a.range = true;
            continue;
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let known = ["server", "time", "start", "end", "step", "format"];
        if !known.contains(&name) {
            return Err(UsageError(format!("unknown flag --{name} for query")));
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| UsageError(format!("--{name} needs a value")))?,
        };
        match name {
            "server" => a.server = value,
            "time" => a.time = Some(value),
            "start" => a.start = Some(value),
            "end" => a.end = Some(value),
            "step" => a.step = Some(value),
            _ => {
                a.format = match value.as_str() {
                    "promql" => Format::Promql,
                    "json" => Format::Json,
                    v => {
                        return Err(UsageError(format!(
                            "invalid value for --format: expected promql or json, got {v:?}"
                        )))
                    }
                }
            }
        }
    }
    a.expr = expr.ok_or_else(|| UsageError("query needs an EXPR".into()))?;
    if !a.range && (a.start.is_some() || a.end.is_some() || a.step.is_some()) {
        return Err(UsageError("--start, --end and --step need --range".into()));
    }
    if a.range && a.time.is_some() {
        return Err(UsageError(
            "--time is for instant queries, not --range".into(),
        ));
    }
    Ok(a)
}

/// Parses a time flag the way the API does, for computing defaults on the client side.
fn seconds(s: &str) -> Result<f64, String> {
    crate::http::api_v1::parse_time(s).map(|ms| ms as f64 / 1000.0)
}

/// Form parameters, in order.
pub type Params = Vec<(String, String)>;

/// The API path and form parameters to send; `now_s` fills omitted times (promtool's
/// defaults).
pub fn request(a: &QueryArgs, now_s: f64) -> Result<(&'static str, Params), String> {
    let mut p = vec![("query".to_string(), a.expr.clone())];
    if !a.range {
        if let Some(t) = &a.time {
            p.push(("time".into(), t.clone()));
        }
        return Ok(("/api/v1/query", p));
    }
    let end = match &a.end {
        Some(e) => seconds(e)?,
        None => now_s,
    };
    let start = match &a.start {
        Some(s) => seconds(s)?,
        None => end - 300.0,
    };
    let step = match &a.step {
        Some(s) => s.clone(),
        None => format!("{}", ((end - start) / 250.0).floor().max(1.0)),
    };
    p.push(("start".into(), format!("{start:.3}")));
    p.push(("end".into(), format!("{end:.3}")));
    p.push(("step".into(), step));
    Ok(("/api/v1/query_range", p))
}

/// Runs the query and prints the answer; the process exit code.
pub fn run(a: &QueryArgs, now_s: f64) -> i32 {
    match run_inner(a, now_s) {
        Ok((out, warnings)) => {
            for w in warnings {
                eprintln!("Warning: {w}");
            }
            print!("{out}");
            0
        }
        Err(e) => {
            eprintln!("query error: {e}");
            super::EXIT_FAILURE
        }
    }
}

fn run_inner(a: &QueryArgs, now_s: f64) -> Result<(String, Vec<String>), String> {
    let (path, params) = request(a, now_s)?;
    let body = form_encode(&params);
    let (status, resp) = post_form(&a.server, path, &body)?;
    let text = String::from_utf8_lossy(&resp);
    let json = Json::parse(&text)
        .map_err(|e| format!("HTTP {status} from {}: not an API answer ({e})", a.server))?;
    if json.get("status").and_then(Json::as_str) != Some("success") {
        let kind = json.get("errorType").and_then(Json::as_str).unwrap_or("");
        let msg = json.get("error").and_then(Json::as_str).unwrap_or("");
        return Err(format!("{kind}: {msg}"));
    }
    let warnings = json
        .get("warnings")
        .and_then(Json::as_array)
        .map(|w| {
            w.iter()
                .filter_map(Json::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let data = json.get("data").ok_or("answer without data")?;
    let out = match a.format {
        Format::Json => {
            let mut s = String::new();
            data.write(&mut s);
            s.push('\n');
            s
        }
        Format::Promql => render(data)?,
    };
    Ok((out, warnings))
}

/// promtool's `promql` output of an API `data` object.
pub fn render(data: &Json) -> Result<String, String> {
    let kind = data.get("resultType").and_then(Json::as_str).unwrap_or("");
    let result = data.get("result").ok_or("answer without result")?;
    let mut out = String::new();
    let point = |p: &Json| -> Option<String> {
        let a = p.as_array()?;
        let t = match a.first()? {
            Json::Num(n) => *n,
            _ => return None,
        };
        Some(format!("{} @[{t:.3}]", a.get(1)?.as_str()?))
    };
    match kind {
        "vector" => {
            for s in result.as_array().unwrap_or(&[]) {
                let labels = metric(s.get("metric"));
                let v = s.get("value").and_then(point).ok_or("bad sample")?;
                let _ = writeln!(out, "{labels} => {v}");
            }
        }
        "matrix" => {
            for s in result.as_array().unwrap_or(&[]) {
                let _ = writeln!(out, "{} =>", metric(s.get("metric")));
                for p in s.get("values").and_then(Json::as_array).unwrap_or(&[]) {
                    let _ = writeln!(out, "{}", point(p).ok_or("bad point")?);
                }
            }
        }
        "scalar" | "string" => {
            let _ = writeln!(out, "{kind}: {}", point(result).ok_or("bad scalar")?);
        }
        other => return Err(format!("unknown resultType {other:?}")),
    }
    Ok(out)
}

/// A label set as Prometheus prints it: `name{a="1", b="2"}`, `{}` when empty.
fn metric(m: Option<&Json>) -> String {
    let pairs = match m {
        Some(Json::Obj(p)) => p.as_slice(),
        _ => &[],
    };
    let mut name = "";
    let mut rest: Vec<(&str, &str)> = Vec::new();
    for (k, v) in pairs {
        let v = v.as_str().unwrap_or("");
        if k == "__name__" {
            name = v;
        } else {
            rest.push((k, v));
        }
    }
    rest.sort_unstable();
    let mut out = name.to_string();
    if rest.is_empty() && !name.is_empty() {
        return out;
    }
    out.push('{');
    for (i, (k, v)) in rest.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{k}=");
        let mut q = Vec::new();
        crate::http::json::write_str(&mut q, v);
        out.push_str(&String::from_utf8_lossy(&q));
    }
    out.push('}');
    out
}

fn form_encode(params: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        for (j, s) in [k, v].into_iter().enumerate() {
            if j == 1 {
                out.push('=');
            }
            for b in s.bytes() {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    out.push(b as char);
                } else {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
    }
    out
}

/// POSTs a form to `server` + `path`; (status, body). Plain HTTP/1.1, one connection.
fn post_form(server: &str, path: &str, body: &str) -> Result<(u16, Vec<u8>), String> {
    let rest = server.strip_prefix("http://").ok_or_else(|| {
        format!("--server must be an http:// URL (no TLS in this build), got {server:?}")
    })?;
    let (hostport, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (host, port) = hostport
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .unwrap_or((hostport, 80));
    // The agent's own resolver (localhost, /etc/hosts, then DNS), as for every other outbound
    // connection: std's `ToSocketAddrs` would link musl's getaddrinfo and its resolver
    // (~20 KB of the static binary) for this one call.
    let addr = crate::rt::block_on(crate::net::dns::resolve_host(host, port, CONNECT_TIMEOUT))
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    let cannot = |e: std::io::Error| format!("cannot reach {server}: {e}");
    let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(cannot)?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(cannot)?;
    s.set_write_timeout(Some(IO_TIMEOUT)).map_err(cannot)?;
    let req = format!(
        "POST {prefix}{path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: promlet/{}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        crate::VERSION,
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(cannot)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(cannot)?;
    parse_response(&buf).ok_or_else(|| format!("malformed HTTP response from {server}"))
}

/// Status and body of an HTTP/1.1 response read to the end of the connection.
fn parse_response(buf: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..split]).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let body = &buf[split + 4..];
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if !chunked {
        return Some((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut b = body;
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&b[..nl]).ok()?;
        let n = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if n == 0 {
            return Some((status, out));
        }
        let data = b.get(nl + 2..nl + 2 + n)?;
        out.extend_from_slice(data);
        b = b.get(nl + 4 + n..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<QueryArgs, UsageError> {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn instant_and_range_flags_parse_with_promtool_defaults() {
        let a = args(&["up"]).unwrap();
        assert_eq!((a.server.as_str(), a.range), (DEFAULT_SERVER, false));
        let (path, p) = request(&a, 1000.0).unwrap();
        assert_eq!(path, "/api/v1/query");
        assert_eq!(p, vec![("query".to_string(), "up".to_string())]);

        let a = args(&[
            "--range",
            "--end=2000",
            "--server",
            "http://h:1",
            "rate(x[1m])",
        ])
        .unwrap();
        let (path, p) = request(&a, 5000.0).unwrap();
        assert_eq!(path, "/api/v1/query_range");
        assert_eq!(p[1], ("start".into(), "1700.000".into()));
        assert_eq!(p[2], ("end".into(), "2000.000".into()));
        assert_eq!(p[3], ("step".into(), "1".into()));
        assert_eq!(a.server, "http://h:1");
    }

    #[test]
    fn misuse_is_a_usage_error() {
        assert!(args(&[]).is_err());
        assert!(args(&["a", "b"]).is_err());
        assert!(args(&["--start=1", "up"]).is_err());
        assert!(args(&["--range", "--time=1", "up"]).is_err());
        assert!(args(&["--format=yaml", "up"]).is_err());
        assert!(args(&["--bogus=1", "up"]).is_err());
        assert_eq!(args(&["--", "--1"]).unwrap().expr, "--1");
        assert_eq!(
            args(&["up", "--time=5"]).unwrap().time.as_deref(),
            Some("5")
        );
    }

    #[test]
    fn renders_like_promtool() {
        let v = Json::parse(
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a","instance":"x"},"value":[1700000000.5,"1"]},{"metric":{},"value":[1700000000,"NaN"]}]}"#,
        )
        .unwrap();
        assert_eq!(
            render(&v).unwrap(),
            "up{instance=\"x\", job=\"a\"} => 1 @[1700000000.500]\n{} => NaN @[1700000000.000]\n"
        );
        let m = Json::parse(
            r#"{"resultType":"matrix","result":[{"metric":{"__name__":"up"},"values":[[1,"1"],[2,"0"]]}]}"#,
        )
        .unwrap();
        assert_eq!(render(&m).unwrap(), "up =>\n1 @[1.000]\n0 @[2.000]\n");
        let s = Json::parse(r#"{"resultType":"scalar","result":[3,"2"]}"#).unwrap();
        assert_eq!(render(&s).unwrap(), "scalar: 2 @[3.000]\n");
    }

    #[test]
    fn chunked_and_plain_responses_decode() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(r), Some((200, b"abcde".to_vec())));
        let r = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(r), Some((400, b"{}".to_vec())));
        assert_eq!(parse_response(b"garbage"), None);
    }

    #[test]
    fn form_encoding_escapes_reserved_bytes() {
        let p = vec![("query".to_string(), "a{b=\"c d\"}&x".to_string())];
        assert_eq!(form_encode(&p), "query=a%7Bb%3D%22c%20d%22%7D%26x");
    }
}
