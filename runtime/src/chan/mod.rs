//! Multi-producer multi-consumer channels for tasks and threads.
//!
//! Shaped like crossbeam's: [`bounded`] and [`unbounded`] return a
//! ([`Sender`], [`Receiver`]) pair, both `Clone`. A blocking call parks the
//! calling task (its worker runs other tasks meanwhile) or, on a plain
//! thread, blocks the thread, so tasks and threads can talk to each other.
//! The channel disconnects when the last sender or the last receiver is
//! dropped.
//!
//! ```
//! # use growstack_runtime as growstack;
//! let rt = growstack::Runtime::new()?;
//! let (tx, rx) = growstack::chan::bounded(16);
//! for i in 0..4u64 {
//!     let tx = tx.clone();
//!     rt.spawn(move || tx.send(i * 10).unwrap());
//! }
//! drop(tx);
//! // A plain thread receives until every sender is gone.
//! let mut got: Vec<u64> = rx.iter().collect();
//! got.sort();
//! assert_eq!(got, [0, 10, 20, 30]);
//! # Ok::<(), std::io::Error>(())
//! ```

mod error;
mod select;
pub(crate) mod select_state;
/// The atomics the select token (`select_state`) is written against:
/// `core`'s here, loom's when `runtime/tests/loom.rs` includes it.
mod atomic {
    pub(crate) use core::sync::atomic::{AtomicUsize, Ordering};
}

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[doc(inline)]
pub use crate::select;
use crate::spin::{SpinGuard, SpinLock};
use crate::wait::{Completion, Dismissed, WaitList, Waiter, Woken};
pub use error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
#[doc(hidden)]
pub use select::{Arm, Mode, RecvArm, SendArm, select};

use crate::task::{ParkedOn, park_releasing};

/// A channel holding at most `cap` messages: `send` blocks while it is full.
///
/// ```
/// # use growstack_runtime as growstack;
/// let (tx, rx) = growstack::chan::bounded(1);
/// tx.send(1).unwrap();
/// assert!(tx.try_send(2).is_err()); // full
/// assert_eq!(rx.recv(), Ok(1));
/// ```
///
/// `bounded(0)` is a rendezvous channel, Go's `make(chan T)`: it holds no
/// message, so `send` returns only once a receiver has taken its message
/// from its hands, and `try_send` succeeds only if a receiver is waiting.
///
/// ```
/// # use growstack_runtime as growstack;
/// let (tx, rx) = growstack::chan::bounded(0);
/// assert!(tx.try_send(1).is_err()); // nobody is receiving
/// let sender = std::thread::spawn(move || tx.send(2));
/// assert_eq!(rx.recv(), Ok(2)); // meets the sender
/// sender.join().unwrap().unwrap();
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    new(Some(cap))
}

/// A channel without a capacity limit: `send` never blocks.
///
/// ```
/// # use growstack_runtime as growstack;
/// let (tx, rx) = growstack::chan::unbounded();
/// for i in 0..1000 {
///     tx.send(i).unwrap();
/// }
/// drop(tx);
/// assert_eq!(rx.iter().sum::<i32>(), 499_500);
/// ```
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    new(None)
}

fn new<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        inner: SpinLock::new(Inner {
            queue: VecDeque::new(),
            cap,
            senders: 1,
            receivers: 1,
            recv_wait: WaitList::default(),
            send_wait: WaitList::default(),
        }),
    });
    (
        Sender {
            chan: Arc::clone(&chan),
        },
        Receiver { chan },
    )
}

struct Chan<T> {
    inner: SpinLock<Inner<T>>,
}

impl<T> Chan<T> {
    fn lock(&self) -> SpinGuard<'_, Inner<T>> {
        self.inner.lock()
    }

    /// What a task blocked on this channel waits for (its dump).
    fn parked_on(&self, recv: bool) -> ParkedOn {
        let elem = core::any::type_name::<T>();
        let chan = core::ptr::from_ref(self) as usize;
        if recv {
            ParkedOn::Recv { elem, chan }
        } else {
            ParkedOn::Send { elem, chan }
        }
    }
}

/// The channel's state. Receivers wait only while the queue is empty, and
/// senders only while it is full: a message meets a waiting receiver
/// before it would enter the queue, and a slot freed in a full queue is
/// filled from a waiting sender at once. A rendezvous channel (capacity
/// 0) is always full and empty: its senders wait until a receiver takes
/// the message from them.
struct Inner<T> {
    queue: VecDeque<T>,
    cap: Option<usize>,
    senders: usize,
    receivers: usize,
    /// Receivers waiting for a message.
    recv_wait: WaitList<T>,
    /// Senders waiting for room, holding their messages.
    send_wait: WaitList<T>,
}

impl<T> Inner<T> {
    fn has_room(&self) -> bool {
        self.cap.is_none_or(|cap| self.queue.len() < cap)
    }

    /// Sends without waiting: to a waiting receiver, or into the queue.
    /// Returns how the receiver, if any, is woken, or the message if the
    /// queue is full.
    fn offer(&mut self, msg: T) -> Result<Option<Woken>, T> {
        match self.recv_wait.give(msg) {
            Ok(receiver) => Ok(Some(receiver)),
            Err(msg) if self.has_room() => {
                self.queue.push_back(msg);
                Ok(None)
            }
            Err(msg) => Err(msg),
        }
    }

    /// Receives without waiting; the slot it frees goes to the oldest
    /// waiting sender's message. Returns the message and how that sender
    /// is woken.
    fn poll(&mut self) -> Option<(T, Option<Woken>)> {
        let Some(msg) = self.queue.pop_front() else {
            // Empty with senders waiting: a rendezvous channel. The oldest
            // sender's message is taken from its hands.
            return self
                .send_wait
                .take()
                .map(|(msg, sender)| (msg, Some(sender)));
        };
        let sender = self.send_wait.take().map(|(queued, sender)| {
            self.queue.push_back(queued);
            sender
        });
        Some((msg, sender))
    }
}

/// The sending half of a channel. Clone it for more producers.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half of a channel. Clone it for more consumers; each
/// message goes to one of them.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

/// Parks the calling task or thread until its waiter is woken (or
/// spuriously, or at `deadline`), releasing the channel lock once it is
/// parked.
fn park_holding<T>(inner: SpinGuard<'_, Inner<T>>, deadline: Option<Instant>, on: &ParkedOn) {
    // SAFETY: the guard holds the lock and gives it up to `park_releasing`,
    // which releases it once; the channel outlives the wait (the caller
    // holds a sender or receiver). A parked waiter is woken by a completion
    // or a disconnect, which take the lock first (`wait`), or by its
    // timer, which its worker fires; its earlier operations let it go only
    // after their wakes were done.
    unsafe { park_releasing(inner.hand_over(), deadline, on) }
}

/// Tells the lock how a waiter was woken (a lock whose wakes stay on its
/// thread gets biased to it, see `spin`), and returns the completion to
/// finish once it is released.
#[inline]
fn noted<T>(inner: &SpinGuard<'_, Inner<T>>, woken: Option<Woken>) -> Option<Completion> {
    match woken? {
        Woken::Here => {
            inner.note_wake(true);
            None
        }
        Woken::Later(completion) => {
            inner.note_wake(false);
            Some(completion)
        }
    }
}

/// Finishes the completion `c`, if any: called after the channel lock is
/// released.
#[inline]
fn finish(c: Option<Completion>) {
    if let Some(c) = c {
        c.finish();
    }
}

impl<T> Sender<T> {
    /// Sends a message, waiting for room in a full bounded channel. Fails,
    /// giving the message back, once every receiver is gone.
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        self.send_until(msg, None)
            .map_err(|e| SendError(e.into_inner()))
    }

    /// Like [`send`](Self::send), waiting at most `timeout` for room.
    ///
    /// ```
    /// # use growstack_runtime as growstack;
    /// use std::time::Duration;
    /// use growstack::chan::SendTimeoutError;
    /// let (tx, _rx) = growstack::chan::bounded(1);
    /// tx.send(1).unwrap();
    /// let err = tx.send_timeout(2, Duration::from_millis(10));
    /// assert_eq!(err, Err(SendTimeoutError::Timeout(2)));
    /// ```
    pub fn send_timeout(&self, msg: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_until(msg, Instant::now().checked_add(timeout))
    }

    /// Like [`send`](Self::send), waiting for room until `deadline` at the
    /// latest.
    pub fn send_deadline(&self, msg: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.send_until(msg, Some(deadline))
    }

    fn send_until(&self, msg: T, deadline: Option<Instant>) -> Result<(), SendTimeoutError<T>> {
        let mut inner = self.chan.lock();
        if inner.receivers == 0 {
            return Err(SendTimeoutError::Disconnected(msg));
        }
        let msg = match inner.offer(msg) {
            Ok(receiver) => {
                let receiver = noted(&inner, receiver);
                drop(inner);
                finish(receiver);
                return Ok(());
            }
            Err(msg) => msg,
        };
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(SendTimeoutError::Timeout(msg));
        }
        // Full: wait for a receiver to take the message.
        let mut waiter = Waiter::new(Some(msg));
        // SAFETY: `waiter` is new, and stays where it is (a record held by this
        // frame), touched only through `is_done`, until it is done or
        // unregistered below.
        unsafe { inner.send_wait.register(&waiter) };
        let on = self.chan.parked_on(false);
        loop {
            park_holding(inner, deadline, &on);
            if waiter.is_done() {
                return Ok(());
            }
            inner = self.chan.lock();
            if waiter.is_done() {
                return Ok(());
            }
            let timed_out = if inner.receivers == 0 {
                false
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                true
            } else {
                // Woken for no reason of ours: still registered; wait on.
                continue;
            };
            // SAFETY: registered in this list above, if still.
            unsafe { inner.send_wait.unregister(&waiter) };
            drop(inner);
            let msg = waiter.take_msg().expect("not taken: not done");
            return Err(if timed_out {
                SendTimeoutError::Timeout(msg)
            } else {
                SendTimeoutError::Disconnected(msg)
            });
        }
    }

    /// Whether every receiver is gone (for the runtime's own channels).
    pub(crate) fn is_disconnected(&self) -> bool {
        self.chan.lock().receivers == 0
    }

    /// Sends a message if that needs no waiting.
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        let mut inner = self.chan.lock();
        if inner.receivers == 0 {
            return Err(TrySendError::Disconnected(msg));
        }
        let receiver = inner.offer(msg).map_err(TrySendError::Full)?;
        let receiver = noted(&inner, receiver);
        drop(inner);
        finish(receiver);
        Ok(())
    }

    /// Number of messages in the channel now.
    pub fn len(&self) -> usize {
        self.chan.lock().queue.len()
    }

    /// Whether the channel holds no message now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Receiver<T> {
    /// Receives a message, waiting for one. Fails once the channel is empty
    /// and every sender is gone.
    ///
    /// ```
    /// # use growstack_runtime as growstack;
    /// let (tx, rx) = growstack::chan::unbounded::<u8>();
    /// drop(tx);
    /// assert_eq!(rx.recv(), Err(growstack::chan::RecvError));
    /// ```
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_until(None).map_err(|_| RecvError)
    }

    /// Receives a message if one is there now.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut inner = self.chan.lock();
        match inner.poll() {
            Some((msg, sender)) => {
                let sender = noted(&inner, sender);
                drop(inner);
                finish(sender);
                Ok(msg)
            }
            None if inner.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Receives a message, waiting at most `timeout` for one.
    ///
    /// ```
    /// # use growstack_runtime as growstack;
    /// use std::time::Duration;
    /// use growstack::chan::RecvTimeoutError;
    /// let (_tx, rx) = growstack::chan::unbounded::<u8>();
    /// let err = rx.recv_timeout(Duration::from_millis(10));
    /// assert_eq!(err, Err(RecvTimeoutError::Timeout));
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        // A timeout past any instant is no timeout (`+` would panic).
        self.recv_until(Instant::now().checked_add(timeout))
    }

    /// Receives a message, waiting for one until `deadline` at the latest.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.recv_until(Some(deadline))
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let mut inner = self.chan.lock();
        if let Some((msg, sender)) = inner.poll() {
            let sender = noted(&inner, sender);
            drop(inner);
            finish(sender);
            return Ok(msg);
        }
        if inner.senders == 0 {
            return Err(RecvTimeoutError::Disconnected);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(RecvTimeoutError::Timeout);
        }
        // Empty: wait for a sender to hand us a message.
        let mut waiter = Waiter::new(None);
        // SAFETY: `waiter` is new, and stays where it is (a record held by this
        // frame), touched only through `is_done`, until it is done or
        // unregistered below.
        unsafe { inner.recv_wait.register(&waiter) };
        let on = self.chan.parked_on(true);
        loop {
            park_holding(inner, deadline, &on);
            if waiter.is_done() {
                break;
            }
            inner = self.chan.lock();
            if waiter.is_done() {
                break;
            }
            let err = if inner.senders == 0 {
                RecvTimeoutError::Disconnected
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                RecvTimeoutError::Timeout
            } else {
                // Woken for no reason of ours: still registered.
                continue;
            };
            // SAFETY: registered in this list above, if still.
            unsafe { inner.recv_wait.unregister(&waiter) };
            return Err(err);
        }
        Ok(waiter.take_msg().expect("a done receiver has its message"))
    }

    /// A blocking iterator over the messages; it ends when the channel is
    /// empty and every sender is gone.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// An iterator over the messages there now; it never blocks.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// Number of messages in the channel now.
    pub fn len(&self) -> usize {
        self.chan.lock().queue.len()
    }

    /// Whether the channel holds no message now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.lock().senders += 1;
        Sender {
            chan: Arc::clone(&self.chan),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.lock().receivers += 1;
        Receiver {
            chan: Arc::clone(&self.chan),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut inner = self.chan.lock();
        inner.senders -= 1;
        if inner.senders == 0 {
            // Receivers waiting on an empty channel see the disconnect.
            let waiting = inner.recv_wait.dismiss_all();
            drop(inner);
            waiting.into_iter().for_each(Dismissed::wake);
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut inner = self.chan.lock();
        inner.receivers -= 1;
        if inner.receivers == 0 {
            // Senders waiting for room get their message back.
            let waiting = inner.send_wait.dismiss_all();
            drop(inner);
            waiting.into_iter().for_each(Dismissed::wake);
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Sender { .. }")
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Receiver { .. }")
    }
}

/// A blocking iterator over a [`Receiver`]'s messages.
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// A non-blocking iterator over a [`Receiver`]'s messages.
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

/// An owning blocking iterator over a [`Receiver`]'s messages.
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}
