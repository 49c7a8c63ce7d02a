//! Method + path dispatch.
//!
//! A route is an exact path (`/metrics`) or a prefix ending in `*` (`/api/v1/label/*`, the
//! handler reads the rest of `req.path`). Exact routes win over prefixes, longer prefixes over
//! shorter ones. A path that exists with another method gets 405 with `Allow`; HEAD is served
//! by the GET route (the server drops the body). Other modules add their routes at start-up.

use super::{Request, Response};
use std::rc::Rc;

/// What a route runs. Handlers are synchronous: all work happens on the one work thread, and
/// a handler that needs shared state captures an `Rc<RefCell<..>>`.
pub type Handler = Rc<dyn Fn(&Request) -> Response>;

struct Route {
    methods: &'static [&'static str],
    pattern: &'static str,
    handler: Handler,
}

impl Route {
    /// Match quality: None, or Some(rank) where a higher rank is more specific.
    fn rank(&self, path: &str) -> Option<usize> {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix).then_some(prefix.len()),
            None => (self.pattern == path).then_some(usize::MAX),
        }
    }
}

/// The routing table. See the module docs.
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// Adds a route for `methods` on `pattern`.
    pub fn route(
        &mut self,
        methods: &'static [&'static str],
        pattern: &'static str,
        handler: impl Fn(&Request) -> Response + 'static,
    ) -> &mut Router {
        self.routes.push(Route {
            methods,
            pattern,
            handler: Rc::new(handler),
        });
        self
    }

    pub fn get(
        &mut self,
        pattern: &'static str,
        handler: impl Fn(&Request) -> Response + 'static,
    ) -> &mut Router {
        self.route(&["GET"], pattern, handler)
    }

    /// The most specific route for the path, then 405 or 404 as appropriate.
    pub fn handle(&self, req: &Request) -> Response {
        self.dispatch(req).1
    }

    /// Like [`Router::handle`], also returning the matched route pattern ("" for 404/405), a
    /// bounded label for request counters.
    pub fn dispatch(&self, req: &Request) -> (&'static str, Response) {
        let method = if req.method == "HEAD" {
            "GET"
        } else {
            req.method.as_str()
        };
        let mut best: Option<(usize, &Route)> = None;
        let mut allowed: Vec<&'static str> = Vec::new();
        for r in &self.routes {
            let Some(rank) = r.rank(&req.path) else {
                continue;
            };
            if r.methods.contains(&method) || r.methods.contains(&req.method.as_str()) {
                if best.is_none_or(|(b, _)| rank > b) {
                    best = Some((rank, r));
                }
            } else {
                allowed.extend(r.methods.iter().copied());
            }
        }
        if let Some((_, r)) = best {
            return (r.pattern, (r.handler)(req));
        }
        if allowed.is_empty() {
            return ("", Response::text(404, "404 page not found\n"));
        }
        if allowed.contains(&"GET") {
            allowed.push("HEAD");
        }
        allowed.sort_unstable();
        allowed.dedup();
        let resp = Response::text(405, "method not allowed\n").header("Allow", allowed.join(", "));
        ("", resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            ..Request::default()
        }
    }

    fn router() -> Router {
        let mut r = Router::new();
        r.get("/metrics", |_| Response::text(200, "metrics"));
        r.route(&["POST", "PUT"], "/-/reload", |_| {
            Response::text(200, "reloaded")
        });
        r.get("/api/v1/*", |_| Response::text(200, "api"));
        r.get("/api/v1/label/*", |q| Response::text(200, q.path.clone()));
        r
    }

    #[test]
    fn exact_and_most_specific_prefix_routes_win() {
        let r = router();
        assert_eq!(r.handle(&req("GET", "/metrics")).body, b"metrics");
        assert_eq!(r.handle(&req("GET", "/api/v1/query")).body, b"api");
        assert_eq!(
            r.handle(&req("GET", "/api/v1/label/job/values")).body,
            b"/api/v1/label/job/values"
        );
    }

    #[test]
    fn head_uses_the_get_route() {
        assert_eq!(router().handle(&req("HEAD", "/metrics")).status, 200);
    }

    #[test]
    fn wrong_method_is_405_with_allow_and_unknown_path_is_404() {
        let r = router();
        let resp = r.handle(&req("GET", "/-/reload"));
        assert_eq!(resp.status, 405);
        assert_eq!(resp.get_header("allow"), Some("POST, PUT"));
        let resp = r.handle(&req("DELETE", "/metrics"));
        assert_eq!(resp.get_header("allow"), Some("GET, HEAD"));
        assert_eq!(r.handle(&req("GET", "/nope")).status, 404);
    }
}
