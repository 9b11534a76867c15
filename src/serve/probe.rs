//! `bertqa probe URL`: a plain-HTTP GET that exits 0 on a 2xx answer, so container health
//! checks need no curl (or any shell) in the runtime image.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// GETs `url` (`http://host:port/path`) within `timeout`; Ok with the status line on 2xx.
pub fn probe(url: &str, timeout: Duration) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs can be probed"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let address = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&address, timeout).map_err(|e| format!("{url}: {e}"))?;
    let io = |e: std::io::Error| format!("{url}: {e}");
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut head = [0u8; 64];
    let read = stream.read(&mut head).map_err(io)?;
    let status_line = String::from_utf8_lossy(&head[..read])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let code = status_line.split(' ').nth(1).unwrap_or_default();
    if code.starts_with('2') {
        Ok(status_line)
    } else {
        Err(format!("{url}: {status_line}"))
    }
}
