//! The benchmarks' stand-in for S3: objects in memory, an optional delay before each answer
//! (S3's first-byte latency), a thread per connection. S3 costs its clients' machine nothing;
//! an endpoint in Node spent 0.4-0.9 ms of CPU per 256 KiB PUT (its garbage collector, copies)
//! on the two cores the tools run on. Prints "listening PORT" once it accepts connections; with
//! `--tls CERT_FILE` also HTTPS on a second port ("listening PORT tls PORT"), with a fresh
//! self-signed certificate for 127.0.0.1 written to CERT_FILE for the clients to trust.
//! `--connect-delay MS` holds each new connection that long before serving it (the round trips
//! of a TCP and TLS handshake with a distant S3); `--idle-close MS` closes a connection idle that
//! long (S3 closes idle keep-alive connections after about 20 s).
//!   bench-s3 [--port N] [--delay MS] [--tls CERT_FILE] [--connect-delay MS] [--idle-close MS]

mod http;
mod s3;

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

fn arg_text(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == &format!("--{name}"))?;
    Some(args.get(i + 1).cloned().unwrap_or_else(|| {
        eprintln!("bench-s3: --{name} takes a value");
        std::process::exit(2)
    }))
}

fn arg(name: &str, default: u64) -> u64 {
    arg_text(name).map_or(default, |v| {
        v.parse().unwrap_or_else(|_| {
            eprintln!("bench-s3: --{name} takes a number");
            std::process::exit(2)
        })
    })
}

/// Answers the connection's requests until it closes. Answers go out through the reader's
/// stream: HTTP/1.1 without pipelining never has a request waiting while one is answered.
fn serve<S: Read + Write>(mut reader: BufReader<S>, store: &s3::Store, delay: Duration) -> std::io::Result<()> {
    loop {
        let mut req = match http::read_request(&mut reader) {
            Ok(Some(req)) => req,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let answer = format!("HTTP/1.1 400 Bad Request\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{e}", e.to_string().len());
                reader.get_mut().write_all(answer.as_bytes())?;
                return reader.get_mut().flush();
            }
            Err(e) => return Err(e),
        };
        let answer = store.handle(&mut req);
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        http::write_response(reader.get_mut(), &answer.response(req.method == "HEAD"))?;
        if req.close {
            return Ok(());
        }
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost, its PEM written to `path`.
fn tls_config(path: &str) -> Arc<rustls::ServerConfig> {
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        eprintln!("bench-s3: {what}: {e}");
        std::process::exit(1)
    };
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap_or_else(|e| fail("making a certificate", &e));
    std::fs::write(path, made.cert.pem()).unwrap_or_else(|e| fail(&format!("writing {path}"), &e));
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.key_pair.serialize_der().into());
    // ring builds with a C compiler alone; its lack of post-quantum key exchange (the deprecation)
    // is beside the point on loopback.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(vec![made.cert.der().clone()], key))
        .unwrap_or_else(|e| fail("setting up TLS", &e));
    Arc::new(config)
}

fn listen() -> TcpListener {
    TcpListener::bind(("127.0.0.1", 0)).unwrap_or_else(|e| {
        eprintln!("bench-s3: cannot listen: {e}");
        std::process::exit(1)
    })
}

/// How each connection is served: the delay before each answer, and the connection's own.
#[derive(Clone, Copy)]
struct Timing {
    delay: Duration,
    connect_delay: Duration,
    /// Zero: never closed for idling.
    idle_close: Duration,
}

/// Serves each connection the listener accepts on a thread of its own, through `wrap`.
fn accept_all<S: Read + Write + 'static>(
    listener: TcpListener,
    store: Arc<s3::Store>,
    timing: Timing,
    wrap: impl Fn(TcpStream) -> Option<S> + Send + Sync + 'static,
) {
    let wrap = Arc::new(wrap);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if stream.set_nodelay(true).is_err() {
            continue;
        }
        // A read that waits longer ends the connection (serve returns its error): only a client
        // that sends nothing for that long meets it, mid-request or between requests.
        if !timing.idle_close.is_zero() && stream.set_read_timeout(Some(timing.idle_close)).is_err() {
            continue;
        }
        let (store, wrap) = (Arc::clone(&store), Arc::clone(&wrap));
        std::thread::spawn(move || {
            if !timing.connect_delay.is_zero() {
                std::thread::sleep(timing.connect_delay);
            }
            if let Some(s) = wrap(stream) {
                let _ = serve(BufReader::with_capacity(64 * 1024, s), &store, timing.delay);
            }
        });
    }
}

fn main() {
    let timing = Timing {
        delay: Duration::from_millis(arg("delay", 0)),
        connect_delay: Duration::from_millis(arg("connect-delay", 0)),
        idle_close: Duration::from_millis(arg("idle-close", 0)),
    };
    let listener = TcpListener::bind(("127.0.0.1", arg("port", 0) as u16)).unwrap_or_else(|e| {
        eprintln!("bench-s3: cannot listen: {e}");
        std::process::exit(1)
    });
    let store = Arc::new(s3::Store::default());
    let mut line = format!("listening {}", listener.local_addr().unwrap().port());
    if let Some(path) = arg_text("tls") {
        let config = tls_config(&path);
        let tls = listen();
        line += &format!(" tls {}", tls.local_addr().unwrap().port());
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            accept_all(tls, store, timing, move |s| {
                rustls::ServerConnection::new(Arc::clone(&config)).ok().map(|c| rustls::StreamOwned::new(c, s))
            });
        });
    }
    println!("{line}");
    std::io::stdout().flush().unwrap();
    // Exit with the parent (the bench), even if it dies without stopping us.
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        if std::os::unix::process::parent_id() != parent {
            std::process::exit(0);
        }
    });
    accept_all(listener, store, timing, Some);
}
