//! The S3 subset the tools use, path-style: GET, PUT, HEAD, DELETE of objects (with
//! `If-None-Match`), multi-object delete (POST `?delete`: mkfs's and ext4's trims), ListObjects v1
//! and v2 (`prefix`, `max-keys`, `marker`, `start-after`, `continuation-token`).

use crate::http::{percent_decode, Request, Response};
use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub struct Object {
    body: Vec<u8>,
    /// Content-Type, Content-Encoding and x-amz-meta-*: what S3 hands back on a GET.
    headers: Vec<(String, String)>,
    etag: String,
}

/// Objects by "bucket/key", in key order for listing; and the requests seen, for the bench.
#[derive(Default)]
pub struct Store(Mutex<BTreeMap<String, Arc<Object>>>, Counts);

/// Requests by the first segment of their keys (each tool in the bench has its own prefix), and
/// kind: what a workload costs in S3 requests, asked for with `GET /_bench/requests` (no S3 bucket
/// name starts with an underscore).
#[derive(Default)]
struct Counts(Mutex<BTreeMap<String, [u64; KINDS.len()]>>);

const KINDS: [&str; 6] = ["GET", "PUT", "HEAD", "DELETE", "LIST", "POST"];

impl Counts {
    fn add(&self, key: &str, kind: &str) {
        let segment = key.split('/').next().unwrap_or("").to_string();
        let i = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
        self.0.lock().unwrap().entry(segment).or_default()[i] += 1;
    }

    fn json(&self) -> String {
        let by_segment: Vec<String> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(segment, n)| {
                let kinds: Vec<String> = KINDS.iter().zip(n).map(|(k, n)| format!("\"{k}\":{n}")).collect();
                format!("\"{}\":{{{}}}", segment.replace('\\', "\\\\").replace('"', "\\\""), kinds.join(","))
            })
            .collect();
        format!("{{{}}}", by_segment.join(","))
    }
}

/// What a request is answered with: a body of its own, or a stored object's.
pub enum Body {
    Owned(Vec<u8>),
    Stored(Arc<Object>),
}

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Answer {
    fn new(status: u16) -> Answer {
        Answer { status, headers: Vec::new(), body: Body::Owned(Vec::new()) }
    }

    fn xml(status: u16, xml: String) -> Answer {
        Answer { status, headers: vec![("content-type".into(), "application/xml".into())], body: Body::Owned(xml.into_bytes()) }
    }

    pub fn response(&self, head_only: bool) -> Response<'_> {
        let body = match &self.body {
            Body::Owned(b) => b.as_slice(),
            Body::Stored(o) => o.body.as_slice(),
        };
        Response { status: self.status, headers: &self.headers, body, omit_body: head_only }
    }
}

fn kept(header: &str) -> bool {
    header == "content-type" || header == "content-encoding" || header.starts_with("x-amz-meta-")
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 (Content-MD5); `None` if it is not.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for &c in s.trim_end_matches('=').as_bytes() {
        acc = (acc << 6) | u32::from(value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

impl Store {
    pub fn handle(&self, req: &mut Request) -> Answer {
        let path = req.path.strip_prefix('/').unwrap_or(&req.path);
        let (bucket, key) = match path.split_once('/') {
            Some((b, k)) => (b, percent_decode(k)),
            None => (path, String::new()),
        };
        if bucket == "_bench" && key == "requests" {
            return Answer {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: Body::Owned(self.1.json().into_bytes()),
            };
        }
        let id = format!("{bucket}/{key}");
        if key.is_empty() {
            return match req.method.as_str() {
                "POST" if req.param("delete").is_some() => {
                    let body = String::from_utf8_lossy(&req.body).into_owned();
                    Answer::xml(200, self.delete_many(bucket, &body))
                }
                "GET" => {
                    self.1.add(req.param("prefix").unwrap_or(""), "LIST");
                    Answer::xml(200, self.list(bucket, req))
                }
                _ => Answer::new(200),
            };
        }
        self.1.add(&key, &req.method);
        match req.method.as_str() {
            "PUT" => {
                let headers = req.headers.iter().filter(|(n, _)| kept(n)).cloned().collect();
                // S3 checks a Content-MD5 on its own machines; this stand-in shares the client's
                // cores, so it takes the one sent (each tool sends it) and hashes only without.
                let etag = match req.header("content-md5").and_then(base64_decode) {
                    Some(d) => hex(&d),
                    None => hex(&Md5::digest(&req.body)),
                };
                let object = Object { body: std::mem::take(&mut req.body), headers, etag: etag.clone() };
                self.0.lock().unwrap().insert(id, Arc::new(object));
                let mut a = Answer::new(200);
                a.headers.push(("etag".into(), format!("\"{etag}\"")));
                a
            }
            "DELETE" => {
                self.0.lock().unwrap().remove(&id);
                Answer::new(204)
            }
            _ => {
                let Some(obj) = self.0.lock().unwrap().get(&id).cloned() else {
                    return Answer::xml(404, r#"<?xml version="1.0"?><Error><Code>NoSuchKey</Code></Error>"#.into());
                };
                if req.header("if-none-match").is_some_and(|t| t.replace('"', "") == obj.etag) {
                    return Answer::new(304);
                }
                let mut a = Answer::new(200);
                a.headers.extend(obj.headers.iter().cloned());
                a.headers.push(("etag".into(), format!("\"{}\"", obj.etag)));
                a.headers.push(("last-modified".into(), "Thu, 01 Jan 1970 00:00:00 GMT".into()));
                a.body = Body::Stored(obj);
                a
            }
        }
    }

    fn list(&self, bucket: &str, req: &Request) -> String {
        let prefix = req.param("prefix").unwrap_or("");
        let max: usize = req.param("max-keys").and_then(|m| m.parse().ok()).unwrap_or(1000);
        let after = req.param("continuation-token").or(req.param("marker")).or(req.param("start-after")).unwrap_or("");
        let base = format!("{bucket}/");
        let objects = self.0.lock().unwrap();
        let mut page = Vec::new();
        let mut truncated = false;
        for (id, obj) in objects.range(format!("{base}{prefix}")..) {
            let Some(k) = id.strip_prefix(&base) else { break };
            if !k.starts_with(prefix) {
                break;
            }
            if k <= after {
                continue;
            }
            if page.len() == max {
                truncated = true;
                break;
            }
            page.push((k.to_string(), obj.body.len(), obj.etag.clone()));
        }
        drop(objects);
        let last = page.last().map(|(k, _, _)| k.as_str()).unwrap_or("");
        let next = match (truncated, req.param("list-type") == Some("2")) {
            (false, _) => String::new(),
            (true, true) => format!("<NextContinuationToken>{}</NextContinuationToken>", xml_escape(last)),
            (true, false) => format!("<NextMarker>{}</NextMarker>", xml_escape(last)),
        };
        let contents: String = page
            .iter()
            .map(|(k, size, etag)| format!("<Contents><Key>{}</Key><Size>{size}</Size><ETag>\"{etag}\"</ETag></Contents>", xml_escape(k)))
            .collect();
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>{bucket}</Name><Prefix>{}</Prefix><KeyCount>{}</KeyCount><MaxKeys>{max}</MaxKeys><IsTruncated>{truncated}</IsTruncated>{next}{contents}</ListBucketResult>"#,
            xml_escape(prefix),
            page.len()
        )
    }

    /// Deletes each `<Key>` of a multi-object delete's body; every one is answered as deleted.
    fn delete_many(&self, bucket: &str, xml: &str) -> String {
        let mut keys = Vec::new();
        let mut rest = xml;
        while let Some(start) = rest.find("<Key>") {
            let after = &rest[start + 5..];
            let Some(end) = after.find("</Key>") else { break };
            keys.push(xml_unescape(&after[..end]));
            rest = &after[end + 6..];
        }
        self.1.add(keys.first().map_or("", String::as_str), "POST");
        let mut objects = self.0.lock().unwrap();
        for k in &keys {
            objects.remove(&format!("{bucket}/{k}"));
        }
        drop(objects);
        let deleted: String = keys.iter().map(|k| format!("<Deleted><Key>{}</Key></Deleted>", xml_escape(k))).collect();
        format!(r#"<?xml version="1.0" encoding="UTF-8"?><DeleteResult>{deleted}</DeleteResult>"#)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_an_md5() {
        assert_eq!(base64_decode("1B2M2Y8AsgTpgAmY7PhCfg==").map(|d| hex(&d)), Some("d41d8cd98f00b204e9800998ecf8427e".into()));
        assert_eq!(base64_decode("not base64!"), None);
    }

    #[test]
    fn multi_delete_reads_escaped_keys() {
        let store = Store::default();
        store.0.lock().unwrap().insert("b/a&b".into(), Arc::new(Object { body: vec![], headers: vec![], etag: String::new() }));
        let out = store.delete_many("b", "<Delete><Object><Key>a&amp;b</Key></Object></Delete>");
        assert!(out.contains("<Deleted><Key>a&amp;b</Key></Deleted>"));
        assert!(store.0.lock().unwrap().is_empty());
    }
}
