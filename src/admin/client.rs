//! A minimal blocking HTTP/1.1 GET against the admin listener, for commands such as
//! `tracebridge coverage`: one request over `std::net::TcpStream` with
//! `Connection: close`, read to the end. No HTTP client dependency in the binary; the
//! admin listener is plain HTTP on loopback, so this is all it needs.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://host:port[/prefix]`.
    #[error("invalid admin URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No connection could be made.
    #[error("cannot connect to the admin listener at {url}: {source}")]
    Connect {
        /// The URL.
        url: String,
        /// The last connect error.
        source: io::Error,
    },
    /// The exchange failed half-way (reset, timeout).
    #[error("admin listener at {url}: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The error.
        source: io::Error,
    },
    /// The answer was not HTTP.
    #[error("admin listener at {url}: malformed HTTP response")]
    Malformed {
        /// The URL.
        url: String,
    },
    /// A status other than 200.
    #[error("admin listener at {url} answered {status}: {body}")]
    Status {
        /// The URL requested.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

/// `http://host[:port][/prefix]` split into the authority and the path prefix.
fn split_url(url: &str) -> Result<(&str, &str), ClientError> {
    let bad = |reason| ClientError::Url {
        url: url.to_string(),
        reason,
    };
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some(_) => return Err(bad("only http:// is supported")),
        None => url,
    };
    let (authority, prefix) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    Ok((authority, prefix.trim_end_matches('/')))
}

/// `GET {url}{path}` with `Accept: {accept}`; the body of a 200 answer.
pub fn get(url: &str, path: &str, accept: &str, timeout: Duration) -> Result<String, ClientError> {
    let (authority, prefix) = split_url(url)?;
    let target_url = format!("http://{authority}{prefix}{path}");
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let with_port = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let connect_error = |source| ClientError::Connect {
        url: url.to_string(),
        source,
    };
    let addrs: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .map_err(connect_error)?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host resolves to no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or_else(|| connect_error(last))?;
    let io_error = |source| ClientError::Io {
        url: target_url.clone(),
        source,
    };
    stream.set_read_timeout(Some(timeout)).map_err(io_error)?;
    stream.set_write_timeout(Some(timeout)).map_err(io_error)?;
    let request = format!(
        "GET {prefix}{path} HTTP/1.1\r\nHost: {authority}\r\nAccept: {accept}\r\n\
         User-Agent: tracebridge/{}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes()).map_err(io_error)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io_error)?;
    let (status, body) = parse_response(&raw).ok_or_else(|| ClientError::Malformed {
        url: target_url.clone(),
    })?;
    let body = String::from_utf8_lossy(&body).into_owned();
    if status != 200 {
        return Err(ClientError::Status {
            url: target_url,
            status,
            body: body.trim().chars().take(200).collect(),
        });
    }
    Ok(body)
}

/// Status and body of a complete HTTP/1.x response (`Content-Length`, chunked, or read
/// to the close).
fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().ok()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    if chunked {
        return Some((status, dechunk(rest)?));
    }
    match length {
        Some(n) => Some((status, rest.get(..n)?.to_vec())),
        None => Some((status, rest.to_vec())),
    }
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            split_url("http://127.0.0.1:9901").unwrap(),
            ("127.0.0.1:9901", "")
        );
        assert_eq!(
            split_url("http://gw.local:9901/admin/").unwrap(),
            ("gw.local:9901", "/admin")
        );
        assert_eq!(split_url("localhost:9901").unwrap(), ("localhost:9901", ""));
        assert!(split_url("https://x:1").is_err());
        assert!(split_url("http:///x").is_err());
    }

    #[test]
    fn responses() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef";
        assert_eq!(parse_response(r), Some((200, b"abc".to_vec())));
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(r), Some((200, b"abcde".to_vec())));
        let r = b"HTTP/1.0 404 Not Found\r\n\r\nnope";
        assert_eq!(parse_response(r), Some((404, b"nope".to_vec())));
        assert_eq!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n"), None);
    }

    #[test]
    fn nothing_listening_is_a_connect_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = get(
            &format!("http://127.0.0.1:{port}"),
            "/coverage",
            "text/plain",
            Duration::from_secs(2),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "cannot connect to the admin listener at http://127.0.0.1:{port}"
            )),
            "{err}"
        );
    }
}
