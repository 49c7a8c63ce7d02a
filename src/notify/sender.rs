//! The one outbound HTTP thread: POSTs JSON bodies with ureq, so the work loop never waits on
//! the network.
//!
//! Owns: the thread ("promlet-sender"), a bounded job channel into it and a result channel out.
//! The work thread only ever calls [`Sender::try_submit`] and [`Sender::try_recv`], neither of
//! which blocks. Must not touch: queues or retry policy (the caller decides what a failure
//! means).
//!
//! ureq's default resolver starts a short-lived thread per request whenever a timeout is set,
//! even for IP literals (DESIGN.md §2). [`SyncResolver`] resolves on this thread instead, so
//! the process stays at 3 threads; a DNS lookup is bounded by the system resolver's own
//! timeout, and only delays other deliveries, never the work loop.

use std::cell::{Cell, RefCell};
use std::net::ToSocketAddrs;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// Jobs waiting for the thread; a full channel refuses new jobs (the caller keeps them).
pub const JOB_CAPACITY: usize = 16;

/// One POST target.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: String,
    /// A ready `Authorization` header value.
    pub authorization: Option<String>,
    pub timeout: Duration,
}

/// A body to POST to each of `targets`.
#[derive(Debug)]
pub struct Job {
    pub id: u64,
    pub targets: Vec<Target>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// What happened to a [`Job`].
#[derive(Debug)]
pub struct Outcome {
    pub id: u64,
    /// Targets that answered 2xx.
    pub delivered: usize,
    /// One line per target that failed: `url: reason`.
    pub errors: Vec<String>,
}

/// Handle to the sender thread. Dropping it closes the job channel; the thread finishes the
/// job in hand and exits (it is not joined, so shutdown never waits on a slow peer).
pub struct Sender {
    jobs: SyncSender<Job>,
    outcomes: Receiver<Outcome>,
}

impl Sender {
    /// Starts the thread.
    pub fn start() -> std::io::Result<Sender> {
        let (jobs, job_rx) = mpsc::sync_channel::<Job>(JOB_CAPACITY);
        // Outcomes never outnumber jobs in flight, so this cannot fill while the work
        // thread reads it; unbounded would also do, bounded states the limit.
        let (out_tx, outcomes) = mpsc::sync_channel::<Outcome>(JOB_CAPACITY + 1);
        std::thread::Builder::new()
            .name("promlet-sender".into())
            .stack_size(256 * 1024)
            .spawn(move || run(job_rx, out_tx))?;
        Ok(Sender { jobs, outcomes })
    }

    /// Hands a job to the thread; gives it back when the channel is full or the thread died.
    pub fn try_submit(&self, job: Job) -> Result<(), Job> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(j) | TrySendError::Disconnected(j) => j,
        })
    }

    fn is_dead(&self) -> bool {
        matches!(
            self.outcomes.try_recv(),
            Err(std::sync::mpsc::TryRecvError::Disconnected)
        )
    }

    /// A finished job's outcome, if any.
    pub fn try_recv(&self) -> Option<Outcome> {
        self.outcomes.try_recv().ok()
    }
}

/// The one sender, shared by the Alertmanager notifier and the local receivers (webhooks):
/// starts its thread on first use, hands out job ids, and keeps outcomes until their owner
/// asks for them by id.
#[derive(Default)]
pub struct SharedSender {
    sender: RefCell<Option<Sender>>,
    stash: RefCell<Vec<Outcome>>,
    next_id: Cell<u64>,
}

impl SharedSender {
    /// Queues a POST of `body` to `targets`; returns its id, or None when the channel is full
    /// or the thread cannot start (the caller retries later).
    pub fn submit(
        &self,
        targets: Vec<Target>,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Option<u64> {
        let mut slot = self.sender.borrow_mut();
        if slot.is_none() {
            match Sender::start() {
                Ok(s) => *slot = Some(s),
                Err(e) => {
                    crate::log::error(&format!("cannot start the sender thread: {e}"));
                    return None;
                }
            }
        }
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        let job = Job {
            id,
            targets,
            content_type,
            body,
        };
        match slot.as_ref()?.try_submit(job) {
            Ok(()) => Some(id),
            Err(_) => {
                // Full, or the thread died: a dead one is replaced at the next submit.
                if slot.as_ref().is_some_and(|s| s.is_dead()) {
                    *slot = None;
                }
                None
            }
        }
    }

    /// The outcome of job `id`, once it is done.
    pub fn take(&self, id: u64) -> Option<Outcome> {
        let mut stash = self.stash.borrow_mut();
        if let Some(s) = self.sender.borrow().as_ref() {
            while let Some(o) = s.try_recv() {
                stash.push(o);
            }
        }
        let i = stash.iter().position(|o| o.id == id)?;
        Some(stash.swap_remove(i))
    }

    /// Whether the thread was started (tests).
    pub fn started(&self) -> bool {
        self.sender.borrow().is_some()
    }
}

fn run(jobs: Receiver<Job>, outcomes: SyncSender<Outcome>) {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .user_agent(concat!("promlet/", env!("CARGO_PKG_VERSION")))
        .build();
    let agent = ureq::Agent::with_parts(config, DefaultConnector::default(), SyncResolver);
    while let Ok(job) = jobs.recv() {
        let mut out = Outcome {
            id: job.id,
            delivered: 0,
            errors: Vec::new(),
        };
        for t in &job.targets {
            match post(&agent, t, job.content_type, &job.body) {
                Ok(()) => out.delivered += 1,
                Err(e) => out.errors.push(format!("{}: {e}", t.url)),
            }
        }
        if outcomes.send(out).is_err() {
            return;
        }
    }
}

fn post(agent: &ureq::Agent, t: &Target, content_type: &str, body: &[u8]) -> Result<(), String> {
    let mut req = agent
        .post(&t.url)
        .config()
        .timeout_global(Some(t.timeout))
        .build()
        .header("Content-Type", content_type);
    if let Some(a) = &t.authorization {
        req = req.header("Authorization", a);
    }
    let mut resp = req.send(body).map_err(|e| e.to_string())?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    // A short excerpt of the body says why (Alertmanager explains 400s).
    let why = resp
        .body_mut()
        .with_config()
        .limit(512)
        .read_to_string()
        .unwrap_or_default();
    Err(format!("HTTP {}: {}", status.as_u16(), why.trim()))
}

/// `Basic base64(user:pass)`.
pub fn basic_authorization(user: &str, pass: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{pass}");
    let mut out = String::from("Basic ");
    for chunk in raw.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Resolves on the calling (sender) thread; see the module doc.
#[derive(Debug)]
struct SyncResolver;

impl Resolver for SyncResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().ok_or(ureq::Error::HostNotFound)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(80);
        let mut out = self.empty();
        for a in (host, port).to_socket_addrs()?.take(16) {
            out.push(a);
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_authorization_is_rfc7617_base64() {
        assert_eq!(
            basic_authorization("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic_authorization("a", ""), "Basic YTo=");
        assert_eq!(basic_authorization("ab", "c"), "Basic YWI6Yw==");
    }

    #[test]
    fn refused_connection_is_an_error_outcome_not_a_hang() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = Sender::start().unwrap();
        let job = Job {
            id: 7,
            targets: vec![Target {
                url: format!("http://127.0.0.1:{port}/api/v2/alerts"),
                authorization: None,
                timeout: Duration::from_secs(2),
            }],
            content_type: "application/json",
            body: b"[]".to_vec(),
        };
        s.try_submit(job).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let out = loop {
            if let Some(o) = s.try_recv() {
                break o;
            }
            assert!(std::time::Instant::now() < deadline, "no outcome");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!((out.id, out.delivered, out.errors.len()), (7, 0, 1));
    }
}
