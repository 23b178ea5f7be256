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

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::task::{Waker, park, park_until};

/// A channel holding at most `cap` messages: `send` blocks while it is full.
///
/// # Panics
///
/// If `cap` is 0: rendezvous channels are not supported; use `bounded(1)`.
///
/// ```
/// # use growstack_runtime as growstack;
/// let (tx, rx) = growstack::chan::bounded(1);
/// tx.send(1).unwrap();
/// assert!(tx.try_send(2).is_err()); // full
/// assert_eq!(rx.recv(), Ok(1));
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    assert!(
        cap > 0,
        "growstack::chan::bounded(0): zero-capacity (rendezvous) channels are not supported; \
         use bounded(1)"
    );
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
        inner: Mutex::new(Inner {
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
    inner: Mutex<Inner<T>>,
}

impl<T> Chan<T> {
    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // No user code runs under the lock, so it is never poisoned by a
        // panic in a critical section; recover regardless.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Inner<T> {
    queue: VecDeque<T>,
    cap: Option<usize>,
    senders: usize,
    receivers: usize,
    /// Receivers waiting for a message.
    recv_wait: WaitList,
    /// Senders waiting for room.
    send_wait: WaitList,
}

impl<T> Inner<T> {
    fn has_room(&self) -> bool {
        self.cap.is_none_or(|cap| self.queue.len() < cap)
    }
}

/// Blocked tasks and threads, in arrival order. An entry is removed by the
/// side that wakes it, or by its owner if it woke for another reason
/// (timeout, spurious wake-up).
#[derive(Default)]
struct WaitList {
    entries: VecDeque<(u64, Waker)>,
    next: u64,
}

impl WaitList {
    fn register(&mut self) -> u64 {
        let token = self.next;
        self.next += 1;
        self.entries.push_back((token, Waker::current()));
        token
    }

    /// Removes the entry of `token` if it is still there. Entries are in
    /// token order, so this is a binary search (a million parked tasks
    /// woken one by one must not scan a million entries each).
    fn unregister(&mut self, token: u64) {
        if let Ok(i) = self.entries.binary_search_by_key(&token, |(t, _)| *t) {
            self.entries.remove(i);
        }
    }

    fn pop(&mut self) -> Option<Waker> {
        self.entries.pop_front().map(|(_, w)| w)
    }

    fn take_all(&mut self) -> Vec<Waker> {
        self.entries.drain(..).map(|(_, w)| w).collect()
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

impl<T> Sender<T> {
    /// Sends a message, waiting for room in a full bounded channel. Fails,
    /// giving the message back, once every receiver is gone.
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        let mut inner = self.chan.lock();
        loop {
            if inner.receivers == 0 {
                return Err(SendError(msg));
            }
            if inner.has_room() {
                inner.queue.push_back(msg);
                let receiver = inner.recv_wait.pop();
                drop(inner);
                if let Some(w) = receiver {
                    w.wake();
                }
                return Ok(());
            }
            let token = inner.send_wait.register();
            drop(inner);
            park();
            inner = self.chan.lock();
            inner.send_wait.unregister(token);
        }
    }

    /// Sends a message if that needs no waiting.
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        let mut inner = self.chan.lock();
        if inner.receivers == 0 {
            return Err(TrySendError::Disconnected(msg));
        }
        if !inner.has_room() {
            return Err(TrySendError::Full(msg));
        }
        inner.queue.push_back(msg);
        let receiver = inner.recv_wait.pop();
        drop(inner);
        if let Some(w) = receiver {
            w.wake();
        }
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
        match inner.queue.pop_front() {
            Some(msg) => {
                let sender = inner.send_wait.pop();
                drop(inner);
                if let Some(w) = sender {
                    w.wake();
                }
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
        self.recv_until(Some(Instant::now() + timeout))
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let mut inner = self.chan.lock();
        loop {
            if let Some(msg) = inner.queue.pop_front() {
                let sender = inner.send_wait.pop();
                drop(inner);
                if let Some(w) = sender {
                    w.wake();
                }
                return Ok(msg);
            }
            if inner.senders == 0 {
                return Err(RecvTimeoutError::Disconnected);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(RecvTimeoutError::Timeout);
            }
            let token = inner.recv_wait.register();
            drop(inner);
            match deadline {
                Some(d) => park_until(d),
                None => park(),
            }
            inner = self.chan.lock();
            inner.recv_wait.unregister(token);
        }
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
            let waiting = inner.recv_wait.take_all();
            drop(inner);
            waiting.into_iter().for_each(Waker::wake);
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut inner = self.chan.lock();
        inner.receivers -= 1;
        if inner.receivers == 0 {
            // Senders waiting for room get their message back.
            let waiting = inner.send_wait.take_all();
            drop(inner);
            waiting.into_iter().for_each(Waker::wake);
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

/// [`Sender::send`] failed: every receiver is gone. Holds the message.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

/// [`Sender::try_send`] failed. Holds the message.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The bounded channel is full.
    Full(T),
    /// Every receiver is gone.
    Disconnected(T),
}

/// [`Receiver::recv`] failed: the channel is empty and every sender is gone.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct RecvError;

/// [`Receiver::try_recv`] failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum TryRecvError {
    /// No message now.
    Empty,
    /// Empty, and every sender is gone.
    Disconnected,
}

/// [`Receiver::recv_timeout`] failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum RecvTimeoutError {
    /// No message came in time.
    Timeout,
    /// Empty, and every sender is gone.
    Disconnected,
}

impl<T> SendError<T> {
    /// The message that could not be sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> TrySendError<T> {
    /// The message that could not be sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(m) | TrySendError::Disconnected(m) => m,
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("SendError { .. }")
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.pad("Full(..)"),
            TrySendError::Disconnected(_) => f.pad("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("sending on a disconnected channel")
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.pad("sending on a full channel"),
            TrySendError::Disconnected(_) => f.pad("sending on a disconnected channel"),
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("receiving on an empty and disconnected channel")
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.pad("receiving on an empty channel"),
            TryRecvError::Disconnected => f.pad("receiving on an empty and disconnected channel"),
        }
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.pad("timed out waiting on a channel"),
            RecvTimeoutError::Disconnected => f.pad("channel is empty and disconnected"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {}
impl<T> std::error::Error for TrySendError<T> {}
impl std::error::Error for RecvError {}
impl std::error::Error for TryRecvError {}
impl std::error::Error for RecvTimeoutError {}
