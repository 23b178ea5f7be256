//! Blocked calls, and how the other side completes them: the one waiting
//! mechanism under channels, `select!` and the locks of `growstack::sync`.
//!
//! A blocked call makes a [`Waiter`] (off its task's stack, which may be
//! compacted while it is parked: `task::Record`) and registers it in the
//! [`WaitList`] of what it waits for (a channel, a lock). It is described
//! here for channels; a lock's
//! waiter is handed a grant (the lock itself, or a turn to try again) the
//! way a receiver is handed a message. The
//! other side completes it in place, as Go's channels do with a `sudog`:
//! a sender hands its message straight to a waiting receiver, a receiver
//! that frees a slot takes a waiting sender's message into the queue. The
//! completed call returns when it wakes, without locking the channel again.
//!
//! Protocol: every access to a registered waiter by anyone but its owner
//! happens under the channel lock, and ends with the waiter removed from
//! the list, except the last steps of a completion. Completing a waiter
//! moves the message under the lock. If the owner is a task of the
//! completer's own worker, the completer wakes it there and then and sets
//! `DONE` (`task::Waker::wake_here`: a plain load and store and a
//! thread-local queue, and the task cannot run before this thread lets
//! it). Otherwise it sets `CLAIMING`; after unlocking, it claims the
//! owner's waker (`task::Waker::claim`, valid because the owner is still
//! blocked) and sets `DONE` (release). The owner keeps the waiter in place
//! until it is removed: it returns only after seeing `DONE` (acquire; the
//! completer no longer touches it), waiting out a `CLAIMING` state (a few
//! instructions of another thread), or after removing the entry itself
//! under the lock.
//! It parks holding the lock, released once it is parked
//! (`task::park_releasing`): every wake of a waiter takes the lock first.
//!
//! A waiter of a select (`chan::select`) is registered in the lists of all
//! its channels, each arm with its own waiter, all sharing one select
//! token. A completer takes such a waiter only if it wins the token
//! ([`select_state::try_select`](crate::chan::select_state)); one that loses
//! just unlinks it and goes on to the next waiter, so an arm of a select that
//! another arm already won is never completed.
//!
//! Claiming outside the lock keeps an atomic operation on the owner's
//! cache line out of the critical section: a producer and a consumer task
//! on two workers, through `bounded(64)` (`examples/pipeline.rs`, 4 runs
//! each) measured 73-103 ns per message with the claim under the lock,
//! 69-74 ns with it here, and 64-72 ns with counted wakers claimed after
//! unlocking.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::chan::select_state;
use crate::task::{Record, Waker, Wakeup, running_task};

/// `Waiter::state`: registered and not completed.
const WAITING: u8 = 0;
/// Completed under the lock; the completer is about to claim the waker.
const CLAIMING: u8 = 1;
/// Completed: the waiter is the owner's alone again.
const DONE: u8 = 2;

/// One blocked send or receive.
pub(crate) struct Waiter<T> {
    /// Moved on from `WAITING` by the side that completes the operation.
    state: AtomicU8,
    /// Who to wake; taken when the entry is removed by another side.
    waker: UnsafeCell<Option<Waker>>,
    /// A blocked sender's message until a receiver takes it; the message a
    /// sender gave a blocked receiver.
    msg: UnsafeCell<Option<T>>,
    /// Its place in the wait list: touched under the channel lock only.
    links: UnsafeCell<Links<T>>,
    /// The token of the select this waiter is an arm of, and the arm's
    /// index: completers must win the token first.
    select: Option<(NonNull<AtomicUsize>, usize)>,
}

/// A waiter's neighbours in its wait list, while it is in one.
struct Links<T> {
    prev: Option<NonNull<Waiter<T>>>,
    next: Option<NonNull<Waiter<T>>>,
    linked: bool,
}

impl<T> Links<T> {
    const UNLINKED: Links<T> = Links {
        prev: None,
        next: None,
        linked: false,
    };
}

impl<T> Waiter<T> {
    /// A waiter for the calling task or thread, holding `msg` if it sends,
    /// off the caller's stack (`task::Record`).
    #[inline(always)]
    pub(crate) fn new(msg: Option<T>) -> Record<Waiter<T>> {
        Waiter::with_select(msg, None)
    }

    #[inline(always)]
    fn with_select(
        msg: Option<T>,
        select: Option<(NonNull<AtomicUsize>, usize)>,
    ) -> Record<Waiter<T>> {
        let task = running_task();
        let waker = match task {
            Some(task) => Waker::Task(task),
            None => Waker::Thread(std::thread::current()),
        };
        Record::new_in(task, || Waiter {
            state: AtomicU8::new(WAITING),
            waker: UnsafeCell::new(Some(waker)),
            msg: UnsafeCell::new(msg),
            links: UnsafeCell::new(Links::UNLINKED),
            select,
        })
    }

    /// A waiter for arm `arm` of the select whose token is `token`.
    ///
    /// # Safety
    ///
    /// `token` outlives every registration of the waiter.
    pub(crate) unsafe fn for_select(
        msg: Option<T>,
        token: &AtomicUsize,
        arm: usize,
    ) -> Record<Waiter<T>> {
        Waiter::with_select(msg, Some((NonNull::from(token), arm)))
    }

    /// Whether another side completed the operation; after `true`, the
    /// waiter is the owner's alone.
    pub(crate) fn is_done(&self) -> bool {
        loop {
            match self.state.load(Ordering::Acquire) {
                WAITING => return false,
                DONE => return true,
                // The completer released the lock and is claiming our
                // waker: it needs no lock to finish. The thread yields,
                // not the task: we may hold the channel lock, and another
                // task of our worker waiting for it would never let us
                // run again.
                _ => std::thread::yield_now(),
            }
        }
    }

    /// Takes the message out: a receiver's after `is_done`, or a sender's
    /// after it made sure, under the lock, that its entry is gone from the
    /// list (removed by itself, or by the last receiver's disconnect).
    pub(crate) fn take_msg(&mut self) -> Option<T> {
        self.msg.get_mut().take()
    }

    /// [`take_msg`](Self::take_msg) through a shared reference (a select
    /// keeps its waiters in cells).
    ///
    /// # Safety
    ///
    /// As for `take_msg`: the waiter is done, or no longer registered,
    /// and nobody else touches its message.
    pub(crate) unsafe fn take_msg_shared(&self) -> Option<T> {
        // SAFETY: by the contract, the message is the caller's alone.
        unsafe { (*self.msg.get()).take() }
    }
}

/// Registered waiters, in arrival order: a doubly linked list through the
/// waiters themselves, so registering allocates nothing and a waiter that
/// gives up (a receive that timed out) leaves in constant time.
pub(crate) struct WaitList<T> {
    head: Option<NonNull<Waiter<T>>>,
    tail: Option<NonNull<Waiter<T>>>,
}

// SAFETY: the list holds pointers to waiters of other threads and tasks; it
// lives inside the channel lock, and every access through those pointers
// follows the module's protocol. Messages move between threads through
// them, hence `T: Send`.
unsafe impl<T: Send> Send for WaitList<T> {}

impl<T> Default for WaitList<T> {
    fn default() -> Self {
        WaitList::new()
    }
}

impl<T> WaitList<T> {
    pub(crate) const fn new() -> WaitList<T> {
        WaitList {
            head: None,
            tail: None,
        }
    }

    /// Registers `waiter`, last.
    ///
    /// # Safety
    ///
    /// The waiter is in no list. It stays where it is, untouched by its
    /// owner except through [`Waiter::is_done`], until it is done or
    /// removed by [`unregister`](Self::unregister).
    pub(crate) unsafe fn register(&mut self, waiter: &Waiter<T>) {
        let w = NonNull::from(waiter);
        // SAFETY: links are touched under the channel lock only, which the
        // caller holds (the list lives inside it); the tail is a registered
        // waiter, alive and in place.
        unsafe {
            *waiter.links.get() = Links {
                prev: self.tail,
                next: None,
                linked: true,
            };
            match self.tail {
                Some(tail) => (*tail.as_ref().links.get()).next = Some(w),
                None => self.head = Some(w),
            }
        }
        self.tail = Some(w);
    }

    /// Removes `waiter` if it is still registered.
    ///
    /// # Safety
    ///
    /// If the waiter is registered, it is in this list.
    pub(crate) unsafe fn unregister(&mut self, waiter: &Waiter<T>) {
        // SAFETY: as in `register`; a registered waiter is in this list by
        // the contract.
        unsafe {
            if (*waiter.links.get()).linked {
                self.unlink(NonNull::from(waiter));
            }
        }
    }

    /// Registers `waiter` first, before the ones already waiting (a lock's
    /// waiter that was woken to try again and lost keeps its turn).
    ///
    /// # Safety
    ///
    /// As for [`register`](Self::register).
    pub(crate) unsafe fn register_first(&mut self, waiter: &Waiter<T>) {
        let w = NonNull::from(waiter);
        // SAFETY: as in `register`.
        unsafe {
            *waiter.links.get() = Links {
                prev: None,
                next: self.head,
                linked: true,
            };
            match self.head {
                Some(head) => (*head.as_ref().links.get()).prev = Some(w),
                None => self.tail = Some(w),
            }
        }
        self.head = Some(w);
    }

    /// Whether no waiter is registered (that could still run).
    pub(crate) fn is_empty(&mut self) -> bool {
        self.drop_gone_heads();
        self.head.is_none()
    }

    /// The message (a lock's request) of the oldest waiter. Not for lists
    /// that select waiters join: the oldest may be one whose select is over.
    pub(crate) fn first_msg(&mut self) -> Option<&T> {
        self.drop_gone_heads();
        // SAFETY: the head is registered: alive, in place, and its message
        // is touched by others only under the lock the caller holds.
        self.head
            .and_then(|w| unsafe { (*w.as_ref().msg.get()).as_ref() })
    }

    /// Unlinks the oldest waiters while they belong to tasks that will
    /// never run again (their runtime stopped with them parked): nothing is
    /// handed to them. A lock granted to such a task, or a message given to
    /// it, would be lost with it, and every later caller would wait forever.
    /// Their frames stay in place (a stopped runtime leaks the stacks of
    /// its parked tasks), unlinked, never completed.
    #[inline]
    fn drop_gone_heads(&mut self) {
        if self.head.is_some() && crate::task::runtime::any_stopped() {
            self.drop_gone_heads_slow();
        }
    }

    #[cold]
    fn drop_gone_heads_slow(&mut self) {
        while let Some(w) = self.head {
            // SAFETY: the head is registered: alive and in place, its
            // waker touched by others only under the lock we hold, and its
            // owner blocked until it is completed or unregistered.
            let gone = unsafe {
                let waker = (*w.as_ref().waker.get()).as_ref();
                waker.is_some_and(|waker| waker.never_runs())
            };
            if !gone {
                return;
            }
            // SAFETY: the head is registered in this list.
            unsafe { self.unlink(w) };
        }
    }

    /// Removes the oldest waiter.
    fn pop(&mut self) -> Option<NonNull<Waiter<T>>> {
        self.drop_gone_heads();
        let w = self.head?;
        // SAFETY: the head is registered in this list.
        unsafe { self.unlink(w) };
        Some(w)
    }

    /// Removes the oldest waiter that may be completed: a plain one, or an
    /// arm of a select that this call wins. Losing arms are just removed.
    fn pop_winner(&mut self) -> Option<NonNull<Waiter<T>>> {
        loop {
            let w = self.pop()?;
            // SAFETY: registered until just now, so alive and in place; its
            // token outlives its registrations (`for_select`).
            match unsafe { w.as_ref().select } {
                // SAFETY: as above.
                Some((token, arm)) if !select_state::try_select(unsafe { token.as_ref() }, arm) => {
                }
                _ => return Some(w),
            }
        }
    }

    /// # Safety
    ///
    /// `w` is registered in this list; the caller holds the channel lock.
    unsafe fn unlink(&mut self, w: NonNull<Waiter<T>>) {
        // SAFETY: registered waiters (`w` and its neighbours) are alive and
        // in place, and their links are ours under the lock.
        unsafe {
            let Links { prev, next, .. } =
                core::mem::replace(&mut *w.as_ref().links.get(), Links::UNLINKED);
            match prev {
                Some(prev) => (*prev.as_ref().links.get()).next = next,
                None => self.head = next,
            }
            match next {
                Some(next) => (*next.as_ref().links.get()).prev = prev,
                None => self.tail = prev,
            }
        }
    }

    /// Completes the waiter [`first_msg`](Self::first_msg) just returned
    /// with `msg`: the head as it is, not looked at again (a lock that
    /// decided on that head's request must grant that head, even if its
    /// runtime stopped since). Not for lists that select waiters join.
    ///
    /// # Panics
    ///
    /// If the list is empty.
    pub(crate) fn give_first(&mut self, msg: T) -> Woken {
        let w = self
            .head
            .expect("growstack: give_first on an empty wait list");
        // SAFETY: the head is registered in this list, alive and in place,
        // and the caller holds its lock (the module's protocol).
        unsafe {
            self.unlink(w);
            let w = w.as_ref();
            *w.msg.get() = Some(msg);
            complete(w)
        }
    }

    /// Completes the oldest waiting receiver with `msg`; gives the message
    /// back if none waits. The completion, if any, is finished once the
    /// lock is released.
    pub(crate) fn give(&mut self, msg: T) -> Result<Woken, T> {
        let Some(w) = self.pop_winner() else {
            return Err(msg);
        };
        // SAFETY: a registered waiter is alive and in place, and the caller
        // holds the channel lock (the module's protocol).
        unsafe {
            let w = w.as_ref();
            *w.msg.get() = Some(msg);
            Ok(complete(w))
        }
    }

    /// Completes the oldest waiting sender by taking its message.
    pub(crate) fn take(&mut self) -> Option<(T, Woken)> {
        let w = self.pop_winner()?;
        // SAFETY: as in `give`.
        unsafe {
            let w = w.as_ref();
            let msg = (*w.msg.get()).take();
            Some((
                msg.expect("a blocked sender holds its message"),
                complete(w),
            ))
        }
    }

    /// Removes every waiter (the channel disconnected): a plain one without
    /// completing it (it sees the disconnect under the lock), an arm of a
    /// select completed as it is (a receiver without a message, a sender
    /// with its own), if it wins its select. Returns the wakes to finish
    /// once the lock is released.
    pub(crate) fn dismiss_all(&mut self) -> Vec<Dismissed> {
        core::iter::from_fn(|| self.pop_winner())
            // SAFETY: as in `give`: the owner, registered until just now, is
            // blocked until it sees the disconnect under the lock we hold
            // (or, a select's, until it sees its arm done).
            .map(|w| unsafe {
                let w = w.as_ref();
                match w.select {
                    None => Dismissed::Plain(claim(w)),
                    Some(_) => Dismissed::Selected(complete(w)),
                }
            })
            .collect()
    }
}

/// A waiter removed by [`WaitList::dismiss_all`], to wake once the lock
/// is released.
pub(crate) enum Dismissed {
    Plain(Wakeup),
    Selected(Woken),
}

impl Dismissed {
    /// Wakes the owner; called after the lock is released.
    pub(crate) fn wake(self) {
        match self {
            Dismissed::Plain(wakeup) => wakeup.wake(),
            Dismissed::Selected(Woken::Later(completion)) => completion.finish(),
            Dismissed::Selected(Woken::Here) => {}
        }
    }
}

/// Claims the waker of a registered waiter.
///
/// # Safety
///
/// The caller holds the channel lock and `w` is still registered (so its
/// owner is blocked, and stays so until the lock is released); called once
/// per registration.
unsafe fn claim<T>(w: &Waiter<T>) -> Wakeup {
    // SAFETY: by the contract, only we touch `waker`, and the owner is
    // blocked in this operation.
    unsafe { take_waker(w).claim() }
}

/// Takes the waker of a registered waiter.
///
/// # Safety
///
/// As for [`claim`].
unsafe fn take_waker<T>(w: &Waiter<T>) -> Waker {
    // SAFETY: only the completer touches `waker` of a registered waiter,
    // under the lock.
    let waker = unsafe { (*w.waker.get()).take() };
    waker.expect("a registered waiter has its waker")
}

/// Completes a registered waiter, the message already moved. An owner
/// that is a task of the calling thread's worker is woken and the waiter
/// marked `DONE` at once: that wake races with nothing, and its task runs
/// only once this thread lets it. Otherwise the waiter is marked
/// `CLAIMING`, and the returned completion claims its waker and marks it
/// `DONE` after the lock is released.
///
/// # Safety
///
/// As for [`claim`], the message already moved.
unsafe fn complete<T>(w: &Waiter<T>) -> Woken {
    // SAFETY: by the contract.
    let waker = unsafe { take_waker(w) };
    // SAFETY: by the contract, the owner is blocked in this operation.
    match unsafe { waker.wake_here() } {
        Ok(()) => {
            w.state.store(DONE, Ordering::Release);
            Woken::Here
        }
        Err(waker) => {
            w.state.store(CLAIMING, Ordering::Relaxed);
            Woken::Later(Completion {
                state: NonNull::from(&w.state),
                waker,
            })
        }
    }
}

/// How a completed waiter's owner is woken.
pub(crate) enum Woken {
    /// It was a task of the completer's own worker, woken already.
    Here,
    /// Finish this once the lock is released.
    Later(Completion),
}

/// A waiter completed under the channel lock whose owner is not yet let go:
/// [`finish`](Self::finish) it once the lock is released. Until then the
/// owner waits (its state is `CLAIMING`).
#[must_use = "the owner of the waiter waits until the completion is finished"]
pub(crate) struct Completion {
    state: NonNull<AtomicU8>,
    waker: Waker,
}

impl Completion {
    /// Wakes the owner and lets it go.
    pub(crate) fn finish(self) {
        // SAFETY: the owner cannot return before it sees DONE, set below,
        // so it is still blocked in the operation.
        let wakeup = unsafe { self.waker.claim() };
        // SAFETY: the waiter stays in place until its owner sees DONE; this
        // store is our last access to it.
        unsafe { self.state.as_ref() }.store(DONE, Ordering::Release);
        wakeup.wake();
    }
}
