//! The runtime under the executor: a single-threaded epoll reactor, timers and signals.
//!
//! Owns: [`block_on`] (polls a future and, while it is pending, waits in `epoll_wait` on the
//! calling thread: no helper thread), [`Async`] (a non-blocking fd registered once,
//! edge-triggered, with readiness bits), [`Timer`] (deadlines in a thread-local ordered map),
//! and [`Signals`] (sigaction + a self-pipe read through the reactor).
//! Must not touch: tasks and scheduling (async-executor's `LocalExecutor` runs on top of
//! `block_on`), or any protocol.
//!
//! Each thread that uses it gets its own epoll instance and an eventfd, created on first use.
//! Sources and timers belong to the thread that created them (`Async` and `Timer` are not
//! `Send`); wakers are `Send + Sync`: a wake from another thread writes the eventfd, but only
//! while the loop sleeps in `epoll_wait` — a wake on the loop's own thread (the common case:
//! one task waking another, or the reactor dispatching readiness) only sets a flag.
//!
//! Why edge-triggered: a source is added to epoll once (`EPOLLIN|EPOLLRDHUP|EPOLLET`) and never
//! re-armed; `EPOLLOUT` joins (one `EPOLL_CTL_MOD`) only when a write first has to wait, since
//! with it every ACK that frees send space is an edge that wakes the loop (measured with perf's
//! syscall tracepoints, curl per request on `/-/healthy`: 3.0 `epoll_wait`s per request with
//! it from the start, 2.2 without). Its readiness bits start set (optimistic: a fresh connection usually
//! has its request waiting) and are cleared only when an operation returns `WouldBlock`; a
//! waiter whose bit is clear is not woken before the kernel reports a new edge. A wake-up for
//! another reason therefore costs no syscall. Sources are not removed from epoll on drop:
//! closing the fd removes them (the slot's generation makes late events for it harmless);
//! [`Async::into_inner`] removes the registration, as the fd lives on.
//!
//! Timers cost no syscall: `epoll_wait`'s timeout is the earliest deadline, rounded up to a
//! millisecond (a timer fires up to 1 ms late, never early).
//!
//! Nesting: `block_on` may be called inside a future that `block_on` runs (start-up DNS
//! lookups do): the inner loop dispatches every source's and timer's events, and no
//! `RefCell` borrow is held while wakers or user code run.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

const READ: u8 = 1;
const WRITE: u8 = 2;

/// Events per `epoll_wait`; more wait for the next round.
const MAX_EVENTS: usize = 64;
/// Polls in a row without looking at epoll before the loop checks it anyway (without
/// waiting), so a future that keeps waking itself cannot starve I/O.
const MAX_POLLS_WITHOUT_IO: u32 = 32;
/// The eventfd's key in epoll (slot keys are below 2^63).
const WAKE_KEY: u64 = u64::MAX;
/// A source's registration until a write has to wait, and after.
const EVENTS_READ: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
const EVENTS_READ_WRITE: u32 = EVENTS_READ | libc::EPOLLOUT as u32;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// What a waker on another thread needs: the eventfd and whether the loop sleeps.
struct Shared {
    eventfd: OwnedFd,
    sleeping: AtomicBool,
}

/// One `block_on`'s wake flag.
struct Notify {
    notified: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // SeqCst on both sides: either the loop sees `notified` before it sleeps, or this
        // sees `sleeping` and writes the eventfd.
        if !self.notified.swap(true, SeqCst) && self.shared.sleeping.load(SeqCst) {
            let one = 1u64.to_ne_bytes();
            // SAFETY: writes 8 bytes from a live buffer to an fd this Arc keeps open.
            unsafe { libc::write(self.shared.eventfd.as_raw_fd(), one.as_ptr().cast(), 8) };
        }
    }
}

/// Readiness of one registered fd and who waits for it.
#[derive(Default)]
struct Source {
    ready: Cell<u8>,
    reader: Cell<Option<Waker>>,
    writer: Cell<Option<Waker>>,
    fd: RawFd,
    key: u64,
    /// Whether EPOLLOUT is in the registration (see [`Source::poll_ready`]).
    write_interest: Cell<bool>,
}

impl Source {
    fn poll_ready(&self, bit: u8, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.ready.get() & bit != 0 {
            return Poll::Ready(Ok(()));
        }
        if bit == WRITE && !self.write_interest.get() {
            // EPOLLOUT joins the registration only once a write had to wait: with it from the
            // start, every ACK that frees send-buffer space is an edge, and on a connection
            // whose response fit in one write each such edge woke the loop for nothing.
            // MOD re-checks readiness, so an edge that happened before it is not lost.
            let r = REACTOR.with(|r| {
                epoll_ctl(
                    r.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_MOD,
                    self.fd,
                    EVENTS_READ_WRITE,
                    self.key,
                )
            });
            if let Err(e) = r {
                return Poll::Ready(Err(e));
            }
            self.write_interest.set(true);
        }
        let slot = if bit == READ {
            &self.reader
        } else {
            &self.writer
        };
        let w = match slot.take() {
            Some(w) if w.will_wake(cx.waker()) => w,
            _ => cx.waker().clone(),
        };
        slot.set(Some(w));
        Poll::Pending
    }

    fn clear(&self, bit: u8) {
        self.ready.set(self.ready.get() & !bit);
    }

    /// Sets the bits an epoll event reports and wakes their waiters.
    fn dispatch(&self, events: u32) {
        let mut bits = 0;
        if events & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
        {
            bits |= READ;
        }
        if events & (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
            bits |= WRITE;
        }
        self.ready.set(self.ready.get() | bits);
        if bits & READ != 0 {
            if let Some(w) = self.reader.take() {
                w.wake();
            }
        }
        if bits & WRITE != 0 {
            if let Some(w) = self.writer.take() {
                w.wake();
            }
        }
    }
}

/// A slot of the source table; `generation` tells a late event for a freed slot apart.
struct Slot {
    generation: u32,
    source: Option<Rc<Source>>,
}

/// The thread's reactor.
struct Reactor {
    epoll: OwnedFd,
    shared: Arc<Shared>,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<u32>>,
    timers: RefCell<BTreeMap<(Instant, u64), Waker>>,
    next_timer_id: Cell<u64>,
}

thread_local! {
    static REACTOR: Reactor = Reactor::new().unwrap_or_else(|e| {
        // Without epoll nothing can run; this is the one place start-up cannot recover.
        panic!("cannot create the epoll reactor: {e}")
    });
}

fn key(index: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(index)
}

impl Reactor {
    fn new() -> io::Result<Reactor> {
        // SAFETY: plain syscalls; each fd is owned right after it is created.
        let epoll = unsafe { OwnedFd::from_raw_fd(cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
        let eventfd = unsafe {
            OwnedFd::from_raw_fd(cvt(libc::eventfd(
                0,
                libc::EFD_CLOEXEC | libc::EFD_NONBLOCK,
            ))?)
        };
        // Level-triggered: it is read (drained) whenever it is reported.
        epoll_ctl(
            epoll.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            eventfd.as_raw_fd(),
            libc::EPOLLIN as u32,
            WAKE_KEY,
        )?;
        Ok(Reactor {
            epoll,
            shared: Arc::new(Shared {
                eventfd,
                sleeping: AtomicBool::new(false),
            }),
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            timers: RefCell::new(BTreeMap::new()),
            next_timer_id: Cell::new(0),
        })
    }

    fn register(&self, fd: RawFd, write_interest: bool) -> io::Result<(u32, Rc<Source>)> {
        let (index, generation) = {
            let slots = self.slots.borrow();
            match self.free.borrow_mut().pop() {
                Some(i) => (i, slots[i as usize].generation),
                None => (slots.len() as u32, 0),
            }
        };
        let source = Rc::new(Source {
            ready: Cell::new(READ | WRITE),
            fd,
            key: key(index, generation),
            write_interest: Cell::new(write_interest),
            ..Source::default()
        });
        {
            let mut slots = self.slots.borrow_mut();
            match slots.get_mut(index as usize) {
                Some(s) => s.source = Some(source.clone()),
                None => slots.push(Slot {
                    generation: 0,
                    source: Some(source.clone()),
                }),
            }
        }
        let events = if write_interest {
            EVENTS_READ_WRITE
        } else {
            EVENTS_READ
        };
        if let Err(e) = epoll_ctl(
            self.epoll.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            fd,
            events,
            source.key,
        ) {
            self.release(index);
            return Err(e);
        }
        Ok((index, source))
    }

    /// Frees a slot; a later event carrying its old key finds another generation.
    fn release(&self, index: u32) {
        let mut slots = self.slots.borrow_mut();
        let s = &mut slots[index as usize];
        s.source = None;
        s.generation = s.generation.wrapping_add(1);
        self.free.borrow_mut().push(index);
    }

    fn source(&self, key: u64) -> Option<Rc<Source>> {
        let slots = self.slots.borrow();
        let s = slots.get((key & 0xffff_ffff) as usize)?;
        if u64::from(s.generation) != key >> 32 {
            return None;
        }
        s.source.clone()
    }

    /// Wakes every timer due at `now`.
    fn fire_timers(&self, now: Instant) {
        loop {
            let due = {
                let mut t = self.timers.borrow_mut();
                match t.first_key_value() {
                    Some((&(at, _), _)) if at <= now => t.pop_first(),
                    _ => None,
                }
            };
            match due {
                Some((_, w)) => w.wake(),
                None => return,
            }
        }
    }

    /// One round: waits for events or the next deadline (not at all without `notify` or
    /// when it is set), dispatches what epoll reports, fires due timers.
    fn react(&self, notify: Option<&Notify>) -> io::Result<()> {
        let timeout_ms = match self.timers.borrow().first_key_value() {
            None => -1,
            Some((&(at, _), _)) => {
                let d = at.saturating_duration_since(Instant::now());
                // Round up: waking early would only cost another round.
                let ms = d.as_nanos().div_ceil(1_000_000);
                ms.min(i32::MAX as u128) as libc::c_int
            }
        };
        self.shared.sleeping.store(true, SeqCst);
        let mut wait = notify.is_some_and(|n| !n.notified.load(SeqCst));
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
        let n = loop {
            // SAFETY: the buffer holds MAX_EVENTS events and outlives the call.
            let r = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    MAX_EVENTS as libc::c_int,
                    if wait { timeout_ms } else { 0 },
                )
            };
            match cvt(r) {
                Ok(n) => break n as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    // A signal (its handler wrote the self-pipe): look again without waiting.
                    wait = false;
                }
                Err(e) => {
                    self.shared.sleeping.store(false, SeqCst);
                    return Err(e);
                }
            }
        };
        self.shared.sleeping.store(false, SeqCst);
        for ev in &events[..n] {
            let (key, bits) = (ev.u64, ev.events);
            if key == WAKE_KEY {
                let mut buf = [0u8; 8];
                // SAFETY: reads 8 bytes into a live buffer; drains the counter.
                unsafe { libc::read(self.shared.eventfd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
            } else if let Some(s) = self.source(key) {
                s.dispatch(bits);
            }
        }
        self.fire_timers(Instant::now());
        Ok(())
    }
}

fn epoll_ctl(epoll: RawFd, op: libc::c_int, fd: RawFd, events: u32, key: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: key };
    // SAFETY: `ev` lives across the call.
    cvt(unsafe { libc::epoll_ctl(epoll, op, fd, &mut ev) }).map(|_| ())
}

/// Runs `fut` to completion on this thread, waiting in `epoll_wait` while it is pending.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut out = None;
    run_until(&mut |cx| match fut.as_mut().poll(cx) {
        Poll::Ready(v) => {
            out = Some(v);
            true
        }
        Poll::Pending => false,
    });
    match out {
        Some(v) => v,
        None => unreachable!("run_until returns once the future is ready"),
    }
}

/// Dispatches the I/O events and timers that are due, without waiting: for code that drives
/// futures by polling (`try_tick`) instead of running [`block_on`].
pub fn poll_io() -> io::Result<()> {
    REACTOR.with(|r| r.react(None))
}

/// The loop of [`block_on`], not generic (one copy in the binary).
#[inline(never)]
fn run_until(poll: &mut dyn FnMut(&mut Context<'_>) -> bool) {
    let shared = REACTOR.with(|r| r.shared.clone());
    let notify = Arc::new(Notify {
        notified: AtomicBool::new(true),
        shared,
    });
    let waker = Waker::from(notify.clone());
    let mut cx = Context::from_waker(&waker);
    let mut polls_without_io = 0;
    loop {
        if notify.notified.swap(false, SeqCst) {
            if poll(&mut cx) {
                return;
            }
            polls_without_io += 1;
        }
        // Due timers cost no syscall; they may wake the future.
        REACTOR.with(|r| r.fire_timers(Instant::now()));
        if notify.notified.load(SeqCst) && polls_without_io < MAX_POLLS_WITHOUT_IO {
            // Woken meanwhile (a task woke another, a timer fired): poll again at once.
            continue;
        }
        polls_without_io = 0;
        if let Err(e) = REACTOR.with(|r| r.react(Some(&notify))) {
            // epoll_wait fails only on a bad fd or buffer: a bug, not a runtime condition.
            panic!("epoll_wait failed: {e}");
        }
    }
}

/// An fd in non-blocking mode, registered with this thread's reactor.
pub struct Async<T: AsFd> {
    io: Option<T>,
    source: Rc<Source>,
    index: u32,
}

impl<T: AsFd> Async<T> {
    /// Puts `io` in non-blocking mode and registers it.
    pub fn new(io: T) -> io::Result<Async<T>> {
        rustix::io::ioctl_fionbio(io.as_fd(), true)?;
        Async::new_nonblocking(io)
    }

    /// Registers `io`, which is already non-blocking (e.g. from `accept4(SOCK_NONBLOCK)`).
    pub fn new_nonblocking(io: T) -> io::Result<Async<T>> {
        Async::register(io, false)
    }

    fn register(io: T, write_interest: bool) -> io::Result<Async<T>> {
        let fd = io.as_fd().as_raw_fd();
        let (index, source) = REACTOR.with(|r| r.register(fd, write_interest))?;
        Ok(Async {
            io: Some(io),
            source,
            index,
        })
    }

    pub fn get_ref(&self) -> &T {
        self.io.as_ref().expect("io is present until into_inner")
    }

    /// Mutable access; replacing the fd behind it would lose its registration.
    pub fn get_mut(&mut self) -> &mut T {
        self.io.as_mut().expect("io is present until into_inner")
    }

    /// Deregisters and returns the fd (still non-blocking).
    pub fn into_inner(mut self) -> io::Result<T> {
        let io = self.io.take().expect("io is present until into_inner");
        REACTOR.with(|r| {
            let fd = io.as_fd().as_raw_fd();
            epoll_ctl(r.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, 0, 0)
        })?;
        Ok(io)
    }

    /// Resolves when the fd is readable (or was, and no read has hit `WouldBlock` since).
    pub async fn readable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.source.poll_ready(READ, cx)).await
    }

    /// Resolves when the fd is writable (or was, and no write has hit `WouldBlock` since).
    pub async fn writable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.source.poll_ready(WRITE, cx)).await
    }

    /// Runs the read-side `op` until it does not return `WouldBlock`.
    pub async fn read_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io_with(READ, op).await
    }

    /// Runs the write-side `op` until it does not return `WouldBlock`.
    pub async fn write_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io_with(WRITE, op).await
    }

    async fn io_with<R>(&self, bit: u8, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        let io = self.get_ref();
        std::future::poll_fn(|cx| self.poll_op(bit, cx, || op(io))).await
    }

    /// Runs `op` if the fd may be ready; on `WouldBlock` clears the bit and waits.
    fn poll_op<R>(
        &self,
        bit: u8,
        cx: &mut Context<'_>,
        op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        poll_source(&self.source, bit, cx, op)
    }
}

impl<T: AsFd> Drop for Async<T> {
    fn drop(&mut self) {
        // Closing the fd (dropping `io`) takes it out of epoll; the slot is freed here.
        let _ = REACTOR.try_with(|r| r.release(self.index));
    }
}

// The fd is never pinned: moving an `Async` moves a handle, not kernel state.
impl<T: AsFd> Unpin for Async<T> {}

impl<T: AsFd> AsFd for Async<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<T: AsFd + std::fmt::Debug> std::fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Async").field(&self.io).finish()
    }
}

impl Async<TcpStream> {
    /// Connects without blocking: `connect(2)` on a non-blocking socket, then waits for
    /// writability and reads `SO_ERROR`.
    pub async fn connect<A: Into<SocketAddr>>(addr: A) -> io::Result<Async<TcpStream>> {
        use rustix::net::{AddressFamily, SocketFlags, SocketType};
        let addr = addr.into();
        let family = if addr.is_ipv4() {
            AddressFamily::INET
        } else {
            AddressFamily::INET6
        };
        let fd = rustix::net::socket_with(
            family,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?;
        let pending = match rustix::net::connect(&fd, &addr) {
            Ok(()) => false,
            Err(rustix::io::Errno::INPROGRESS) => true,
            Err(e) => return Err(e.into()),
        };
        // Writability is what a pending connect waits for: EPOLLOUT from the start.
        let stream = Async::register(TcpStream::from(fd), pending)?;
        if pending {
            // The optimistic bit says nothing yet: wait for the kernel's edge.
            stream.source.clear(WRITE);
            stream.writable().await?;
            if let Some(e) = rustix::net::sockopt::socket_error(stream.get_ref())?.err() {
                return Err(e.into());
            }
        }
        Ok(stream)
    }
}

impl Async<UdpSocket> {
    /// Binds a UDP socket to `addr`.
    pub fn bind<A: Into<SocketAddr>>(addr: A) -> io::Result<Async<UdpSocket>> {
        Async::new(UdpSocket::bind(addr.into())?)
    }

    /// Sends to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.write_with(|s| s.send(buf)).await
    }

    /// Receives from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with(|s| s.recv(buf)).await
    }

    pub async fn send_to<A: Into<SocketAddr>>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let addr = addr.into();
        self.write_with(|s| s.send_to(buf, addr)).await
    }

    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.read_with(|s| s.recv_from(buf)).await
    }
}

impl<T: AsFd + Read> futures_lite::AsyncRead for Async<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let source = this.source.clone();
        let io = this.get_mut();
        poll_source(&source, READ, cx, || io.read(buf))
    }
}

impl<T: AsFd + Write> futures_lite::AsyncWrite for Async<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let source = this.source.clone();
        let io = this.get_mut();
        poll_source(&source, WRITE, cx, || io.write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let source = this.source.clone();
        let io = this.get_mut();
        poll_source(&source, WRITE, cx, || io.flush())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// [`Async::poll_op`] for the trait impls, which hold `&mut T`.
fn poll_source<R>(
    source: &Source,
    bit: u8,
    cx: &mut Context<'_>,
    mut op: impl FnMut() -> io::Result<R>,
) -> Poll<io::Result<R>> {
    loop {
        match source.poll_ready(bit, cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {}
        }
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => source.clear(bit),
            r => return Poll::Ready(r),
        }
    }
}

/// A deadline on this thread's reactor; resolves to the instant it fired.
#[derive(Debug)]
pub struct Timer {
    when: Option<Instant>,
    id: u64,
    /// Whether (when, id) is in the reactor's map.
    registered: bool,
    /// Its map and id belong to the creating thread.
    _not_send: std::marker::PhantomData<Rc<()>>,
}

impl Timer {
    /// Fires after `d`.
    pub fn after(d: Duration) -> Timer {
        Timer::at(Instant::now() + d)
    }

    /// Fires at `at`.
    pub fn at(at: Instant) -> Timer {
        Timer {
            when: Some(at),
            id: REACTOR.with(|r| {
                let id = r.next_timer_id.get();
                r.next_timer_id.set(id + 1);
                id
            }),
            registered: false,
            _not_send: std::marker::PhantomData,
        }
    }

    /// Never fires.
    pub fn never() -> Timer {
        Timer {
            when: None,
            id: 0,
            registered: false,
            _not_send: std::marker::PhantomData,
        }
    }

    /// Re-arms to fire at `at`.
    pub fn set_at(&mut self, at: Instant) {
        self.deregister();
        if self.when.is_none() {
            *self = Timer::at(at);
        } else {
            self.when = Some(at);
        }
    }

    /// Re-arms to fire after `d`.
    pub fn set_after(&mut self, d: Duration) {
        self.set_at(Instant::now() + d);
    }

    fn deregister(&mut self) {
        if let (true, Some(at)) = (self.registered, self.when) {
            let _ = REACTOR.try_with(|r| r.timers.borrow_mut().remove(&(at, self.id)));
            self.registered = false;
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.deregister();
    }
}

impl Future for Timer {
    type Output = Instant;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Instant> {
        let Some(at) = self.when else {
            return Poll::Pending;
        };
        if Instant::now() >= at {
            self.deregister();
            return Poll::Ready(at);
        }
        let id = self.id;
        REACTOR.with(|r| {
            let mut t = r.timers.borrow_mut();
            let slot = t.entry((at, id));
            match slot {
                std::collections::btree_map::Entry::Occupied(mut o) => {
                    if !o.get().will_wake(cx.waker()) {
                        o.insert(cx.waker().clone());
                    }
                }
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(cx.waker().clone());
                }
            }
        });
        // A fired timer was removed from the map by the reactor: re-inserting it above is
        // right only while it is not due, which the check above guarantees.
        self.registered = true;
        Poll::Pending
    }
}

/// The write end of the signal self-pipe, for the handler (-1: none).
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    // Async-signal-safe: one write(2) of one byte; errno is restored for the code we
    // interrupted. A full pipe drops the signal (thousands are already waiting).
    // SAFETY: errno is thread-local; the fd is the pipe's write end or -1.
    unsafe {
        let errno = *libc::__errno_location();
        let fd = SIGNAL_PIPE.load(SeqCst);
        if fd >= 0 {
            let b = sig as u8;
            libc::write(fd, (&b as *const u8).cast(), 1);
        }
        *libc::__errno_location() = errno;
    }
}

/// Delivery of some signals as a stream of numbers, through a self-pipe: the handler writes
/// the signal number, the reactor reports the read end readable. One per process.
pub struct Signals {
    read: Async<OwnedFd>,
    _write: OwnedFd,
    signals: Vec<libc::c_int>,
}

impl Signals {
    /// Installs the handler for `signals` (SA_RESTART, so blocking syscalls elsewhere are not
    /// interrupted).
    pub fn new(signals: &[libc::c_int]) -> io::Result<Signals> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two fds, owned right after.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let read = Async::new_nonblocking(read)?;
        SIGNAL_PIPE.store(write.as_raw_fd(), SeqCst);
        for &sig in signals {
            // SAFETY: a zeroed sigaction with our handler; the handler is async-signal-safe.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                cvt(libc::sigaction(sig, &sa, std::ptr::null_mut()))?;
            }
        }
        Ok(Signals {
            read,
            _write: write,
            signals: signals.to_vec(),
        })
    }

    /// The next signal delivered.
    pub async fn recv(&self) -> io::Result<libc::c_int> {
        let mut b = [0u8; 1];
        loop {
            let n = self
                .read
                .read_with(|fd| rustix::io::read(fd, &mut b).map_err(io::Error::from))
                .await?;
            if n == 1 {
                return Ok(libc::c_int::from(b[0]));
            }
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        // Back to the default actions before the pipe closes.
        for &sig in &self.signals {
            // SAFETY: restores the default disposition.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
        SIGNAL_PIPE.store(-1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn timer_count() -> usize {
        REACTOR.with(|r| r.timers.borrow().len())
    }

    fn live_sources() -> usize {
        REACTOR.with(|r| {
            r.slots
                .borrow()
                .iter()
                .filter(|s| s.source.is_some())
                .count()
        })
    }

    #[test]
    fn read_after_would_block_waits_for_the_next_edge() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let s = Async::new(s).unwrap();
        let got = block_on(async {
            let mut buf = [0u8; 16];
            // Nothing sent yet: the optimistic read hits WouldBlock and clears the bit.
            let first = futures_lite::future::poll_once(s.read_with(|mut s| s.read(&mut buf)));
            assert!(first.await.is_none());
            assert_eq!(s.source.ready.get() & READ, 0);
            peer.write_all(b"hello").unwrap();
            let n = s.read_with(|mut s| s.read(&mut buf)).await.unwrap();
            buf[..n].to_vec()
        });
        assert_eq!(got, b"hello");
    }

    #[test]
    fn async_read_and_write_traits_carry_bytes_both_ways() {
        use futures_lite::{AsyncReadExt, AsyncWriteExt};
        let l = Async::new(TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let addr = l.get_ref().local_addr().unwrap();
        let out = block_on(async {
            let mut c = Async::<TcpStream>::connect(addr).await.unwrap();
            let (s, _) = l.read_with(|l| l.accept()).await.unwrap();
            let mut s = Async::new(s).unwrap();
            // Larger than the socket buffers: the writer must wait for the reader.
            let big = vec![7u8; 4 << 20];
            assert!(
                !s.source.write_interest.get(),
                "EPOLLOUT only once a write waits"
            );
            let writer = async {
                c.write_all(&big).await.unwrap();
                // It had to wait for the reader, so EPOLLOUT is registered now.
                assert!(c.source.write_interest.get());
                c.close().await.unwrap();
                drop(c);
            };
            let reader = async {
                let mut got = Vec::new();
                s.read_to_end(&mut got).await.unwrap();
                got
            };
            futures_lite::future::zip(writer, reader).await.1
        });
        assert_eq!(out.len(), 4 << 20);
        assert!(out.iter().all(|&b| b == 7));
    }

    #[test]
    fn timers_fire_in_deadline_order() {
        let order = Rc::new(RefCell::new(Vec::new()));
        let ex = async_executor::LocalExecutor::new();
        for (name, ms) in [("c", 30u64), ("a", 5), ("b", 15)] {
            let o = order.clone();
            ex.spawn(async move {
                Timer::after(Duration::from_millis(ms)).await;
                o.borrow_mut().push(name);
            })
            .detach();
        }
        let start = Instant::now();
        block_on(ex.run(Timer::after(Duration::from_millis(50))));
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert_eq!(*order.borrow(), ["a", "b", "c"]);
        assert_eq!(timer_count(), 0);
    }

    #[test]
    fn timer_set_at_moves_the_deadline_and_returns_it() {
        block_on(async {
            let mut t = Timer::never();
            assert!(futures_lite::future::poll_once(&mut t).await.is_none());
            let at = Instant::now() + Duration::from_millis(5);
            t.set_at(at);
            assert_eq!((&mut t).await, at);
            t.set_after(Duration::from_millis(1));
            assert!((&mut t).await >= at);
        });
        assert_eq!(timer_count(), 0);
    }

    #[test]
    fn dropped_timer_does_not_fire_or_stay_registered() {
        let fired = Rc::new(Cell::new(false));
        block_on(async {
            let f = fired.clone();
            let t = async move {
                Timer::after(Duration::from_millis(5)).await;
                f.set(true);
            };
            // Polled once (registered), then dropped by `or` when the other side wins.
            futures_lite::future::or(t, async {}).await;
            assert_eq!(timer_count(), 0);
            Timer::after(Duration::from_millis(20)).await;
        });
        assert!(!fired.get());
    }

    #[test]
    fn dropped_async_frees_its_slot() {
        let before = live_sources();
        let a = Async::new(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        assert_eq!(live_sources(), before + 1);
        drop(a);
        assert_eq!(live_sources(), before);
        // into_inner gives the socket back, deregistered, still usable.
        let b = Async::new(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let s = b.into_inner().unwrap();
        assert!(s.local_addr().is_ok());
        assert_eq!(live_sources(), before);
    }

    #[test]
    fn wake_from_another_thread_ends_the_wait() {
        let flag = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let f = flag.clone();
        block_on(std::future::poll_fn(move |cx| {
            if f.load(SeqCst) {
                return Poll::Ready(());
            }
            let (w, f) = (cx.waker().clone(), f.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                f.store(true, SeqCst);
                w.wake();
            });
            Poll::Pending
        }));
        assert!(flag.load(SeqCst));
        // No timer is pending: only the eventfd could have ended epoll_wait.
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn nested_block_on_runs_io_and_timers() {
        let l = Async::new(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let addr = l.get_ref().local_addr().unwrap();
        let got = block_on(async {
            Timer::after(Duration::from_millis(1)).await;
            // As start-up does: a synchronous lookup inside the running loop.
            let inner = block_on(async {
                let c = Async::<UdpSocket>::bind(([127, 0, 0, 1], 0)).unwrap();
                c.send_to(b"ping", addr).await.unwrap();
                let mut buf = [0u8; 8];
                let (n, _) = l.recv_from(&mut buf).await.unwrap();
                Timer::after(Duration::from_millis(1)).await;
                buf[..n].to_vec()
            });
            Timer::after(Duration::from_millis(1)).await;
            inner
        });
        assert_eq!(got, b"ping");
    }

    #[test]
    fn connect_to_a_closed_port_is_an_error() {
        // Bind then drop: the port was free a moment ago and nothing listens on it now.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = block_on(Async::<TcpStream>::connect(addr)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    }

    #[test]
    fn sighup_arrives_through_the_self_pipe() {
        let signals = Signals::new(&[libc::SIGHUP]).unwrap();
        let got = block_on(async {
            // SAFETY: the handler installed above catches it.
            unsafe { libc::raise(libc::SIGHUP) };
            signals.recv().await.unwrap()
        });
        assert_eq!(got, libc::SIGHUP);
        // Keep the handler: a stray SIGHUP later must not kill the test process.
        std::mem::forget(signals);
    }
}
