//! The HTTP prober: one request (and its redirects) with blackbox_exporter's phase timings.
//!
//! Owns: URL splitting, the request, following redirects (Go's rules: 301/302/303 turn into a
//! body-less GET, 307/308 keep method and body, at most 10), status-code, SSL and body-regexp
//! checks, and the `probe_http_*` gauges. Chunk and gzip decoding are the scrape client's.
//! Must not touch: name resolution beyond [`super::resolve`], the TSDB.
//!
//! Phases are summed over redirects, as blackbox does: `resolve` (the lookup), `connect` (TCP
//! handshake), `tls` (the TLS handshake), `processing` (request sent to first response byte),
//! `transfer` (first byte to the end of the body).
//!
//! `https://` needs the `tls` feature (without it such targets fail cleanly with
//! `probe_http_ssl 0`); then the handshake also reports `probe_tls_version_info`,
//! `probe_tls_cipher_info`, `probe_ssl_earliest_cert_expiry` and
//! `probe_ssl_last_chain_expiry_timestamp_seconds` (over the certificates the server presented;
//! blackbox's `probe_ssl_last_chain_info` is not reported).

use super::config::HttpModule;
use super::{resolve, split_host_port, Report};
use crate::rt::Async;
use crate::scrape::client::{chunked_complete, dechunk, gunzip};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

const DURATION: &str = "probe_http_duration_seconds";
const DURATION_HELP: &str = "Duration of http request by phase, summed over all redirects";
const PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];
/// Go's client gives up after this many redirects.
const MAX_REDIRECTS: usize = 10;
/// Response header block limit.
const MAX_HEAD: usize = 16 << 10;
/// Bodies kept for regexps or decoding are bounded: a device has little memory, and a
/// health page is small. Bodies that need no checking are only counted.
const MAX_KEPT_BODY: usize = 4 << 20;

/// A URL split into what a request needs.
#[derive(Clone, Debug, PartialEq)]
struct Url {
    https: bool,
    host: String,
    port: Option<u16>,
    /// Path and query, starting with `/`.
    path: String,
}

impl Url {
    fn parse(s: &str) -> Result<Url, String> {
        let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("unsupported URL {s:?}"));
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = path.split('#').next().unwrap_or("/");
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else if path.is_empty() {
            "/".into()
        } else {
            path.to_string()
        };
        let authority = authority.rsplit('@').next().unwrap_or("");
        if authority.is_empty() {
            return Err(format!("no host in URL {s:?}"));
        }
        let (host, port) = split_host_port(authority);
        Ok(Url {
            https,
            host,
            port,
            path,
        })
    }

    fn port(&self) -> u16 {
        self.port.unwrap_or(if self.https { 443 } else { 80 })
    }

    /// The `Host:` header: the authority as written.
    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }

    /// Resolves a `Location` against this URL.
    fn join(&self, location: &str) -> Result<Url, String> {
        if location.starts_with("http://") || location.starts_with("https://") {
            return Url::parse(location);
        }
        let scheme = if self.https { "https" } else { "http" };
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("{scheme}://{rest}"));
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            let base = self.path.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        Ok(Url {
            path,
            ..self.clone()
        })
    }
}

/// One response as far as the probe looks at it.
struct Exchange {
    status: u16,
    version_minor: u8,
    location: Option<String>,
    content_length: f64,
    last_modified: Option<f64>,
    body_len: usize,
    /// Kept only when `keep_body`.
    body: Vec<u8>,
}

/// Probes `target` (a URL; `http://` is assumed when the scheme is missing).
pub async fn probe(target: &str, m: &HttpModule, r: &mut Report) -> bool {
    for (name, help) in [
        (
            "probe_http_content_length",
            "Length of http content response",
        ),
        (
            "probe_http_uncompressed_body_length",
            "Length of uncompressed response body",
        ),
        ("probe_http_redirects", "The number of redirects"),
        (
            "probe_http_ssl",
            "Indicates if SSL was used for the final redirect",
        ),
        ("probe_http_status_code", "Response HTTP status code"),
        (
            "probe_http_version",
            "Returns the version of HTTP of the probe response",
        ),
        (
            "probe_failed_due_to_regex",
            "Indicates if probe failed due to regex",
        ),
    ] {
        r.register(name, help);
    }
    let target = if target.starts_with("http://") || target.starts_with("https://") {
        target.to_string()
    } else {
        format!("http://{target}")
    };
    let mut url = match Url::parse(&target) {
        Ok(u) => u,
        Err(e) => {
            r.log(|| format!("could not parse target URL: {e}"));
            return false;
        }
    };
    let resolved = resolve(&url.host, m.ip, r).await;
    let lookup = match &resolved {
        Ok((_, t)) => *t,
        Err(_) => r.value("probe_dns_lookup_time_seconds").unwrap_or(0.0),
    };
    r.add_labeled(DURATION, DURATION_HELP, "phase", "resolve", lookup);
    let Ok((mut ip, _)) = resolved else {
        return false;
    };
    for p in PHASES {
        r.register_labeled(DURATION, DURATION_HELP, "phase", p);
    }
    let keep_body = !m.fail_if_body_matches.is_empty() || !m.fail_if_body_not_matches.is_empty();
    let mut method = m.method.clone();
    let mut body = m.body.clone();
    let mut redirects = 0usize;
    let first_host = url.host.clone();
    let resp = loop {
        if url.https && !cfg!(feature = "tls") {
            r.log(|| "https needs a promlet built with the `tls` feature".into());
            r.set(
                "probe_http_ssl",
                "Indicates if SSL was used for the final redirect",
                0.0,
            );
            return false;
        }
        if url.host != first_host {
            let start = Instant::now();
            match super::candidates(&url.host, m.ip).await {
                Ok(a) if !a.is_empty() => {
                    ip = *a
                        .iter()
                        .find(|x| x.is_ipv4() == m.ip.prefer_v4)
                        .unwrap_or(&a[0])
                }
                Ok(_) | Err(_) => {
                    r.log(|| format!("cannot resolve redirect host {}", url.host));
                    return false;
                }
            }
            let t = start.elapsed().as_secs_f64();
            r.add_labeled(DURATION, DURATION_HELP, "phase", "resolve", t);
        }
        let host_header = m
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| url.authority());
        let addr = SocketAddr::new(ip, url.port());
        r.log(|| format!("making HTTP request to {addr}: {method} {}", url.path));
        let ex = match exchange(addr, &url, &host_header, &method, &body, m, keep_body, r).await {
            Ok(e) => e,
            Err(e) => {
                r.log(|| format!("error for HTTP request: {e}"));
                return false;
            }
        };
        let is_redirect = matches!(ex.status, 301 | 302 | 303 | 307 | 308) && ex.location.is_some();
        if !is_redirect {
            break ex;
        }
        redirects += 1;
        r.set(
            "probe_http_redirects",
            "The number of redirects",
            redirects as f64,
        );
        if !m.follow_redirects || redirects > MAX_REDIRECTS {
            r.log(|| "not following redirect".into());
            break ex;
        }
        let loc = ex.location.clone().unwrap_or_default();
        r.log(|| format!("received redirect to {loc}"));
        url = match url.join(&loc) {
            Ok(u) => u,
            Err(e) => {
                r.log(|| format!("bad redirect location: {e}"));
                return false;
            }
        };
        if matches!(ex.status, 301..=303) && method != "GET" && method != "HEAD" {
            method = "GET".into();
            body.clear();
        }
    };
    r.set(
        "probe_http_status_code",
        "Response HTTP status code",
        resp.status as f64,
    );
    r.set(
        "probe_http_content_length",
        "Length of http content response",
        resp.content_length,
    );
    r.set(
        "probe_http_uncompressed_body_length",
        "Length of uncompressed response body",
        resp.body_len as f64,
    );
    r.set(
        "probe_http_version",
        "Returns the version of HTTP of the probe response",
        if resp.version_minor == 0 { 1.0 } else { 1.1 },
    );
    if let Some(t) = resp.last_modified {
        r.set(
            "probe_http_last_modified_timestamp_seconds",
            "Returns the Last-Modified HTTP response header in unixtime",
            t,
        );
    }
    let mut success = if m.valid_status_codes.is_empty() {
        (200..300).contains(&resp.status)
    } else {
        m.valid_status_codes.contains(&resp.status)
    };
    if !success {
        r.log(|| format!("invalid HTTP response status code {}", resp.status));
    }
    if success && keep_body {
        let text = String::from_utf8_lossy(&resp.body);
        let bad = m.fail_if_body_matches.iter().find(|p| p.0.is_match(&text));
        let missing = m
            .fail_if_body_not_matches
            .iter()
            .find(|p| !p.0.is_match(&text));
        if let Some(p) = bad {
            r.log(|| format!("body matched regular expression {}", p.0.as_str()));
        }
        if let Some(p) = missing {
            r.log(|| format!("body did not match regular expression {}", p.0.as_str()));
        }
        success = bad.is_none() && missing.is_none();
        r.set(
            "probe_failed_due_to_regex",
            "Indicates if probe failed due to regex",
            if success { 0.0 } else { 1.0 },
        );
    }
    r.set(
        "probe_http_ssl",
        "Indicates if SSL was used for the final redirect",
        if url.https { 1.0 } else { 0.0 },
    );
    if success && m.fail_if_not_ssl && !url.https {
        r.log(|| "final request was not over SSL".into());
        success = false;
    }
    if success && m.fail_if_ssl && url.https {
        r.log(|| "final request was over SSL".into());
        success = false;
    }
    success
}

#[allow(clippy::too_many_arguments)]
async fn exchange(
    addr: SocketAddr,
    url: &Url,
    host_header: &str,
    method: &str,
    body: &str,
    m: &HttpModule,
    keep_body: bool,
    r: &mut Report,
) -> Result<Exchange, String> {
    let start = Instant::now();
    let stream = Async::<TcpStream>::connect(addr).await;
    r.add_labeled(
        DURATION,
        DURATION_HELP,
        "phase",
        "connect",
        start.elapsed().as_secs_f64(),
    );
    let stream = stream.map_err(|e| format!("dial tcp {addr}: {e}"))?;
    if !url.https {
        return exchange_on(stream, url, host_header, method, body, keep_body, m, r).await;
    }
    #[cfg(feature = "tls")]
    {
        let tls = m.tls_client.get(&m.tls_config)?;
        let (connector, name) = tls.connector(&url.host)?;
        let start = Instant::now();
        let stream = connector.connect(name, stream).await;
        r.add_labeled(
            DURATION,
            DURATION_HELP,
            "phase",
            "tls",
            start.elapsed().as_secs_f64(),
        );
        let stream = stream.map_err(|e| format!("tls: {e}"))?;
        report_handshake(stream.get_ref().1, r);
        exchange_on(stream, url, host_header, method, body, keep_body, m, r).await
    }
    #[cfg(not(feature = "tls"))]
    Err("https needs a promlet built with the `tls` feature".into())
}

/// blackbox's TLS gauges for a finished handshake.
#[cfg(feature = "tls")]
fn report_handshake(conn: &rustls::ClientConnection, r: &mut Report) {
    let facts = crate::tls::handshake_facts(conn);
    r.set_labeled(
        "probe_tls_version_info",
        "Returns the TLS version used or NaN when unknown",
        "version",
        facts.version,
        1.0,
    );
    r.set_labeled(
        "probe_tls_cipher_info",
        "Returns the TLS cipher negotiated during handshake",
        "cipher",
        facts.cipher,
        1.0,
    );
    if let Some(t) = facts.earliest_expiry {
        r.set(
            "probe_ssl_earliest_cert_expiry",
            "Returns last SSL chain expiry in unixtime",
            t as f64,
        );
        r.set(
            "probe_ssl_last_chain_expiry_timestamp_seconds",
            "Returns last SSL chain expiry in timestamp",
            t as f64,
        );
    }
}

/// The request and its response over a connected (plain or TLS) stream.
#[allow(clippy::too_many_arguments)]
async fn exchange_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    url: &Url,
    host_header: &str,
    method: &str,
    body: &str,
    keep_body: bool,
    m: &HttpModule,
    r: &mut Report,
) -> Result<Exchange, String> {
    let connected = Instant::now();
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: promlet/{}\r\n",
        url.path,
        crate::VERSION
    );
    for (n, v) in &m.headers {
        if !n.eq_ignore_ascii_case("host") {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    if !body.is_empty() || !matches!(method, "GET" | "HEAD") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    head.push_str(body);
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| format!("write request: {e}"))?;

    let mut raw: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8 << 10];
    let mut first_byte = None;
    let (mut ex, head_len, framing, gzip) = loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read response: {e}"))?;
        if n == 0 {
            return Err("connection closed before the response header (EOF)".into());
        }
        if first_byte.is_none() {
            let now = Instant::now();
            r.add_labeled(
                DURATION,
                DURATION_HELP,
                "phase",
                "processing",
                (now - connected).as_secs_f64(),
            );
            first_byte = Some(now);
        }
        raw.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&raw) {
            Ok(httparse::Status::Complete(len)) => {
                let mut ex = Exchange {
                    status: resp.code.unwrap_or(0),
                    version_minor: resp.version.unwrap_or(1),
                    location: None,
                    content_length: -1.0,
                    last_modified: None,
                    body_len: 0,
                    body: Vec::new(),
                };
                let mut framing = None;
                let mut chunked = false;
                let mut gzip = false;
                for h in resp.headers.iter() {
                    let v = String::from_utf8_lossy(h.value).trim().to_string();
                    let name = h.name.to_ascii_lowercase();
                    match name.as_str() {
                        "location" => ex.location = Some(v),
                        "content-length" => {
                            let n: usize = v.parse().map_err(|_| "bad Content-Length")?;
                            framing = Some(n);
                            ex.content_length = n as f64;
                        }
                        "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                        "content-encoding" => gzip = v.eq_ignore_ascii_case("gzip"),
                        "last-modified" => ex.last_modified = parse_http_date(&v),
                        _ => {}
                    }
                }
                if chunked {
                    framing = None;
                    ex.content_length = -1.0;
                }
                break (ex, len, (framing, chunked), gzip);
            }
            Ok(httparse::Status::Partial) if raw.len() < MAX_HEAD => continue,
            Ok(httparse::Status::Partial) => return Err("response header too large".into()),
            Err(e) => return Err(format!("malformed HTTP response: {e}")),
        }
    };
    let (length, chunked) = framing;
    let no_body = method == "HEAD" || matches!(ex.status, 100..=199 | 204 | 304);
    // Bodies are held only when they must be decoded or matched; otherwise counted.
    let hold = keep_body || chunked || gzip;
    let mut body_bytes: Vec<u8> = raw.split_off(head_len);
    let mut seen = body_bytes.len();
    if !hold {
        body_bytes.clear();
    }
    if !no_body {
        loop {
            if let Some(n) = length {
                if seen >= n {
                    break;
                }
            }
            if chunked && chunked_complete(&body_bytes) {
                break;
            }
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("read body: {e}"))?;
            if n == 0 {
                if length.is_some() || chunked {
                    return Err("unexpected EOF reading the body".into());
                }
                break;
            }
            seen += n;
            if hold {
                if body_bytes.len() + n > MAX_KEPT_BODY {
                    return Err(format!("body larger than {MAX_KEPT_BODY} bytes"));
                }
                body_bytes.extend_from_slice(&chunk[..n]);
            }
        }
    }
    if let Some(fb) = first_byte {
        r.add_labeled(
            DURATION,
            DURATION_HELP,
            "phase",
            "transfer",
            fb.elapsed().as_secs_f64(),
        );
    }
    if no_body {
        return Ok(ex);
    }
    if hold {
        let mut payload = if chunked {
            let mut out = Vec::new();
            dechunk(&body_bytes, &mut out)?;
            out
        } else {
            if let Some(n) = length {
                body_bytes.truncate(n);
            }
            body_bytes
        };
        if gzip {
            let mut out = Vec::new();
            gunzip(&payload, MAX_KEPT_BODY, &mut out)?;
            payload = out;
        }
        ex.body_len = payload.len();
        if keep_body {
            ex.body = payload;
        }
    } else {
        ex.body_len = length.map_or(seen, |n| n.min(seen));
    }
    Ok(ex)
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds.
fn parse_http_date(s: &str) -> Option<f64> {
    let f: Vec<&str> = s.split_whitespace().collect();
    if f.len() != 6 || f[5] != "GMT" {
        return None;
    }
    let day: i64 = f[1].parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == f[2])? as i64 + 1;
    let year: i64 = f[3].parse().ok()?;
    let t: Vec<i64> = f[4]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if t.len() != 3 || !(1..=31).contains(&day) {
        return None;
    }
    let days = crate::log::days_from_civil(year, month, day);
    Some((days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_and_redirects_join_like_go() {
        let u = Url::parse("http://h:8080/a/b?x=1#frag").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port(), u.path.as_str()),
            ("h", 8080, "/a/b?x=1")
        );
        assert_eq!(Url::parse("http://[::1]/").unwrap().host, "::1");
        assert_eq!(
            Url::parse("http://[::1]:9/").unwrap().authority(),
            "[::1]:9"
        );
        assert_eq!(Url::parse("https://h").unwrap().port(), 443);
        assert!(Url::parse("ftp://h/").is_err());
        assert!(Url::parse("http:///x").is_err());
        assert_eq!(u.join("/c").unwrap().path, "/c");
        assert_eq!(u.join("c").unwrap().path, "/a/c");
        assert_eq!(u.join("//o:1/p").unwrap().host, "o");
        assert!(u.join("https://o/p").unwrap().https);
        // Hostile targets parse or fail; they never panic.
        for bad in [
            "http://[",
            "http://[::1",
            "http://h:99999/",
            "http://@/",
            "http://h?x",
            "http://\u{e9}:1",
        ] {
            let _ = Url::parse(bad).map(|u| (u.authority(), u.port(), u.join("../..")));
        }
        assert_eq!(Url::parse("http://h?x").unwrap().path, "/?x");
    }

    #[test]
    fn http_dates_parse() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777.0)
        );
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), None);
    }
}
