//! The built-in `echo` upstream: answers with a JSON description of the request as
//! the gateway would have forwarded it (after every request filter).

use pingora::http::RequestHeader;
use serde_json::{Map, Value};

/// `{"method": ..., "path": ..., "headers": {"name": "value" or ["v1", "v2"]}}`.
/// Header names are lowercase; repeated headers become arrays in arrival order; values
/// that are not UTF-8 are shown lossily.
pub(super) fn describe(req: &RequestHeader) -> Vec<u8> {
    let mut headers = Map::new();
    for (name, value) in req.headers.iter() {
        let value = Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned());
        match headers.get_mut(name.as_str()) {
            None => {
                headers.insert(name.as_str().to_string(), value);
            }
            Some(Value::Array(values)) => values.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
        }
    }
    let path = req
        .uri
        .path_and_query()
        .map_or_else(|| req.uri.path().to_string(), |pq| pq.as_str().to_string());
    let mut body = serde_json::json!({
        "method": req.method.as_str(),
        "path": path,
        "headers": headers,
    })
    .to_string()
    .into_bytes();
    body.push(b'\n');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_headers_become_arrays() {
        let mut req = RequestHeader::build("POST", b"/a?b=1", None).unwrap();
        req.append_header("x-one", "1").unwrap();
        req.append_header("x-two", "a").unwrap();
        req.append_header("x-two", "b").unwrap();
        let v: Value = serde_json::from_slice(&describe(&req)).unwrap();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/a?b=1");
        assert_eq!(v["headers"]["x-one"], "1");
        assert_eq!(v["headers"]["x-two"], serde_json::json!(["a", "b"]));
    }
}
