//! growstack::net: sockets in tasks and on plain threads, and what happens
//! at the edges (resets, half-closes, signals, running out of descriptors,
//! timeouts, closes and runtime drops while a task is parked).
//!
//! All traffic is on 127.0.0.1. The tests of this file run one at a time
//! (`serial`): some count the process's descriptors.

mod common;

use std::io::{ErrorKind, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use common::{child, within};
use growstack::net::{TcpListener, TcpStream, UdpSocket};
use growstack::task::Cancelled;
use growstack::{Runtime, chan};

const LIMIT: Duration = Duration::from_secs(60);

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn runtime(workers: usize) -> Runtime {
    growstack::Builder::new().workers(workers).build().unwrap()
}

fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// Echoes every byte back until the peer closes.
fn echo(mut s: TcpStream) {
    let mut buf = [0; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// Sends a few numbers through the echo at `addr` and returns their sum as
/// echoed, and the thread it ran on.
fn round_trips(addr: SocketAddr, base: u64) -> (u64, ThreadId) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut sum = 0;
    for j in 0..20 {
        s.write_all(&(base + j).to_le_bytes()).unwrap();
        let mut back = [0; 8];
        s.read_exact(&mut back).unwrap();
        sum += u64::from_le_bytes(back);
    }
    (sum, std::thread::current().id())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Sets SO_LINGER to zero: closing the socket then sends a reset.
fn linger_zero(fd: &impl AsRawFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a linger struct of the right size.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const l).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(ret, 0);
}

#[test]
fn many_connections_are_served_at_once_on_two_workers() {
    let _serial = serial();
    within(LIMIT, "echo on two workers", || {
        let rt = runtime(2);
        let (results, expect) = rt.block_on(|| {
            let (l, addr) = listener();
            growstack::spawn(move || {
                for s in l.incoming() {
                    let s = s.unwrap();
                    growstack::spawn(move || echo(s));
                }
            });
            let clients: Vec<_> = (0..64u64)
                .map(|i| growstack::spawn(move || round_trips(addr, i * 100)))
                .collect();
            let expect: u64 = (0..64u64)
                .map(|i| (0..20).map(|j| i * 100 + j).sum::<u64>())
                .sum();
            let results: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
            (results, expect)
        });
        // (Which workers the tasks land on is the scheduler's choice; a
        // stream used on two workers is `a_stream_moved_to_a_task_of_
        // another_worker_works`.)
        assert_eq!(results.iter().map(|r| r.0).sum::<u64>(), expect);
    });
}

#[test]
fn the_same_calls_block_a_plain_thread() {
    let _serial = serial();
    within(LIMIT, "threads and tasks", || {
        // A server on a plain thread, a client task; then the reverse.
        let (l, addr) = listener();
        let server = std::thread::spawn(move || echo(l.accept().unwrap().0));
        let rt = runtime(2);
        let (sum, _) = rt.block_on(move || round_trips(addr, 1000));
        assert_eq!(sum, (1000..1020).sum::<u64>());
        server.join().unwrap();

        let (l, addr) = listener();
        let server = rt.spawn(move || echo(l.accept().unwrap().0));
        let (sum, _) = round_trips(addr, 2000);
        assert_eq!(sum, (2000..2020).sum::<u64>());
        server.join().unwrap();
    });
}

#[test]
fn a_stream_moved_to_a_task_of_another_worker_works() {
    let _serial = serial();
    within(LIMIT, "stream moved between workers", || {
        let rt = runtime(2);
        rt.block_on(|| {
            let (l, addr) = listener();
            let server = growstack::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                // Registered with this worker's poller by the first wait.
                let mut first = [0; 5];
                s.read_exact(&mut first).unwrap();
                assert_eq!(&first, b"first");
                let here = std::thread::current().id();
                // Spawn until a task lands on the other worker, and move
                // the stream there.
                let (tx, rx) = chan::bounded(1);
                let mut s = Some(s);
                loop {
                    let (t, stream) = (tx.clone(), s.take().unwrap());
                    let h = growstack::spawn(move || {
                        if std::thread::current().id() == here {
                            return Some(stream);
                        }
                        let mut stream = stream;
                        let mut rest = [0; 6];
                        stream.read_exact(&mut rest).unwrap();
                        stream.write_all(b"ok").unwrap();
                        t.send(rest).unwrap();
                        None
                    });
                    match h.join().unwrap() {
                        Some(back) => {
                            s = Some(back);
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        None => break,
                    }
                }
                rx.recv().unwrap()
            });
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"first").unwrap();
            growstack::sleep(Duration::from_millis(20));
            c.write_all(b"second").unwrap();
            let mut ok = [0; 2];
            c.read_exact(&mut ok).unwrap();
            assert_eq!(&ok, b"ok");
            assert_eq!(&server.join().unwrap(), b"second");
        });
    });
}

#[test]
fn a_reader_task_and_a_writer_task_share_one_connection() {
    let _serial = serial();
    within(LIMIT, "shared &TcpStream", || {
        let rt = runtime(2);
        let got = rt.block_on(|| {
            let (l, addr) = listener();
            growstack::spawn(move || echo(l.accept().unwrap().0));
            let s = Arc::new(TcpStream::connect(addr).unwrap());
            let w = Arc::clone(&s);
            let writer = growstack::spawn(move || {
                for i in 0..10_000u32 {
                    (&*w).write_all(&i.to_le_bytes()).unwrap();
                }
                w.shutdown(Shutdown::Write).unwrap();
            });
            let mut all = Vec::new();
            (&*s).read_to_end(&mut all).unwrap();
            writer.join().unwrap();
            all
        });
        let want: Vec<u8> = (0..10_000u32).flat_map(u32::to_le_bytes).collect();
        assert_eq!(got, want);
    });
}

#[test]
fn half_close_then_read_to_the_end() {
    let _serial = serial();
    within(LIMIT, "half close", || {
        let rt = runtime(2);
        let reply = rt.block_on(|| {
            let (l, addr) = listener();
            growstack::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let mut req = Vec::new();
                s.read_to_end(&mut req).unwrap();
                s.write_all(format!("got {} bytes", req.len()).as_bytes())
                    .unwrap();
            });
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(&[1; 100_000]).unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).unwrap();
            reply
        });
        assert_eq!(reply, "got 100000 bytes");
    });
}

#[test]
fn a_reset_wakes_a_parked_reader_with_an_error() {
    let _serial = serial();
    within(LIMIT, "reset mid-read", || {
        let rt = runtime(2);
        let err = rt.block_on(|| {
            let (l, addr) = listener();
            let reader = growstack::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0; 16];
                s.read_exact(&mut buf[..4]).unwrap();
                // Parks here until the reset.
                s.read(&mut buf)
            });
            let c = std::net::TcpStream::connect(addr).unwrap();
            (&c).write_all(b"ping").unwrap();
            growstack::sleep(Duration::from_millis(50));
            linger_zero(&c);
            drop(c);
            reader.join().unwrap()
        });
        assert_eq!(err.unwrap_err().kind(), ErrorKind::ConnectionReset);
    });
}

#[test]
fn a_reset_fails_a_parked_writer() {
    let _serial = serial();
    within(LIMIT, "reset mid-write", || {
        let rt = runtime(2);
        let (err, written) = rt.block_on(|| {
            let (l, addr) = listener();
            let written = Arc::new(AtomicUsize::new(0));
            let w = Arc::clone(&written);
            let writer = growstack::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let chunk = vec![9u8; 64 << 10];
                // The peer never reads: the buffers fill and this parks.
                loop {
                    match s.write(&chunk) {
                        Ok(n) => w.fetch_add(n, Ordering::SeqCst),
                        Err(e) => return e,
                    };
                }
            });
            let c = std::net::TcpStream::connect(addr).unwrap();
            while written.load(Ordering::SeqCst) == 0 {
                growstack::sleep(Duration::from_millis(5));
            }
            growstack::sleep(Duration::from_millis(50));
            linger_zero(&c);
            drop(c);
            (writer.join().unwrap(), written.load(Ordering::SeqCst))
        });
        assert!(written > 0);
        assert!(
            matches!(
                err.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ),
            "{err:?}"
        );
    });
}

#[test]
fn a_read_timeout_fails_with_would_block_as_std() {
    let _serial = serial();
    within(LIMIT, "read timeout", || {
        let rt = runtime(2);
        let (l, addr) = listener();
        let c = std::net::TcpStream::connect(addr).unwrap();
        let (s, _) = l.accept().unwrap();
        let timeout = Duration::from_millis(30);
        s.set_read_timeout(Some(timeout)).unwrap();
        assert_eq!(s.read_timeout().unwrap(), Some(timeout));
        assert_eq!(
            s.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        let s = Arc::new(s);
        let in_task = {
            let s = Arc::clone(&s);
            rt.spawn(move || {
                let start = Instant::now();
                let err = (&*s).read(&mut [0; 8]).unwrap_err();
                (err.kind(), start.elapsed())
            })
            .join()
            .unwrap()
        };
        let start = Instant::now();
        let on_thread = ((&*s).read(&mut [0; 8]).unwrap_err().kind(), start.elapsed());
        // std's blocking socket, for comparison.
        c.set_read_timeout(Some(timeout)).unwrap();
        let std_kind = (&c).read(&mut [0; 8]).unwrap_err().kind();
        for (kind, elapsed) in [in_task, on_thread] {
            assert_eq!(kind, std_kind);
            assert_eq!(kind, ErrorKind::WouldBlock);
            assert!(elapsed >= timeout, "returned after {elapsed:?}");
        }
        // The socket still works after a timeout.
        (&c).write_all(b"late").unwrap();
        let mut buf = [0; 4];
        let got = {
            let s = Arc::clone(&s);
            rt.spawn(move || (&*s).read_exact(&mut buf).map(|()| buf))
                .join()
                .unwrap()
        };
        assert_eq!(&got.unwrap(), b"late");
    });
}

#[test]
fn dropping_a_clone_leaves_a_parked_reader_waiting_and_shutdown_wakes_it() {
    let _serial = serial();
    within(LIMIT, "drop while parked", || {
        let rt = runtime(1);
        let (l, addr) = listener();
        let c = std::net::TcpStream::connect(addr).unwrap();
        let (s, _) = l.accept().unwrap();
        let clone = s.try_clone().unwrap();
        let (tx, rx) = chan::bounded(1);
        let reader = rt.spawn(move || {
            let mut s = s;
            tx.send(()).unwrap();
            let mut buf = [0; 8];
            let first = s.read(&mut buf).map(|n| buf[..n].to_vec());
            let second = s.read(&mut buf).map(|n| buf[..n].to_vec());
            (first.unwrap(), second.unwrap())
        });
        let dropper = rt.spawn(move || {
            rx.recv().unwrap();
            // The reader is parked (one worker: it ran until it parked).
            growstack::yield_now();
            let shut = clone.try_clone().unwrap();
            drop(clone);
            shut
        });
        let shut = dropper.join().unwrap();
        // Still open: the reader gets data sent after the drop.
        (&c).write_all(b"after").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        shut.shutdown(Shutdown::Read).unwrap();
        let (first, second) = reader.join().unwrap();
        assert_eq!(first, b"after");
        assert_eq!(second, b"", "shutdown ends the stream");
    });
}

#[test]
fn dropping_the_runtime_cancels_a_task_parked_in_a_read() {
    let _serial = serial();
    within(LIMIT, "runtime dropped under a read", || {
        let (l, addr) = listener();
        let c = std::net::TcpStream::connect(addr).unwrap();
        let (s, _) = l.accept().unwrap();
        let rt = runtime(2);
        let (tx, rx) = chan::bounded(1);
        let reader = rt.spawn(move || {
            let mut s = s;
            tx.send(()).unwrap();
            s.read(&mut [0; 8])
        });
        rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(rt);
        let payload = reader.join().unwrap_err();
        assert_eq!(payload.downcast_ref::<Cancelled>(), Some(&Cancelled));
        // Data sent afterwards reaches nobody, and nothing breaks; a new
        // runtime serves new sockets.
        (&c).write_all(b"x").unwrap();
        let rt = runtime(2);
        let (sum, _) = {
            let (l, addr) = listener();
            rt.spawn(move || echo(l.accept().unwrap().0));
            rt.block_on(move || round_trips(addr, 5))
        };
        assert_eq!(sum, (5..25).sum::<u64>());
    });
}

#[test]
fn a_storm_of_connections_leaks_nothing() {
    let _serial = serial();
    within(Duration::from_secs(300), "connection storm", || {
        let before = open_fds();
        let rt = runtime(2);
        let served = rt.block_on(|| {
            let (l, addr) = listener();
            let served = Arc::new(AtomicUsize::new(0));
            let s2 = Arc::clone(&served);
            let server = growstack::spawn(move || {
                for _ in 0..10_000 {
                    let (mut s, _) = l.accept().unwrap();
                    let served = Arc::clone(&s2);
                    growstack::spawn(move || {
                        let mut b = [0; 1];
                        if s.read_exact(&mut b).is_ok() && s.write_all(&b).is_ok() {
                            served.fetch_add(1, Ordering::SeqCst);
                        }
                    });
                }
            });
            // 100 client tasks, 100 connections each, opened and closed.
            let clients: Vec<_> = (0..100)
                .map(|_| {
                    growstack::spawn(move || {
                        for _ in 0..100 {
                            let mut c = TcpStream::connect(addr).unwrap();
                            c.write_all(b"z").unwrap();
                            let mut b = [0; 1];
                            c.read_exact(&mut b).unwrap();
                            assert_eq!(&b, b"z");
                        }
                    })
                })
                .collect();
            clients.into_iter().for_each(|c| c.join().unwrap());
            server.join().unwrap();
            served
        });
        // The server's tasks close their sockets after the echo.
        let deadline = Instant::now() + Duration::from_secs(30);
        while served.load(Ordering::SeqCst) < 10_000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(served.load(Ordering::SeqCst), 10_000);
        while growstack::stats().tasks_live > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(growstack::stats().tasks_live, 0);
        drop(rt);
        assert_eq!(open_fds(), before, "descriptors back to the start");
    });
}

#[test]
fn signals_do_not_interrupt_a_read() {
    let _serial = serial();
    extern "C" fn on_signal(_: libc::c_int) {}
    within(LIMIT, "EINTR", || {
        // SAFETY: installs a handler that does nothing, without
        // SA_RESTART, so blocking calls fail with EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
        }
        let (l, addr) = listener();
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let (s, _) = l.accept().unwrap();
        let rt = runtime(1);
        // A plain thread blocked in a read (ppoll), and a worker asleep in
        // epoll_wait while its task is parked in a read.
        let (l2, addr2) = listener();
        let mut c2 = std::net::TcpStream::connect(addr2).unwrap();
        let (s2, _) = l2.accept().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            let mut s = s;
            let mut buf = [0; 4];
            s.read_exact(&mut buf).map(|()| buf)
        });
        let (wtx, wrx) = std::sync::mpsc::channel();
        let task = rt.spawn(move || {
            // SAFETY: as above.
            wtx.send(unsafe { libc::pthread_self() }).unwrap();
            let mut s = s2;
            let mut buf = [0; 4];
            s.read_exact(&mut buf).map(|()| buf)
        });
        let (t1, t2) = (rx.recv().unwrap(), wrx.recv().unwrap());
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(2));
            // SAFETY: both threads are alive (blocked in their reads).
            unsafe {
                libc::pthread_kill(t1, libc::SIGUSR2);
                libc::pthread_kill(t2, libc::SIGUSR2);
            }
        }
        c.write_all(b"data").unwrap();
        c2.write_all(b"more").unwrap();
        assert_eq!(&thread.join().unwrap().unwrap(), b"data");
        assert_eq!(&task.join().unwrap().unwrap(), b"more");
    });
}

/// A listener out of descriptors: its accept loop backs off instead of
/// spinning, the connections it has go on being served, and it accepts
/// again once descriptors are free (in a child process: it lowers its
/// descriptor limit).
#[test]
fn accept_at_the_fd_limit_child() {
    let Some(out) = child("accept_at_the_fd_limit_child", || {
        let rt = runtime(2);
        let (l, addr) = listener();
        let errors = Arc::new(AtomicUsize::new(0));
        let e2 = Arc::clone(&errors);
        rt.spawn(move || {
            // An accept loop that ignores errors, as servers do.
            for s in l.incoming() {
                match s {
                    Ok(s) => drop(growstack::spawn(move || echo(s))),
                    Err(e) => {
                        assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
                        e2.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        });
        // One served connection, then use up the descriptors.
        let mut served = std::net::TcpStream::connect(addr).unwrap();
        served.write_all(b"once").unwrap();
        served.read_exact(&mut [0; 4]).unwrap();
        let mut hog = Vec::new();
        // SAFETY: plain getrlimit/setrlimit on this process.
        unsafe {
            let lim = libc::rlimit {
                rlim_cur: (open_fds() + 40) as libc::rlim_t,
                rlim_max: 4096,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
        while let Ok(f) = std::fs::File::open("/dev/null") {
            hog.push(f);
        }
        // Two connections the server cannot accept now (the client's end
        // needs a descriptor too: free one each).
        hog.pop();
        let waiting = std::net::TcpStream::connect(addr).unwrap();
        // The existing connection is served meanwhile, many times over.
        let full_since = Instant::now();
        for i in 0..200u32 {
            served.write_all(&i.to_le_bytes()).unwrap();
            let mut b = [0; 4];
            served.read_exact(&mut b).unwrap();
            assert_eq!(u32::from_le_bytes(b), i);
            std::thread::sleep(Duration::from_millis(1));
        }
        let while_full = errors.load(Ordering::SeqCst);
        let full_for = full_since.elapsed();
        // Free descriptors: the waiting connection is accepted and served.
        hog.clear();
        let mut waiting = waiting;
        waiting.write_all(b"late").unwrap();
        let mut b = [0; 4];
        waiting.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"late");
        println!("errors while full: {while_full}");
        // A loop that spun would have seen an EMFILE per attempt, millions
        // of them; the backoff (1 ms doubling to 100 ms) allows 7 in the
        // first 127 ms and one per 100 ms after that.
        let allowed = 8 + full_for.as_millis() as usize / 100;
        assert!(
            (1..=allowed).contains(&while_full),
            "{while_full} accept errors in {full_for:?} out of descriptors"
        );
        std::process::exit(0);
    }) else {
        return;
    };
    common::assert_exited_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("errors while full:"), "{stdout}");
}

#[test]
fn udp_between_a_task_and_a_thread() {
    let _serial = serial();
    within(LIMIT, "udp", || {
        let rt = runtime(2);
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let task = rt.spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0; 16];
            for _ in 0..100 {
                let (n, from) = b.recv_from(&mut buf).unwrap();
                assert_eq!(from, a_addr);
                got.push(u32::from_le_bytes(buf[..n].try_into().unwrap()));
                b.send_to(&buf[..n], from).unwrap();
            }
            got
        });
        a.connect(b_addr).unwrap();
        let mut buf = [0; 16];
        for i in 0..100u32 {
            a.send(&i.to_le_bytes()).unwrap();
            let n = a.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &i.to_le_bytes());
        }
        assert_eq!(task.join().unwrap(), (0..100).collect::<Vec<_>>());
        a.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        assert_eq!(a.recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
    });
}

#[test]
fn non_blocking_mode_and_conversions_behave_as_std() {
    let _serial = serial();
    within(LIMIT, "conversions", || {
        let rt = runtime(1);
        let (l, addr) = listener();
        l.set_nonblocking(true).unwrap();
        assert_eq!(l.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
        l.set_nonblocking(false).unwrap();
        let c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(70))).unwrap();
        let (s, peer) = l.accept().unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        // std -> growstack keeps the timeouts; growstack -> std restores
        // blocking mode and the timeouts.
        // (The kernel rounds the timeout to its clock ticks.)
        let std_timeout = c.read_timeout().unwrap();
        assert!(std_timeout.is_some());
        let c = TcpStream::from(c);
        assert_eq!(c.read_timeout().unwrap(), std_timeout);
        c.set_nonblocking(true).unwrap();
        assert_eq!(
            (&c).read(&mut [0; 4]).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        c.set_nonblocking(false).unwrap();
        let c = c.into_std().unwrap();
        assert_eq!(c.read_timeout().unwrap(), std_timeout);
        let start = Instant::now();
        assert_eq!(
            (&c).read(&mut [0; 4]).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        assert!(
            start.elapsed() >= Duration::from_millis(70),
            "blocking again"
        );
        s.set_nodelay(true).unwrap();
        assert!(s.nodelay().unwrap());
        s.set_ttl(33).unwrap();
        assert_eq!(s.ttl().unwrap(), 33);
        assert!(s.take_error().unwrap().is_none());
        // peek, from a task.
        (&c).write_all(b"peek").unwrap();
        let s = rt
            .spawn(move || {
                let mut b = [0; 4];
                assert_eq!(s.peek(&mut b).unwrap(), 4);
                assert_eq!(&b, b"peek");
                let mut s = s;
                s.read_exact(&mut b).unwrap();
                assert_eq!(&b, b"peek");
                s
            })
            .join()
            .unwrap();
        // A refused connection, from a task.
        drop(l);
        let refused = rt
            .spawn(move || TcpStream::connect(addr).map(drop))
            .join()
            .unwrap();
        assert_eq!(refused.unwrap_err().kind(), ErrorKind::ConnectionRefused);
        let timeout = rt
            .spawn(move || TcpStream::connect_timeout(&addr, Duration::ZERO).map(drop))
            .join()
            .unwrap();
        assert_eq!(timeout.unwrap_err().kind(), ErrorKind::InvalidInput);
        drop(s);
    });
}

/// A connected pair: a growstack stream (the server's end) and a std one.
fn pair() -> (TcpStream, std::net::TcpStream) {
    let (l, addr) = listener();
    let c = std::net::TcpStream::connect(addr).unwrap();
    let (s, _) = l.accept().unwrap();
    (s, c)
}

/// After a read that returned fewer bytes than asked, a task's next read
/// may wait for an event instead of trying: these are the cases where a
/// short read leaves something to read, and no event will come.
#[test]
fn short_reads_that_leave_something_to_read_do_not_hang() {
    let _serial = serial();
    within(LIMIT, "short reads", || {
        let rt = runtime(1);
        // The last bytes and the end of the stream, announced by one event.
        let (mut s, mut c) = pair();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let reader = rt.spawn(move || {
            let mut buf = [0; 1024];
            let first = s.read(&mut buf).unwrap(); // parks: registers
            tx.send(()).unwrap();
            growstack::sleep(Duration::from_millis(50));
            let last = s.read(&mut buf).unwrap(); // short
            let end = s.read(&mut buf).unwrap(); // 0: the end
            (first, last, end)
        });
        std::thread::sleep(Duration::from_millis(20));
        c.write_all(b"x").unwrap();
        rx.recv().unwrap();
        c.write_all(b"hello").unwrap();
        drop(c);
        assert_eq!(reader.join().unwrap(), (1, 5, 0));

        // TCP urgent data: a read stops at its mark.
        let (mut s, c) = pair();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let reader = rt.spawn(move || {
            let mut buf = [0; 100];
            let mut got = Vec::new();
            let n = s.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            tx.send(()).unwrap();
            growstack::sleep(Duration::from_millis(50));
            while got.len() < 11 {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        std::thread::sleep(Duration::from_millis(20));
        (&c).write_all(b"a").unwrap();
        rx.recv().unwrap();
        (&c).write_all(b"hello").unwrap();
        // SAFETY: sends one byte from a valid buffer on an open socket.
        let sent = unsafe { libc::send(c.as_raw_fd(), b"X".as_ptr().cast(), 1, libc::MSG_OOB) };
        assert_eq!(sent, 1);
        (&c).write_all(b"world").unwrap();
        assert_eq!(reader.join().unwrap(), b"ahelloworld");

        // A vectored read of more buffers than one call takes.
        let (s, mut c) = pair();
        c.write_all(&[7; 3000]).unwrap();
        let got = rt
            .spawn(move || {
                let mut bytes = vec![[0u8; 1]; 2000];
                let mut total = 0;
                while total < 3000 {
                    let mut bufs: Vec<_> = bytes.iter_mut().map(|b| IoSliceMut::new(b)).collect();
                    total += (&s).read_vectored(&mut bufs).unwrap();
                }
                total
            })
            .join()
            .unwrap();
        assert_eq!(got, 3000);

        // Two readers of one stream: one's short read does not make the
        // other wait while bytes are queued.
        let (s, mut c) = pair();
        let s = Arc::new(s);
        let (tx, rx) = chan::bounded::<()>(0);
        let b = {
            let s = Arc::clone(&s);
            rt.spawn(move || {
                let mut buf = [0; 1024];
                let short = (&*s).read(&mut buf).unwrap(); // parks, then short
                rx.recv().unwrap();
                let rest = (&*s).read(&mut buf).unwrap();
                (short, rest)
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        c.write_all(&[1; 5]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        c.write_all(&[2; 100]).unwrap();
        let a = rt
            .spawn(move || {
                growstack::sleep(Duration::from_millis(20));
                let mut ten = [0; 10];
                (&*s).read_exact(&mut ten).unwrap();
                tx.send(()).unwrap();
                ten
            })
            .join()
            .unwrap();
        assert_eq!(a, [2; 10]);
        assert_eq!(b.join().unwrap(), (5, 90));
    });
}

#[test]
fn turning_a_clone_back_into_std_does_not_block_the_worker() {
    let _serial = serial();
    within(LIMIT, "into_std of a clone", || {
        let rt = runtime(1);
        let (s, _c) = pair();
        let std_clone = s.try_clone().unwrap().into_std().unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = Arc::clone(&ticks);
        let ticker = rt.spawn(move || {
            for _ in 0..5 {
                growstack::sleep(Duration::from_millis(5));
                t.fetch_add(1, Ordering::SeqCst);
            }
        });
        let reader = rt.spawn(move || (&s).read(&mut [0; 4]).unwrap_err().kind());
        assert_eq!(reader.join().unwrap(), ErrorKind::WouldBlock);
        ticker.join().unwrap();
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            5,
            "the other task ran meanwhile"
        );
        // The std handle blocks, as std's do.
        std_clone
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        assert_eq!(
            (&std_clone).read(&mut [0; 4]).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
    });
}

/// A socket waited for by tasks of two runtimes: when the runtime whose
/// worker polls it stops, the other's task is handed the socket.
#[test]
fn a_socket_outlives_the_runtime_that_polled_it() {
    let _serial = serial();
    within(LIMIT, "two runtimes, one socket", || {
        let (s, mut c) = pair();
        let s = Arc::new(s);
        let (r1, r2) = (runtime(1), runtime(1));
        let reader = {
            let s = Arc::clone(&s);
            r2.spawn(move || {
                let mut buf = [0; 4];
                (&*s).read_exact(&mut buf).map(|()| buf)
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        // A task of r1 waits last: the socket is polled by r1's worker.
        let s1 = Arc::clone(&s);
        let timed_out = r1
            .spawn(move || {
                s1.set_read_timeout(Some(Duration::from_millis(10)))
                    .unwrap();
                let kind = (&*s1).read(&mut [0; 4]).unwrap_err().kind();
                s1.set_read_timeout(None).unwrap();
                kind
            })
            .join()
            .unwrap();
        assert_eq!(timed_out, ErrorKind::WouldBlock);
        drop(r1);
        c.write_all(b"ping").unwrap();
        assert_eq!(&reader.join().unwrap().unwrap(), b"ping");
    });
}
