//! A tiny HTTP/1.1 server for the proxy bench (`benches/proxy.rs`): every
//! request gets `200` and the same body of `SIZE` bytes, on a connection
//! kept open until the client closes it or asks `Connection: close`.
//!
//! It exists because busybox `httpd` forks per connection and closes each
//! one, which makes a benchmark measure connection setup (and SYN drops
//! under load) rather than the proxy. Standard library only, so the bench
//! compiles it with `rustc` alone, statically linked (`crt-static`), and
//! copies it into the lease's busybox container, which has no libc.
//!
//! Usage: `keepalive_httpd [PORT [SIZE [close]]]` (default 8080, 1024 and
//! keep-alive). With `close` it answers `Connection: close` and closes
//! every connection after one response, as busybox `httpd` does, but
//! without forking and with the standard library's accept queue (128
//! deep, where busybox's is 9): a connection per request without busybox's
//! SYN drops. It reads request heads and skips `Content-Length` bodies;
//! chunked request bodies are not supported (the bench sends GETs).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(8080);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let close_each = args.next().is_some_and(|a| a == "close");
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("keepalive_httpd: cannot listen on port {port}: {error}");
            std::process::exit(1);
        }
    };
    let connection = if close_each { "Connection: close\r\n" } else { "" };
    let mut reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {size}\r\n{connection}\r\n"
    )
    .into_bytes();
    reply.resize(reply.len() + size, b'x');
    let reply: Arc<[u8]> = reply.into();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let reply = reply.clone();
        std::thread::spawn(move || {
            // A connection's errors end that connection only.
            let _ = serve(stream, &reply, close_each);
        });
    }
}

/// Answers the requests of one connection until it closes (after the
/// first when `close_each`).
fn serve(stream: TcpStream, reply: &[u8], close_each: bool) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let (length, close) = read_headers(&mut reader, &mut line)?;
        io::copy(&mut (&mut reader).take(length), &mut io::sink())?;
        writer.write_all(reply)?;
        if close || close_each {
            return Ok(());
        }
    }
}

/// Reads header lines up to the blank one: the body's length and whether
/// the client asked to close.
fn read_headers(reader: &mut impl BufRead, line: &mut String) -> io::Result<(u64, bool)> {
    let mut length = 0;
    let mut close = false;
    loop {
        line.clear();
        if reader.read_line(line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            return Ok((length, close));
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().unwrap_or(0);
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
}
