//! The benchmarks' stand-in for S3: objects in memory, an optional delay before each answer
//! (S3's first-byte latency), a thread per connection. S3 costs its clients' machine nothing;
//! an endpoint in Node spent 0.4-0.9 ms of CPU per 256 KiB PUT (its garbage collector, copies)
//! on the two cores the tools run on. Prints "listening PORT" once it accepts connections.
//!   bench-s3 [--port N] [--delay MS]

mod http;
mod s3;

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == &format!("--{name}")) {
        Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            eprintln!("bench-s3: --{name} takes a number");
            std::process::exit(2)
        }),
        None => default,
    }
}

fn serve(stream: TcpStream, store: &s3::Store, delay: Duration) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    loop {
        let mut req = match http::read_request(&mut reader) {
            Ok(Some(req)) => req,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let answer = format!("HTTP/1.1 400 Bad Request\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{e}", e.to_string().len());
                return writer.write_all(answer.as_bytes());
            }
            Err(e) => return Err(e),
        };
        let answer = store.handle(&mut req);
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        http::write_response(&mut writer, &answer.response(req.method == "HEAD"))?;
        if req.close {
            return Ok(());
        }
    }
}

fn main() {
    let delay = Duration::from_millis(arg("delay", 0));
    let listener = TcpListener::bind(("127.0.0.1", arg("port", 0) as u16)).unwrap_or_else(|e| {
        eprintln!("bench-s3: cannot listen: {e}");
        std::process::exit(1)
    });
    println!("listening {}", listener.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    // Exit with the parent (the bench), even if it dies without stopping us.
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        if std::os::unix::process::parent_id() != parent {
            std::process::exit(0);
        }
    });
    let store = Arc::new(s3::Store::default());
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            let _ = serve(stream, &store, delay);
        });
    }
}
