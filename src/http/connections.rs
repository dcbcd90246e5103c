//! Connection timeouts and the table of open connections.
//!
//! A connection may keep the server waiting for its client only so long
//! (`config::Timeouts`): for a request head, counted from the connection's
//! start or from the head's first byte; between the bytes of a request body;
//! and, with no request in flight, between any two bytes in either direction
//! (keep-alive idling, or a client that stopped reading its response). While
//! every request in flight waits for the server (a `/sync` long-poll, a
//! commit, an outbound fetch) no clock runs. One watchdog per connection
//! ([`expired`]) covers plain HTTP/1.1, HTTPS and HTTP/2 alike, because it
//! watches the bytes under TLS ([`Tracked`]) and the requests above it
//! ([`ConnState::begin_request`], [`ConnState::begin_body`]).
//!
//! The [`Table`] knows every open connection so that, when all
//! `max_connections` slots are taken, the one idle the longest can be closed
//! to admit a new one (what nginx does with keep-alive connections): a crowd
//! of silent sockets cannot lock clients out.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::Timeouts;

/// One connection's clocks and counters, shared by its I/O wrapper, its
/// requests, its watchdog and the table (all on the event loop).
pub struct ConnState {
    /// The last byte read or written.
    last_io: Cell<Instant>,
    /// When the head now being read began; `None` while no head is due
    /// (a request is in flight, or the connection idles after one).
    head_started: Cell<Option<Instant>>,
    /// Requests in their handler.
    requests: Cell<u32>,
    /// Of those, the ones reading their body (the client's turn).
    reading_bodies: Cell<u32>,
    /// HTTP/2: bytes between requests are control frames (pings, window
    /// updates), not the start of a head.
    h2: Cell<bool>,
    /// Chosen to close so a new connection can have its slot.
    evicted: Cell<bool>,
    /// Wakes the watchdog when its deadline may have moved earlier.
    poke: Notify,
    /// The table's [`Table::became_idle`].
    became_idle: Rc<Notify>,
}

impl ConnState {
    fn new(now: Instant, became_idle: Rc<Notify>) -> ConnState {
        ConnState {
            last_io: Cell::new(now),
            head_started: Cell::new(Some(now)),
            requests: Cell::new(0),
            reading_bodies: Cell::new(0),
            h2: Cell::new(false),
            evicted: Cell::new(false),
            poke: Notify::new(),
            became_idle,
        }
    }

    pub(crate) fn set_h2(&self) {
        self.h2.set(true);
    }

    fn on_read(&self) {
        let now = Instant::now();
        self.last_io.set(now);
        if self.requests.get() == 0 && self.head_started.get().is_none() && !self.h2.get() {
            self.head_started.set(Some(now));
            self.poke.notify_one();
        }
    }

    fn on_write(&self) {
        self.last_io.set(Instant::now());
    }

    /// Marks a request in its handler until the guard drops; while it is
    /// there (and not reading its body) the connection waits for the server.
    pub(crate) fn begin_request(self: &Rc<Self>) -> RequestGuard {
        self.requests.set(self.requests.get() + 1);
        self.head_started.set(None);
        RequestGuard(self.clone())
    }

    /// Marks a request body being read until the guard drops: the client
    /// must keep sending.
    pub fn begin_body(&self) -> BodyGuard<'_> {
        self.reading_bodies.set(self.reading_bodies.get() + 1);
        self.last_io.set(Instant::now());
        self.poke.notify_one();
        BodyGuard(self)
    }

    /// When the connection is to close, if nothing happens before; `None`
    /// while it waits for the server.
    fn deadline(&self, t: &Timeouts) -> Option<Instant> {
        if self.evicted.get() {
            return Some(Instant::now());
        }
        let last_io = self.last_io.get();
        if self.reading_bodies.get() > 0 {
            return Some(last_io + t.body_read);
        }
        if self.requests.get() > 0 {
            return None;
        }
        let idle = last_io + t.idle;
        Some(match self.head_started.get() {
            Some(head) => idle.min(head + t.header_read),
            None => idle,
        })
    }
}

pub(crate) struct RequestGuard(Rc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let s = &self.0;
        s.requests.set(s.requests.get().saturating_sub(1));
        // The idle clock starts when the response does, not when the
        // request last sent a byte (a long-poll may have waited minutes).
        s.last_io.set(Instant::now());
        s.poke.notify_one();
        if s.requests.get() == 0 {
            s.became_idle.notify_one();
        }
    }
}

pub struct BodyGuard<'a>(&'a ConnState);

impl Drop for BodyGuard<'_> {
    fn drop(&mut self) {
        self.0.reading_bodies.set(self.0.reading_bodies.get().saturating_sub(1));
    }
}

/// Resolves when the connection has kept the server waiting too long (or
/// was evicted); the caller then closes it.
pub(crate) async fn expired(state: &ConnState, t: &Timeouts) {
    loop {
        match state.deadline(t) {
            Some(d) if d <= Instant::now() => return,
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(d) => {}
                    _ = state.poke.notified() => {}
                }
            }
            None => state.poke.notified().await,
        }
    }
}

/// The open connections.
#[derive(Default)]
pub(crate) struct Table {
    conns: RefCell<HashMap<u64, Rc<ConnState>>>,
    next_id: Cell<u64>,
    /// Poked when a connection's last request finishes: one more
    /// connection that could be evicted.
    pub(crate) became_idle: Rc<Notify>,
}

impl Table {
    /// Registers a connection accepted now; it leaves the table when the
    /// returned entry drops.
    pub(crate) fn open(self: &Rc<Self>) -> Entry {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let state = Rc::new(ConnState::new(Instant::now(), self.became_idle.clone()));
        self.conns.borrow_mut().insert(id, state.clone());
        Entry { table: self.clone(), id, state }
    }

    /// Asks the connection idle the longest (no request in flight) to
    /// close; false when every connection has a request in flight.
    pub(crate) fn evict_oldest_idle(&self) -> bool {
        let conns = self.conns.borrow();
        let oldest = conns
            .values()
            .filter(|c| c.requests.get() == 0 && !c.evicted.get())
            .min_by_key(|c| c.last_io.get());
        match oldest {
            Some(c) => {
                c.evicted.set(true);
                c.poke.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A connection's place in the [`Table`].
pub(crate) struct Entry {
    table: Rc<Table>,
    id: u64,
    pub(crate) state: Rc<ConnState>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.table.conns.borrow_mut().remove(&self.id);
    }
}

/// A socket whose reads and writes reset its connection's clocks. It sits
/// under TLS, so a handshake and encrypted traffic count as traffic.
pub(crate) struct Tracked<I> {
    io: I,
    state: Rc<ConnState>,
}

impl<I> Tracked<I> {
    pub(crate) fn new(io: I, state: Rc<ConnState>) -> Tracked<I> {
        Tracked { io, state }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.on_read();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.state.on_write();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.state.on_write();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            body_read: Duration::from_secs(20),
        }
    }

    #[test]
    fn each_phase_has_its_own_clock_and_waiting_for_the_server_has_none() {
        let t = timeouts();
        let table = Rc::new(Table::default());
        let entry = table.open();
        let s = &entry.state;
        let start = s.last_io.get();
        assert_eq!(s.deadline(&t), Some(start + t.header_read), "a fresh connection owes a head");
        let request = s.begin_request();
        assert_eq!(s.deadline(&t), None, "the handler's turn");
        {
            let _body = s.begin_body();
            let d = s.deadline(&t).expect("the client's turn");
            assert!(d >= start + t.body_read && d < start + t.idle, "{d:?}");
        }
        assert_eq!(s.deadline(&t), None);
        // A long wait for the server (a long-poll) leaves no debt behind.
        s.last_io.set(start - Duration::from_secs(300));
        let before = Instant::now();
        drop(request);
        let d = s.deadline(&t).expect("idle");
        assert!(d >= before + t.idle, "idling starts with the response");
        s.on_read();
        let d = s.deadline(&t).expect("head");
        assert!(d >= before + t.header_read && d < before + t.idle, "a new head started");
    }

    #[test]
    fn the_oldest_idle_connection_is_evicted_never_a_busy_one() {
        let table = Rc::new(Table::default());
        let busy = table.open();
        let _request = busy.state.begin_request();
        let base = Instant::now();
        busy.state.last_io.set(base - Duration::from_secs(10));
        let old = table.open();
        old.state.last_io.set(base - Duration::from_secs(5));
        let young = table.open();
        young.state.last_io.set(base);
        assert!(table.evict_oldest_idle());
        assert!(old.state.evicted.get() && !young.state.evicted.get() && !busy.state.evicted.get());
        assert_eq!(old.state.deadline(&timeouts()).map(|d| d <= Instant::now()), Some(true));
        assert!(table.evict_oldest_idle());
        assert!(!table.evict_oldest_idle(), "only the busy one is left");
        drop(old);
        assert_eq!(table.conns.borrow().len(), 2);
    }
}
