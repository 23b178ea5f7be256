//! growstack::net: sockets in tasks and on plain threads.

use std::io::{Read, Write};

use growstack::net::{TcpListener, TcpStream};

#[test]
fn echo_between_tasks() {
    let rt = growstack::Builder::new().workers(2).build().unwrap();
    let total = rt.block_on(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = growstack::spawn(move || {
            for _ in 0..50 {
                let (mut s, _) = listener.accept().unwrap();
                growstack::spawn(move || {
                    let mut buf = [0; 1024];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => s.write_all(&buf[..n]).unwrap(),
                        }
                    }
                });
            }
        });
        let clients: Vec<_> = (0..50)
            .map(|i| {
                growstack::spawn(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    let mut sum = 0u64;
                    for j in 0..100u64 {
                        let msg = (i * 1000 + j).to_le_bytes();
                        s.write_all(&msg).unwrap();
                        let mut back = [0; 8];
                        s.read_exact(&mut back).unwrap();
                        sum += u64::from_le_bytes(back);
                    }
                    sum
                })
            })
            .collect();
        let total: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
        server.join().unwrap();
        total
    });
    let expect: u64 = (0..50u64)
        .map(|i| (0..100).map(|j| i * 1000 + j).sum::<u64>())
        .sum();
    assert_eq!(total, expect);
}
