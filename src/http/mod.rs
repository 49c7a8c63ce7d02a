//! The HTTP/1.1 server on `Async<TcpListener>` + httparse, with limits and timeouts, and routing.
//!
//! Owns: the wire protocol ([`server`]), the [`Request`]/[`Response`] types handlers see,
//! form and query-string decoding ([`form`]), method + path dispatch ([`router`]) and the
//! embedded web UI page ([`ui`]).
//! Must not touch: evaluating anything itself; handlers call into other modules.
//!
//! Why not tiny_http: it starts a thread per connection and has no header limit or read timeout
//! (DESIGN.md §3). This server runs every connection as a task on the caller's thread.

pub mod api_v1;
pub mod bcrypt;
mod blowfish_pi;
pub mod deflate;
pub mod federate;
pub mod form;
pub mod gzip;
pub mod json;
pub mod router;
pub mod server;
pub mod ui;
pub mod webconfig;

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

pub use form::{parse_urlencoded, percent_decode, FormError};
pub use router::Router;
pub use server::{answer_bytes, serve, Limits, Server, ServerStats, Shutdown};

/// One parsed request, as handlers see it.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The method as sent (`GET`, `POST`, ...).
    pub method: String,
    /// The percent-decoded path, without the query string.
    pub path: String,
    /// The raw query string after `?` (not decoded), or empty.
    pub query: String,
    /// Header names lower-cased, values as sent, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Form parameters the way Go's `Request.ParseForm` builds `r.Form`: the
    /// `application/x-www-form-urlencoded` body of a POST/PUT/PATCH first, then the query
    /// string. Repeated names (`match[]`) are kept, in order.
    pub fn params(&self) -> Result<Vec<(String, String)>, FormError> {
        let mut out = Vec::new();
        let is_form = self
            .header("content-type")
            .map(|ct| {
                ct.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
            .unwrap_or(false);
        if is_form && matches!(self.method.as_str(), "POST" | "PUT" | "PATCH") {
            let body = std::str::from_utf8(&self.body).map_err(|_| FormError::InvalidUtf8)?;
            out = parse_urlencoded(body)?;
        }
        out.extend(parse_urlencoded(&self.query)?);
        Ok(out)
    }

    /// The first value of form parameter `name` (body before query), like Go's `FormValue`.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params()
            .ok()?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

/// A response: status, headers and a body sent with `Content-Length`.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// Extra headers; the server adds `Content-Length` and `Connection` itself.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Set by [`Response::later`]: the real response, still being computed.
    pub deferred: Option<Deferred>,
}

/// A response that needs I/O first (a `/probe`): handlers stay synchronous and return this;
/// the server awaits it on the same thread while the connection waits, so other requests
/// and the collection loop keep running.
#[derive(Clone)]
pub struct Deferred(Rc<RefCell<Option<PendingResponse>>>);

/// The future behind a [`Deferred`].
pub type PendingResponse = Pin<Box<dyn Future<Output = Response>>>;

impl Deferred {
    /// The future, once (None if already taken).
    pub fn take(&self) -> Option<PendingResponse> {
        self.0.borrow_mut().take()
    }
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deferred")
    }
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            deferred: None,
        }
    }

    /// A response the server awaits before sending (see [`Deferred`]).
    pub fn later(fut: impl Future<Output = Response> + 'static) -> Response {
        let mut r = Response::new(200);
        r.deferred = Some(Deferred(Rc::new(RefCell::new(Some(Box::pin(fut))))));
        r
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.into().into_bytes())
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Response {
        self.body = body;
        self
    }

    /// The value of header `name` (case-insensitive), if set.
    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The reason phrase for the status codes promlet sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        499 => "Client Closed Request",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, query: &str, ct: Option<&str>, body: &str) -> Request {
        Request {
            method: method.into(),
            path: "/api/v1/series".into(),
            query: query.into(),
            headers: ct
                .map(|c| vec![("content-type".to_string(), c.to_string())])
                .unwrap_or_default(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn params_put_form_body_before_query_and_keep_repeats() {
        let r = req(
            "POST",
            "match[]=c&start=1",
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            "match[]=a&match[]=b%7Bx%3D%22y%22%7D",
        );
        let p = r.params().unwrap();
        let m: Vec<_> = p
            .iter()
            .filter(|(n, _)| n == "match[]")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(m, vec!["a", "b{x=\"y\"}", "c"]);
        assert_eq!(r.param("start").as_deref(), Some("1"));
    }

    #[test]
    fn params_ignore_body_of_get_and_of_other_content_types() {
        let r = req(
            "GET",
            "q=1",
            Some("application/x-www-form-urlencoded"),
            "q=2",
        );
        assert_eq!(r.param("q").as_deref(), Some("1"));
        let r = req("POST", "", Some("application/json"), "q=2");
        assert_eq!(r.param("q"), None);
    }

    #[test]
    fn header_lookup_is_case_insensitive() {
        let r = req("GET", "", Some("text/plain"), "");
        assert_eq!(r.header("Content-Type"), Some("text/plain"));
        let resp = Response::text(200, "x").header("X-A", "1");
        assert_eq!(resp.get_header("x-a"), Some("1"));
    }
}
