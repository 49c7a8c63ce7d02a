//! The embedded web UI: one hand-written HTML page (CSS and vanilla JS inline, no framework,
//! nothing fetched from elsewhere) served at `/` and `/graph`, talking only to `/api/v1`.
//!
//! Owns: the page bytes, their gzip form (compressed once when the router is built, so a
//! request never compresses) and the cache validator. Must not touch: the API itself; the page
//! only calls the routes the agent already serves.
//!
//! Caching: `Cache-Control: no-cache` with a strong `ETag` (CRC-32 of the page): a browser
//! revalidates each load and gets a bodiless 304 until a new binary ships a different page,
//! so an upgrade never leaves a stale UI behind a max-age.

use super::{gzip, Request, Response};

/// The page source, embedded at compile time.
pub const INDEX_HTML: &str = include_str!("ui/index.html");

/// The page ready to serve: plain and gzip bodies and their validator.
pub struct Page {
    plain: &'static [u8],
    gzipped: Vec<u8>,
    etag: String,
}

impl Page {
    /// Compresses the embedded page (best ratio: done once per process).
    pub fn new() -> Page {
        let plain = INDEX_HTML.as_bytes();
        Page {
            plain,
            gzipped: gzip::gzip(plain),
            etag: format!("\"{:08x}\"", gzip::crc32(plain)),
        }
    }

    /// Size of the gzip body, as served to browsers.
    pub fn gzipped_len(&self) -> usize {
        self.gzipped.len()
    }

    /// The response to `req`: 304 if the client's copy is current, else the page, gzipped
    /// when the client accepts it.
    pub fn respond(&self, req: &Request) -> Response {
        let resp = Response::new(200)
            .header("Cache-Control", "no-cache")
            .header("ETag", self.etag.as_str())
            .header("Vary", "Accept-Encoding");
        let fresh = req.header("if-none-match").is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == self.etag || t.trim() == "*")
        });
        if fresh {
            return Response {
                status: 304,
                ..resp
            };
        }
        let resp = resp.header("Content-Type", "text/html; charset=utf-8");
        if req
            .header("accept-encoding")
            .is_some_and(gzip::accepts_gzip)
        {
            resp.header("Content-Encoding", "gzip")
                .body(self.gzipped.clone())
        } else {
            resp.body(self.plain.to_vec())
        }
    }
}

impl Default for Page {
    fn default() -> Self {
        Page::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: "/".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..Request::default()
        }
    }

    fn inflate_gzip(body: &[u8]) -> Vec<u8> {
        assert_eq!(&body[..3], &[0x1f, 0x8b, 8]);
        miniz_oxide::inflate::decompress_to_vec(&body[10..body.len() - 8]).unwrap()
    }

    #[test]
    fn gzip_body_inflates_to_the_page_and_stays_small() {
        let page = Page::new();
        let resp = page.respond(&request(&[("accept-encoding", "gzip, br")]));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.get_header("Content-Encoding"), Some("gzip"));
        assert_eq!(inflate_gzip(&resp.body), INDEX_HTML.as_bytes());
        assert!(page.gzipped_len() <= 100 * 1024, "{}", page.gzipped_len());
    }

    #[test]
    fn plain_body_without_accept_encoding() {
        let resp = Page::new().respond(&request(&[]));
        assert_eq!(resp.get_header("Content-Encoding"), None);
        assert_eq!(resp.body, INDEX_HTML.as_bytes());
        assert_eq!(
            resp.get_header("Content-Type"),
            Some("text/html; charset=utf-8")
        );
    }

    #[test]
    fn matching_etag_gets_empty_304() {
        let page = Page::new();
        let etag = page
            .respond(&request(&[]))
            .get_header("ETag")
            .unwrap()
            .to_string();
        let resp = page.respond(&request(&[("if-none-match", &format!("W/\"x\", {etag}"))]));
        assert_eq!(resp.status, 304);
        assert!(resp.body.is_empty());
        let stale = page.respond(&request(&[("if-none-match", "\"00000000\"")]));
        assert_eq!(stale.status, 200);
    }

    #[test]
    fn page_is_self_contained() {
        // Works offline: no external scripts, styles or fonts.
        for needle in ["http://", "https://", "<script src", "<link"] {
            let hits: Vec<_> = INDEX_HTML.match_indices(needle).collect();
            // The SVG namespace URI is an identifier, not a fetch.
            let allowed = hits
                .iter()
                .all(|(i, _)| INDEX_HTML[*i..].starts_with("http://www.w3.org/2000/svg"));
            assert!(allowed, "page references {needle}");
        }
    }
}
