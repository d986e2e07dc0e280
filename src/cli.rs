//! What the command line does besides running the gateway: requests to a running
//! gateway's admin listener (`tracebridge coverage`), over reqwest's blocking client.

use std::time::Duration;

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The URL is not `http[s]://host[:port][/prefix]`.
    #[error("invalid admin URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection could be made.
    #[error("cannot connect to the admin listener at {url}: {reason}")]
    Connect {
        /// The URL as given.
        url: String,
        /// The innermost cause (`Connection refused (os error 111)`, ...).
        reason: String,
    },
    /// The exchange failed half-way (reset, timeout, not HTTP).
    #[error("admin listener at {url}: {reason}")]
    Exchange {
        /// The URL requested.
        url: String,
        /// What failed.
        reason: String,
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

/// The innermost cause of an error: reqwest's own message only says which request
/// failed, the OS error that says why is at the end of the chain.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// `GET {admin}{path}` with `Accept: {accept}`; the body of a 200 answer. `admin` is
/// the listener's base URL (`http://127.0.0.1:9901`, a path prefix allowed); without a
/// scheme, `http://` is assumed.
pub fn admin_get(
    admin: &str,
    path: &str,
    accept: &str,
    timeout: Duration,
) -> Result<String, AdminError> {
    let base = if admin.contains("://") {
        admin.to_string()
    } else {
        format!("http://{admin}")
    };
    let bad_url = |reason: String| AdminError::Url {
        url: admin.to_string(),
        reason,
    };
    // The base alone first: `http://` + `/coverage` would parse as host `coverage`.
    let parsed = reqwest::Url::parse(&base).map_err(|e| bad_url(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad_url("only http:// and https:// are supported".into()));
    }
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let parsed = reqwest::Url::parse(&url).map_err(|e| bad_url(e.to_string()))?;
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("tracebridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| AdminError::Exchange {
            url: url.clone(),
            reason: root_cause(&e),
        })?;
    let failed = |e: reqwest::Error| {
        if e.is_connect() {
            AdminError::Connect {
                url: admin.to_string(),
                reason: root_cause(&e),
            }
        } else {
            AdminError::Exchange {
                url: url.clone(),
                reason: root_cause(&e),
            }
        }
    };
    let response = client
        .get(parsed)
        .header(http::header::ACCEPT, accept)
        .send()
        .map_err(failed)?;
    let status = response.status().as_u16();
    let body = response.text().map_err(failed)?;
    if status != 200 {
        return Err(AdminError::Status {
            url,
            status,
            body: body.trim().chars().take(200).collect(),
        });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_other_than_http_are_refused_before_any_request() {
        for url in ["ftp://x:1", "http://", "http://[::1"] {
            let err = admin_get(url, "/coverage", "text/plain", Duration::from_secs(1));
            assert!(matches!(err, Err(AdminError::Url { .. })), "{url}: {err:?}");
        }
    }

    #[test]
    fn nothing_listening_is_a_connect_error_with_its_cause() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("127.0.0.1:{port}");
        let err = admin_get(&url, "/coverage", "text/plain", Duration::from_secs(2)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("cannot connect to the admin listener at {url}: ")),
            "{text}"
        );
        assert!(text.to_lowercase().contains("refused"), "{text}");
    }
}
