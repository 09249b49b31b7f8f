//! Just enough HTTP/1.1 for S3 clients: keep-alive, `Content-Length` or chunked bodies,
//! `Expect: 100-continue` (libcurl sends it before large PUTs).

use std::io::{self, BufRead, BufReader, IoSlice, Read, Write};

pub struct Request {
    pub method: String,
    /// The path as sent, still percent-encoded.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client asked for the connection to end after this answer.
    pub close: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

pub struct Response<'a> {
    pub status: u16,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// HEAD: the length of the body is announced, the body not sent.
    pub omit_body: bool,
}

const MAX_HEAD: usize = 64 * 1024;

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn read_line<S: Read>(r: &mut BufReader<S>, line: &mut String, budget: &mut usize) -> io::Result<usize> {
    line.clear();
    let n = r.by_ref().take(*budget as u64).read_line(line)?;
    *budget = budget.saturating_sub(n);
    if n > 0 && !line.ends_with('\n') {
        return Err(bad("request head too long"));
    }
    Ok(n)
}

/// Reads the next request on the connection; `None` once the client has closed it.
pub fn read_request<S: Read + Write>(r: &mut BufReader<S>) -> io::Result<Option<Request>> {
    let mut budget = MAX_HEAD;
    let mut line = String::new();
    loop {
        if read_line(r, &mut line, &mut budget)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (method, target, version) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v)) => (m.to_string(), t.to_string(), v.to_string()),
        _ => return Err(bad("malformed request line")),
    };
    let mut headers = Vec::new();
    loop {
        if read_line(r, &mut line, &mut budget)? == 0 {
            return Err(bad("connection closed inside a request head"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':').ok_or_else(|| bad("malformed header"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), parse_query(q)),
        None => (target, Vec::new()),
    };
    let mut req = Request { method, path, query, headers, body: Vec::new(), close: version == "HTTP/1.0" };
    if let Some(c) = req.header("connection") {
        req.close = c.eq_ignore_ascii_case("close");
    }
    if req.header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
        r.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        r.get_mut().flush()?;
    }
    if req.header("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked")) {
        req.body = read_chunked(r)?;
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
        req.body = vec![0; len];
        r.read_exact(&mut req.body)?;
    }
    Ok(Some(req))
}

fn read_chunked<S: Read>(r: &mut BufReader<S>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        let mut budget = MAX_HEAD;
        read_line(r, &mut line, &mut budget)?;
        let size = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size.trim(), 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while read_line(r, &mut line, &mut budget)? > 0 && !line.trim().is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        read_line(r, &mut line, &mut budget)?;
    }
}

pub fn write_response<W: Write>(w: &mut W, res: &Response) -> io::Result<()> {
    let reason = match res.status {
        200 => "OK",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Error",
    };
    let mut head = format!("HTTP/1.1 {} {}\r\n", res.status, reason);
    for (name, value) in res.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    // 204 and 304 carry no body, by definition.
    if res.status != 204 && res.status != 304 {
        head.push_str(&format!("content-length: {}\r\n", res.body.len()));
    }
    head.push_str("\r\n");
    let body = if res.omit_body || res.status == 204 || res.status == 304 { &[][..] } else { res.body };
    // Head and body in one system call, as a server that corks them does: a client then gets
    // them in the same reads.
    let (mut head, mut body) = (head.as_bytes(), body);
    while !head.is_empty() || !body.is_empty() {
        let n = w.write_vectored(&[IoSlice::new(head), IoSlice::new(body)])?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    w.flush()
}

/// `a=b&c=d` as URLSearchParams reads it: `+` is a space, `%XX` a byte.
fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(percent_decode("a%2Fb%20c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(
            parse_query("prefix=a+b%2F&list-type=2&delete"),
            vec![
                ("prefix".to_string(), "a b/".to_string()),
                ("list-type".to_string(), "2".to_string()),
                ("delete".to_string(), String::new()),
            ]
        );
    }
}
