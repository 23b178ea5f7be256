//! [`select!`](crate::select): waiting on several channel operations at
//! once, and doing exactly one of them.
//!
//! The macro builds one *arm* per operation in the caller's frame and calls
//! [`select`]:
//!
//! 1. It tries every arm once, in a random order (so that among ready arms
//!    each is picked as often: Go's and crossbeam's rule), each under its
//!    own channel's lock. Most selects end here.
//! 2. Otherwise, unless the select has a `default` arm, it locks all the
//!    channels at once, in address order (so two selects never wait for each
//!    other's locks), tries every arm again, and if none is ready registers
//!    one waiter per arm in its channel's wait list, all sharing one select
//!    token (`select_state`), then releases the locks and parks. Holding
//!    every lock while it looks and registers is what makes the select
//!    atomic: no operation can complete between the look and the
//!    registration, and no other party can complete an arm of this select
//!    while it is still looking (so a select can complete another parked
//!    select's arm without any token of its own: Go's `selectgo` does the
//!    same).
//! 3. The side that completes an arm (a sender, a receiver, a disconnect)
//!    must first win the token (`wait`'s `pop_winner`); losers unlink the
//!    waiter and go on. The select wakes, unregisters every arm under its
//!    channel's lock (after which nobody can reach its waiters or its token)
//!    and takes the winning arm's outcome. A timeout takes the token for
//!    itself (`select_state::abort`), unless an arm won first.
//!
//! A select parks with a plain [`park`], not holding any lock: its wakes
//! come from several channels.

use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use super::{Inner, Receiver, RecvError, SendError, Sender, TryRecvError, TrySendError};
use super::{select_state, select_state::WAITING};
use crate::spin::SpinGuard;
use crate::task::{ParkedOn, Record, park, park_until};
use crate::wait::{Completion, Waiter, Woken};

/// How long a select may wait. Not a stable API: for [`select!`](crate::select).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Until an arm is ready.
    Block,
    /// Until an arm is ready or the instant passes.
    Until(Instant),
    /// Not at all (a `default` arm).
    Never,
}

impl Mode {
    /// At most `timeout` from now (a timeout past any instant is none).
    pub fn timeout(timeout: Duration) -> Mode {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => Mode::Until(deadline),
            None => Mode::Block,
        }
    }
}

/// The operations of an arm, in a private module: `Arm` is sealed, and
/// its methods use the crate's own types.
mod sealed {
    use core::sync::atomic::AtomicUsize;

    use super::Ready;

    pub trait ArmOps {
        /// Whether an earlier select registered the arm's waiter.
        fn registered_before(&self) -> bool;
        /// Tries the operation now, locking its channel; true if it is done
        /// (its outcome, success or disconnect, is kept for the macro).
        fn try_now(&self) -> bool;
        /// Its channel, to lock channels in one order and each once.
        fn chan_addr(&self) -> usize;
        /// Locks its channel and keeps the guard.
        ///
        /// # Safety
        ///
        /// Not locked by this select yet (through this or another arm).
        unsafe fn lock(&self);
        /// Drops the guard `lock` kept, if any.
        ///
        /// # Safety
        ///
        /// Called once per `lock`, after which no arm of this channel touches
        /// it until locked again.
        unsafe fn unlock(&self);
        /// Tries the operation with the channel locked by this select; if it is
        /// done, returns the completion to finish once the locks are released.
        ///
        /// # Safety
        ///
        /// The channel is locked by this select.
        unsafe fn try_locked(&self) -> Option<Ready>;
        /// Registers the arm's waiter, arm number `index` of the select whose
        /// token is `token`.
        ///
        /// # Safety
        ///
        /// The channel is locked by this select; called once; `token` outlives
        /// the registration (it lasts until `unregister_locked`).
        unsafe fn register_locked(&self, token: &AtomicUsize, index: usize);
        /// Unregisters the arm's waiter, if it is still registered.
        ///
        /// # Safety
        ///
        /// The channel is locked by this select.
        unsafe fn unregister_locked(&self);
        /// Takes the outcome of the arm's waiter, which won the select.
        ///
        /// # Safety
        ///
        /// The waiter was registered, won the token, and is unregistered.
        unsafe fn take_won(&self);
        /// Drops the arm's waiter (a send arm keeps its unsent message), so
        /// that no record outlives the blocking call that made it
        /// (`task::Record`).
        ///
        /// # Safety
        ///
        /// The waiter is unregistered, and no reference to it is alive.
        unsafe fn release(&self);
    }
}

/// An arm done under the locks: the completion of its counterpart, if
/// any, to finish once they are released.
#[doc(hidden)]
pub struct Ready(Option<Completion>);

/// One operation of a select. Not a stable API: for
/// [`select!`](crate::select), which builds [`RecvArm`]s and [`SendArm`]s.
/// Sealed: only those two implement it.
#[doc(hidden)]
pub trait Arm: sealed::ArmOps {}

/// Runs a select over `arms`: the index of the arm done, or `None` if
/// `mode` allowed no (more) waiting. Not a stable API: for
/// [`select!`](crate::select).
///
/// # Panics
///
/// If it must wait and an arm appears twice in `arms`, or was registered
/// by an earlier select: an arm's waiter is registered once, with its
/// select's token. (`select!` makes fresh arms for each select.)
#[doc(hidden)]
pub fn select(arms: &[&dyn Arm], mode: Mode) -> Option<usize> {
    if let Some(i) = in_random_order(arms.len(), |i| arms[i].try_now()) {
        return Some(i);
    }
    let deadline = match mode {
        Mode::Never => return None,
        Mode::Until(deadline) if Instant::now() >= deadline => return None,
        Mode::Until(deadline) => Some(deadline),
        Mode::Block => None,
    };
    wait(arms, deadline)
}

/// Steps 2 and 3 of the module docs.
#[cold]
fn wait(arms: &[&dyn Arm], deadline: Option<Instant>) -> Option<usize> {
    // Before anything is locked or registered (trying an arm twice is
    // harmless; registering it twice is not).
    let mut addrs: Vec<*const ()> = arms
        .iter()
        .map(|arm| (*arm as *const dyn Arm).cast())
        .collect();
    addrs.sort_unstable();
    assert!(
        addrs.windows(2).all(|w| w[0] != w[1]) && !arms.iter().any(|arm| arm.registered_before()),
        "growstack: a select arm was used twice (arms are made by select! for one select)"
    );
    // One arm per channel locks it, in address order.
    let mut lockers: Vec<&dyn Arm> = arms.to_vec();
    lockers.sort_by_key(|arm| arm.chan_addr());
    lockers.dedup_by_key(|arm| arm.chan_addr());
    let lock_all = || {
        for arm in &lockers {
            // SAFETY: one arm per channel, each channel not locked by us.
            unsafe { arm.lock() };
        }
    };
    let unlock_all = || {
        for arm in lockers.iter().rev() {
            // SAFETY: locked by `lock_all` above.
            unsafe { arm.unlock() };
        }
    };

    lock_all();
    let mut ready = None;
    let done = in_random_order(arms.len(), |i| {
        // SAFETY: every channel is locked by us.
        ready = unsafe { arms[i].try_locked() };
        ready.is_some()
    });
    if let Some(i) = done {
        unlock_all();
        if let Some(Ready(Some(completion))) = ready {
            completion.finish();
        }
        return Some(i);
    }
    // Off our stack, as the waiters are: completers reach it while we are
    // parked (`task::Record`).
    let token = Record::new(AtomicUsize::new(WAITING));
    for (i, arm) in arms.iter().enumerate() {
        // SAFETY: locked by us; each arm registers once; `token` outlives
        // the registrations: every one is removed below, before we return.
        unsafe { arm.register_locked(&token, i) };
    }
    unlock_all();

    let on = ParkedOn::Select { arms: arms.len() };
    let won = loop {
        if let Some(i) = select_state::selected(&token) {
            break Some(i);
        }
        match deadline {
            None => park(&on),
            Some(deadline) if Instant::now() >= deadline => break select_state::abort(&token),
            Some(deadline) => park_until(deadline, &on),
        }
    };

    lock_all();
    for arm in arms {
        // SAFETY: locked by us. After this nobody reaches the waiters or
        // the token: completers touch them only while registered, under the
        // channel's lock.
        unsafe { arm.unregister_locked() };
    }
    unlock_all();
    if let Some(i) = won {
        // SAFETY: arm `i` won the token, and is unregistered (unlinked by
        // its completer).
        unsafe { arms[i].take_won() };
    }
    for arm in arms {
        // SAFETY: every waiter is unregistered, and `take_won` is done with
        // the winner's.
        unsafe { arm.release() };
    }
    won
}

/// An arm's waiter: made when the arm registers, dropped when its select
/// is done with it.
struct ArmWaiter<T> {
    waiter: UnsafeCell<Option<Record<Waiter<T>>>>,
    /// The arm registered once (it may not again).
    used: Cell<bool>,
}

impl<T> ArmWaiter<T> {
    const fn new() -> Self {
        ArmWaiter {
            waiter: UnsafeCell::new(None),
            used: Cell::new(false),
        }
    }

    fn used(&self) -> bool {
        self.used.get()
    }

    /// Keeps `waiter` and returns it.
    ///
    /// # Safety
    ///
    /// Called once (`used` was false).
    unsafe fn set(&self, waiter: Record<Waiter<T>>) -> &Waiter<T> {
        self.used.set(true);
        // SAFETY: the cell is empty and nothing refers into it (the
        // contract); the arm is its select's thread's alone.
        unsafe { (*self.waiter.get()).insert(waiter) }
    }

    fn get(&self) -> Option<&Waiter<T>> {
        // SAFETY: written once by `set` before any reference is taken, and
        // emptied by `take` only when none is alive (its contract).
        unsafe { (*self.waiter.get()).as_deref() }
    }

    /// Takes the waiter out, to drop it.
    ///
    /// # Safety
    ///
    /// No reference from `get` is alive.
    unsafe fn take(&self) -> Option<Record<Waiter<T>>> {
        // SAFETY: by the contract.
        unsafe { (*self.waiter.get()).take() }
    }
}

/// Calls `try_arm` on the indices below `n` in a uniformly random order
/// until it returns true, and returns that index: among the arms ready at
/// once, each is then picked as often. (Trying from a random start in
/// index order would not do: with three arms of which the first two are
/// ready, the first would win two times in three.) The shuffle is lazy, so
/// the usual select, whose first try succeeds, draws one number.
fn in_random_order(n: usize, mut try_arm: impl FnMut(usize) -> bool) -> Option<usize> {
    if n > 64 {
        let mut order: Vec<usize> = (0..n).collect();
        for k in 0..n {
            order.swap(k, k + random_below(n - k));
            if try_arm(order[k]) {
                return Some(order[k]);
            }
        }
        return None;
    }
    if n == 0 {
        return None;
    }
    // Up to 64 arms, the ones not tried yet are the bits of `free`: each
    // step clears a random number of its lowest bits from a copy and takes
    // the lowest left, with no table to fill first.
    let mut free = u64::MAX >> (64 - n);
    let mut left = n;
    while left > 0 {
        let mut pick = free;
        let mut skip = random_below(left);
        while skip > 0 {
            pick &= pick - 1;
            skip -= 1;
        }
        let i = pick.trailing_zeros() as usize;
        free &= !(1 << i);
        if try_arm(i) {
            return Some(i);
        }
        left -= 1;
    }
    None
}

/// A number below `n` (0 if `n` is 0), from a per-thread xorshift.
fn random_below(n: usize) -> usize {
    thread_local! {
        static STATE: Cell<u64> = const { Cell::new(0) };
    }
    if n <= 1 {
        return 0;
    }
    STATE.with(|state| {
        let mut x = state.get();
        if x == 0 {
            // Seeded from the thread's stack address and the clock.
            let here = &raw const x as u64;
            x = here ^ Instant::now().elapsed().as_nanos() as u64 ^ 0x9E37_79B9_7F4A_7C15;
            x |= 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        // Multiply-shift: unbiased enough for picking among a few arms.
        ((u128::from(x) * n as u128) >> 64) as usize
    })
}

/// The completion to finish for how a counterpart was woken.
fn later(woken: Option<Woken>) -> Option<Completion> {
    match woken {
        Some(Woken::Later(completion)) => Some(completion),
        _ => None,
    }
}

/// A `recv` arm of a select. Not a stable API: for
/// [`select!`](crate::select).
#[doc(hidden)]
pub struct RecvArm<'a, T> {
    rx: &'a Receiver<T>,
    guard: UnsafeCell<Option<SpinGuard<'a, Inner<T>>>>,
    waiter: ArmWaiter<T>,
    result: Cell<Option<Result<T, RecvError>>>,
}

impl<'a, T> RecvArm<'a, T> {
    pub fn new(rx: &'a Receiver<T>) -> Self {
        RecvArm {
            rx,
            guard: UnsafeCell::new(None),
            waiter: ArmWaiter::new(),
            result: Cell::new(None),
        }
    }

    /// The outcome, if this arm was the one done.
    pub fn take_result(&self) -> Option<Result<T, RecvError>> {
        self.result.take()
    }

    /// The channel's state.
    ///
    /// # Safety
    ///
    /// The channel is locked by this select, and no other reference to its
    /// state is live.
    #[allow(clippy::mut_from_ref)]
    unsafe fn inner(&self) -> &mut Inner<T> {
        // SAFETY: by the contract.
        unsafe { &mut *self.rx.chan.inner.data_ptr() }
    }
}

impl<T> Arm for RecvArm<'_, T> {}

impl<T> sealed::ArmOps for RecvArm<'_, T> {
    fn registered_before(&self) -> bool {
        self.waiter.used()
    }

    fn try_now(&self) -> bool {
        let result = match self.rx.try_recv() {
            Ok(msg) => Ok(msg),
            Err(TryRecvError::Disconnected) => Err(RecvError),
            Err(TryRecvError::Empty) => return false,
        };
        self.result.set(Some(result));
        true
    }

    fn chan_addr(&self) -> usize {
        &raw const *self.rx.chan as *const () as usize
    }

    unsafe fn lock(&self) {
        // SAFETY: the guard cell is touched by this select's thread only.
        unsafe { *self.guard.get() = Some(self.rx.chan.lock()) };
    }

    unsafe fn unlock(&self) {
        // SAFETY: as in `lock`.
        drop(unsafe { (*self.guard.get()).take() });
    }

    unsafe fn try_locked(&self) -> Option<Ready> {
        // SAFETY: locked by this select (the contract).
        let inner = unsafe { self.inner() };
        if let Some((msg, sender)) = inner.poll() {
            self.result.set(Some(Ok(msg)));
            return Some(Ready(later(sender)));
        }
        if inner.senders == 0 {
            self.result.set(Some(Err(RecvError)));
            return Some(Ready(None));
        }
        None
    }

    unsafe fn register_locked(&self, token: &AtomicUsize, index: usize) {
        // SAFETY: `token` outlives the registration (the contract), and
        // the arm registers once.
        let waiter = unsafe { self.waiter.set(Waiter::for_select(None, token, index)) };
        // SAFETY: locked by this select; the waiter is new and stays where
        // it is (a record held by this arm until `release`).
        unsafe { self.inner().recv_wait.register(waiter) };
    }

    unsafe fn unregister_locked(&self) {
        if let Some(waiter) = self.waiter.get() {
            // SAFETY: locked; registered in this list if at all.
            unsafe { self.inner().recv_wait.unregister(waiter) };
        }
    }

    unsafe fn take_won(&self) {
        let waiter = self.waiter.get().expect("a winner was registered");
        // Its completer may still be claiming our waker.
        while !waiter.is_done() {
            std::thread::yield_now();
        }
        // SAFETY: done: the waiter is ours alone.
        let result = unsafe { waiter.take_msg_shared() }.ok_or(RecvError);
        self.result.set(Some(result));
    }

    unsafe fn release(&self) {
        // SAFETY: by the contract.
        drop(unsafe { self.waiter.take() });
    }
}

/// A `send` arm of a select. Not a stable API: for
/// [`select!`](crate::select).
#[doc(hidden)]
pub struct SendArm<'a, T> {
    tx: &'a Sender<T>,
    /// The message, until the arm registers (its waiter holds it then).
    msg: Cell<Option<T>>,
    guard: UnsafeCell<Option<SpinGuard<'a, Inner<T>>>>,
    waiter: ArmWaiter<T>,
    result: Cell<Option<Result<(), SendError<T>>>>,
}

impl<'a, T> SendArm<'a, T> {
    pub fn new(tx: &'a Sender<T>, msg: T) -> Self {
        SendArm {
            tx,
            msg: Cell::new(Some(msg)),
            guard: UnsafeCell::new(None),
            waiter: ArmWaiter::new(),
            result: Cell::new(None),
        }
    }

    /// The outcome, if this arm was the one done.
    pub fn take_result(&self) -> Option<Result<(), SendError<T>>> {
        self.result.take()
    }

    /// As [`RecvArm::inner`].
    ///
    /// # Safety
    ///
    /// As for `RecvArm::inner`.
    #[allow(clippy::mut_from_ref)]
    unsafe fn inner(&self) -> &mut Inner<T> {
        // SAFETY: by the contract.
        unsafe { &mut *self.tx.chan.inner.data_ptr() }
    }

    fn take_msg(&self) -> T {
        self.msg
            .take()
            .expect("a send arm holds its message until done")
    }
}

impl<T> Arm for SendArm<'_, T> {}

impl<T> sealed::ArmOps for SendArm<'_, T> {
    fn registered_before(&self) -> bool {
        self.waiter.used()
    }

    fn try_now(&self) -> bool {
        let result = match self.tx.try_send(self.take_msg()) {
            Ok(()) => Ok(()),
            Err(TrySendError::Disconnected(msg)) => Err(SendError(msg)),
            Err(TrySendError::Full(msg)) => {
                self.msg.set(Some(msg));
                return false;
            }
        };
        self.result.set(Some(result));
        true
    }

    fn chan_addr(&self) -> usize {
        &raw const *self.tx.chan as *const () as usize
    }

    unsafe fn lock(&self) {
        // SAFETY: the guard cell is touched by this select's thread only.
        unsafe { *self.guard.get() = Some(self.tx.chan.lock()) };
    }

    unsafe fn unlock(&self) {
        // SAFETY: as in `lock`.
        drop(unsafe { (*self.guard.get()).take() });
    }

    unsafe fn try_locked(&self) -> Option<Ready> {
        // SAFETY: locked by this select (the contract).
        let inner = unsafe { self.inner() };
        let msg = self.take_msg();
        if inner.receivers == 0 {
            self.result.set(Some(Err(SendError(msg))));
            return Some(Ready(None));
        }
        match inner.offer(msg) {
            Ok(receiver) => {
                self.result.set(Some(Ok(())));
                Some(Ready(later(receiver)))
            }
            Err(msg) => {
                self.msg.set(Some(msg));
                None
            }
        }
    }

    unsafe fn register_locked(&self, token: &AtomicUsize, index: usize) {
        let msg = self.take_msg();
        // SAFETY: as in `RecvArm::register_locked`.
        let waiter = unsafe { self.waiter.set(Waiter::for_select(Some(msg), token, index)) };
        // SAFETY: as in `RecvArm::register_locked`.
        unsafe { self.inner().send_wait.register(waiter) };
    }

    unsafe fn unregister_locked(&self) {
        if let Some(waiter) = self.waiter.get() {
            // SAFETY: locked; registered in this list if at all.
            unsafe { self.inner().send_wait.unregister(waiter) };
        }
    }

    unsafe fn take_won(&self) {
        let waiter = self.waiter.get().expect("a winner was registered");
        while !waiter.is_done() {
            std::thread::yield_now();
        }
        // SAFETY: done: the waiter is ours alone. A receiver took the
        // message, or a disconnect left it.
        let result = match unsafe { waiter.take_msg_shared() } {
            None => Ok(()),
            Some(msg) => Err(SendError(msg)),
        };
        self.result.set(Some(result));
    }

    unsafe fn release(&self) {
        // SAFETY: by the contract.
        if let Some(waiter) = unsafe { self.waiter.take() } {
            // An arm that lost keeps its message, dropped with the arm as
            // before it registered (not inside the select).
            // SAFETY: unregistered: the message is ours alone.
            if let Some(msg) = unsafe { waiter.take_msg_shared() } {
                self.msg.set(Some(msg));
            }
        }
    }
}

/// Waits on several channel operations and does exactly one: the first
/// ready, or a random one of those ready at once. crossbeam-channel's
/// syntax:
///
/// ```text
/// select! {
///     recv(rx) -> msg => body,          // msg: Result<T, RecvError>
///     send(tx, value) -> res => body,   // res: Result<(), SendError<T>>
///     default => body,                  // if none is ready now
///     default(timeout) => body,         // or: if none is ready in time
/// }
/// ```
///
/// Any number of `recv` and `send` arms, on any channels, and at most one
/// `default`. A `recv` on a channel whose senders are all gone, and a
/// `send` on one whose receivers are all gone, are ready (with `Err`).
/// Without `default` the select waits as long as it takes (forever with no
/// arms, like Go's `select {}`). The value of the `select!` is the value
/// of the arm's body that ran.
///
/// As in Go, every channel and message expression is evaluated once, when
/// the select starts, and the messages of the `send` arms not chosen are
/// dropped (crossbeam evaluates the chosen one only).
///
/// In a task, waiting parks the task; on a plain thread it blocks.
///
/// ```
/// # use growstack_runtime as growstack;
/// use std::time::Duration;
/// use growstack::chan::{self, select};
///
/// let (tx1, rx1) = chan::unbounded::<u32>();
/// let (_tx2, rx2) = chan::unbounded::<&str>();
/// tx1.send(7).unwrap();
/// let got = select! {
///     recv(rx1) -> n => n.unwrap().to_string(),
///     recv(rx2) -> s => s.unwrap().to_string(),
/// };
/// assert_eq!(got, "7");
///
/// let timed_out = select! {
///     recv(rx1) -> _ => false,
///     default(Duration::from_millis(10)) => true,
/// };
/// assert!(timed_out);
/// ```
#[macro_export]
macro_rules! select {
    ($($tokens:tt)*) => {
        $crate::__select!(@parse [] [] $($tokens)*)
    };
}

/// The workings of [`select!`]: parses the arms, binds each to a local of
/// its own (every recursive expansion has its own hygiene, so the locals
/// named `arm` do not clash), and dispatches on the arm done.
#[doc(hidden)]
#[macro_export]
macro_rules! __select {
    // Parsing: `[arms] [default]` then the tokens left.
    (@parse $arms:tt $def:tt) => {
        $crate::__select!(@bind [] $arms $def)
    };
    (@parse $arms:tt $def:tt , $($rest:tt)*) => {
        $crate::__select!(@parse $arms $def $($rest)*)
    };
    (@parse [$($arms:tt)*] $def:tt recv($r:expr) -> $p:pat => $body:block $($rest:tt)*) => {
        $crate::__select!(@parse [$($arms)* (recv ($r) [$p] $body)] $def $($rest)*)
    };
    (@parse [$($arms:tt)*] $def:tt recv($r:expr) -> $p:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select!(@parse [$($arms)* (recv ($r) [$p] { $body })] $def $($($rest)*)?)
    };
    (@parse [$($arms:tt)*] $def:tt send($s:expr, $m:expr) -> $p:pat => $body:block $($rest:tt)*) => {
        $crate::__select!(@parse [$($arms)* (send ($s, $m) [$p] $body)] $def $($rest)*)
    };
    (@parse [$($arms:tt)*] $def:tt send($s:expr, $m:expr) -> $p:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select!(@parse [$($arms)* (send ($s, $m) [$p] { $body })] $def $($($rest)*)?)
    };
    (@parse $arms:tt [] default => $body:block $($rest:tt)*) => {
        $crate::__select!(@parse $arms [(never) $body] $($rest)*)
    };
    (@parse $arms:tt [] default => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select!(@parse $arms [(never) { $body }] $($($rest)*)?)
    };
    (@parse $arms:tt [] default($t:expr) => $body:block $($rest:tt)*) => {
        $crate::__select!(@parse $arms [(timeout ($t)) $body] $($rest)*)
    };
    (@parse $arms:tt [] default($t:expr) => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select!(@parse $arms [(timeout ($t)) { $body }] $($($rest)*)?)
    };
    (@parse $arms:tt [$($def:tt)+] default $($rest:tt)*) => {
        $crate::__private::compile_error!("select! takes at most one `default` arm")
    };
    (@parse $arms:tt $def:tt $($rest:tt)+) => {
        $crate::__private::compile_error!(
            "select! arms are `recv(r) -> pat => body`, `send(s, msg) -> pat => body`, \
             `default => body` or `default(timeout) => body`"
        )
    };

    // Binding: one local per arm.
    (@bind [$($bound:tt)*] [(recv ($r:expr) [$p:pat] $body:block) $($rest:tt)*] $def:tt) => {{
        let arm = $crate::chan::RecvArm::new(&$r);
        $crate::__select!(@bind [$($bound)* (arm [$p] $body)] [$($rest)*] $def)
    }};
    (@bind [$($bound:tt)*] [(send ($s:expr, $m:expr) [$p:pat] $body:block) $($rest:tt)*] $def:tt) => {{
        let arm = $crate::chan::SendArm::new(&$s, $m);
        $crate::__select!(@bind [$($bound)* (arm [$p] $body)] [$($rest)*] $def)
    }};
    (@bind [$(($arm:ident [$p:pat] $body:block))*] [] [$($def:tt)*]) => {{
        let _ = $crate::chan::select(
            &[$(&$arm as &dyn $crate::chan::Arm),*],
            $crate::__select!(@mode $($def)*),
        );
        $(
            if let $crate::__private::Some(done) = $arm.take_result() {
                let $p = done;
                $body
            } else
        )*
        { $crate::__select!(@default $($def)*) }
    }};

    (@mode) => { $crate::chan::Mode::Block };
    (@mode (never) $body:block) => { $crate::chan::Mode::Never };
    (@mode (timeout ($t:expr)) $body:block) => { $crate::chan::Mode::timeout($t) };
    (@default) => { $crate::__private::unreachable!("a select without default waits for an arm") };
    (@default $how:tt $body:block) => { $body };
}
