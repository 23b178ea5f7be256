//! An HTTP/1.1 keep-alive server, a task per connection, answering
//! "Hello, World!"; and a handler that recurses as deep as its request:
//! `POST /depth` with a JSON body answers the body's nesting depth,
//! computed by a plain recursive-descent parser marked `#[growable]`. A
//! body nested a million levels deep is parsed on the connection task's
//! own stack, which grows onto segments for it and shrinks back once the
//! task is idle again; a fixed-size stack (a thread's, a coroutine's)
//! would overflow.
//!
//! ```text
//! cargo run --release --example http_hello -- [ADDR] [WORKERS]
//! curl http://127.0.0.1:8080/
//! python3 -c 'print("["*100000 + "]"*100000)' | curl --data-binary @- http://127.0.0.1:8080/depth
//! ```
//!
//! `ADDR` defaults to 127.0.0.1:8080, `WORKERS` to the number of cores. It
//! runs until killed. Requests are parsed with `httparse`; pipelined
//! requests are answered in order, in one write.

use std::io::{Read, Write};

use growstack::net::{TcpListener, TcpStream};

/// Requests larger than this (headers and body) close the connection.
const MAX_REQUEST: usize = 64 << 20;

/// What a request asks for.
enum Route {
    Hello,
    Depth,
    NotFound,
}

/// Answers the requests of one connection until it closes.
fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    let mut filled = 0;
    let mut out = Vec::with_capacity(4096);
    loop {
        // Answer every complete request in the buffer.
        let mut start = 0;
        let mut close = false;
        while let Some((len, keep_alive)) = answer(&buf[start..filled], &mut out)? {
            start += len;
            if !keep_alive {
                close = true;
                break;
            }
        }
        if !out.is_empty() {
            stream.write_all(&out)?;
            out.clear();
        }
        if close {
            return Ok(());
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if filled == buf.len() {
            if buf.len() >= MAX_REQUEST {
                return Ok(());
            }
            buf.resize(buf.len() * 2, 0);
        }
        match stream.read(&mut buf[filled..])? {
            0 => return Ok(()),
            n => filled += n,
        }
    }
}

/// Parses one request at the start of `input` and appends its response to
/// `out`. `None` if the request is not complete yet; else its length and
/// whether the connection stays open.
fn answer(input: &[u8], out: &mut Vec<u8>) -> std::io::Result<Option<(usize, bool)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => {
            respond(out, "400 Bad Request", err.to_string().as_bytes(), false);
            return Ok(Some((input.len(), false)));
        }
    };
    let mut body_len = 0;
    let mut keep_alive = req.version == Some(1);
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            body_len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(usize::MAX);
        } else if h.name.eq_ignore_ascii_case("connection") {
            keep_alive = !h.value.eq_ignore_ascii_case(b"close");
        }
    }
    if body_len > MAX_REQUEST {
        respond(out, "413 Content Too Large", b"too large\n", false);
        return Ok(Some((input.len(), false)));
    }
    if input.len() < head + body_len {
        return Ok(None);
    }
    let route = match (req.method, req.path) {
        (Some("GET"), Some(_)) => Route::Hello,
        (Some("POST"), Some("/depth")) => Route::Depth,
        _ => Route::NotFound,
    };
    let body = &input[head..head + body_len];
    match route {
        Route::Hello => respond(out, "200 OK", b"Hello, World!", keep_alive),
        Route::Depth => match json::depth(body) {
            Ok(depth) => respond(out, "200 OK", format!("{depth}\n").as_bytes(), keep_alive),
            Err(err) => respond(
                out,
                "400 Bad Request",
                format!("{err}\n").as_bytes(),
                keep_alive,
            ),
        },
        Route::NotFound => respond(out, "404 Not Found", b"not found\n", keep_alive),
    }
    Ok(Some((head + body_len, keep_alive)))
}

fn respond(out: &mut Vec<u8>, status: &str, body: &[u8], keep_alive: bool) {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: {connection}\r\n\r\n",
        body.len()
    )
    .expect("writing to a Vec");
    out.extend_from_slice(body);
}

/// The nesting depth of a JSON document, by recursive descent: one call
/// per level, on a stack that grows as deep as the document goes.
mod json {
    pub fn depth(input: &[u8]) -> Result<usize, String> {
        let mut p = Parser { input, pos: 0 };
        let depth = p.value()?;
        p.skip_ws();
        if p.pos != input.len() {
            return Err(format!("trailing bytes at {}", p.pos));
        }
        Ok(depth)
    }

    struct Parser<'a> {
        input: &'a [u8],
        pos: usize,
    }

    impl Parser<'_> {
        fn peek(&self) -> Option<u8> {
            self.input.get(self.pos).copied()
        }

        fn skip_ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.pos += 1;
            }
        }

        fn expect(&mut self, c: u8) -> Result<(), String> {
            self.skip_ws();
            if self.peek() != Some(c) {
                return Err(format!("expected {:?} at {}", char::from(c), self.pos));
            }
            self.pos += 1;
            Ok(())
        }

        /// A value; returns its depth (a scalar is 0 deep).
        #[growstack::growable]
        fn value(&mut self) -> Result<usize, String> {
            self.skip_ws();
            match self.peek() {
                Some(open @ (b'[' | b'{')) => {
                    let close = if open == b'[' { b']' } else { b'}' };
                    self.pos += 1;
                    self.skip_ws();
                    let mut deepest = 0;
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        return Ok(1);
                    }
                    loop {
                        if open == b'{' {
                            self.string()?;
                            self.expect(b':')?;
                        }
                        deepest = deepest.max(self.value()?);
                        self.skip_ws();
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(c) if c == close => {
                                self.pos += 1;
                                return Ok(deepest + 1);
                            }
                            _ => return Err(format!("expected ',' at {}", self.pos)),
                        }
                    }
                }
                Some(b'"') => self.string().map(|()| 0),
                Some(b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
                    while matches!(
                        self.peek(),
                        Some(b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'E')
                    ) {
                        self.pos += 1;
                    }
                    Ok(0)
                }
                _ => Err(format!("expected a value at {}", self.pos)),
            }
        }

        fn string(&mut self) -> Result<(), String> {
            self.expect(b'"')?;
            loop {
                match self.peek() {
                    Some(b'"') => {
                        self.pos += 1;
                        return Ok(());
                    }
                    Some(b'\\') => self.pos += 2,
                    Some(_) => self.pos += 1,
                    None => return Err("unterminated string".into()),
                }
            }
        }
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let workers = args.next().map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |w| w.parse().expect("WORKERS is a number"),
    );
    let rt = growstack::Builder::new().workers(workers).build()?;
    rt.block_on(move || {
        let listener = TcpListener::bind(&addr)?;
        eprintln!("http_hello: listening on http://{}", listener.local_addr()?);
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => {
                    growstack::spawn(move || {
                        let _ = serve(stream);
                    });
                }
                Err(err) => eprintln!("http_hello: accept: {err}"),
            }
        }
        Ok(())
    })
}
