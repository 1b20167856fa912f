//! Requests that wait out a worker's `429 Too Many Requests` by themselves, when the wait is
//! short.

use std::time::Duration;

/// Most times a request refused with `429 Too Many Requests` is sent again.
pub(crate) const RETRIES_ON_429: u32 = 5;
/// Longest `Retry-After` the client waits out by itself; longer ones go back to the caller.
pub(crate) const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);

/// Sending that waits out a worker's `429 Too Many Requests` (its `Retry-After`, at most
/// [`MAX_RETRY_WAIT`]) up to [`RETRIES_ON_429`] times. Safe to repeat: a worker refuses for
/// rate or capacity before a request has any effect.
pub(crate) trait SendRetrying {
    /// Sends the request, again after a short `429`.
    fn send_retrying(
        self,
    ) -> impl std::future::Future<Output = Result<reqwest::Response, reqwest::Error>> + Send;
}

impl SendRetrying for reqwest::RequestBuilder {
    async fn send_retrying(self) -> Result<reqwest::Response, reqwest::Error> {
        {
            let mut attempt = 0;
            let mut rb = self;
            loop {
                let again = rb.try_clone();
                let resp = rb.send().await?;
                if resp.status() != reqwest::StatusCode::TOO_MANY_REQUESTS
                    || attempt >= RETRIES_ON_429
                {
                    return Ok(resp);
                }
                let header = |name: &str| {
                    resp.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                };
                let wait = header("x-phat-retry-after-ms")
                    .map(Duration::from_millis)
                    .or(header("retry-after").map(Duration::from_secs))
                    .unwrap_or(Duration::from_millis(200));
                let Some(next) = again.filter(|_| wait <= MAX_RETRY_WAIT) else {
                    return Ok(resp);
                };
                // Spread retries a little so refused clients do not come back in lockstep.
                let jitter = Duration::from_millis(rand::random::<u64>() % 100);
                tokio::time::sleep(wait + jitter).await;
                attempt += 1;
                rb = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Client, ClientError};
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An HTTP server on 127.0.0.1 answering the first `busy` requests with 429 and
    /// `x-phat-retry-after-ms: wait_ms`, the rest with a 404 API error; counts requests.
    async fn serve_busy(
        busy: usize,
        wait_ms: u64,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let (mut head, mut buf) = (Vec::new(), [0u8; 1024]);
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let (status, extra, body) = if n < busy {
                        (
                            "429 Too Many Requests",
                            format!("retry-after: 1\r\nx-phat-retry-after-ms: {wait_ms}\r\n"),
                            r#"{"error":{"kind":"rate_limited","message":"slow down"}}"#,
                        )
                    } else {
                        (
                            "404 Not Found",
                            String::new(),
                            r#"{"error":{"kind":"unknown_receipt","message":"none"}}"#,
                        )
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        (format!("http://{addr}"), count)
    }

    #[tokio::test]
    async fn a_short_429_is_waited_out_and_a_long_one_returned() {
        let (url, count) = serve_busy(2, 20).await;
        let err = Client::new(&url).unwrap().receipt(1).await.unwrap_err();
        assert!(
            matches!(&err, ClientError::Api { status: 404, kind, .. } if kind == "unknown_receipt"),
            "{err:?}"
        );
        assert_eq!(
            count.load(Ordering::SeqCst),
            3,
            "two refusals, then the answer"
        );
        // A wait longer than the client waits by itself goes back to the caller at once.
        let (url, count) = serve_busy(100, 60_000).await;
        let err = Client::new(&url).unwrap().receipt(1).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Api { status: 429, .. }),
            "{err:?}"
        );
        assert_eq!(count.load(Ordering::SeqCst), 1);
        // A worker that stays busy is asked a bounded number of times.
        let (url, count) = serve_busy(100, 1).await;
        let err = Client::new(&url).unwrap().receipt(1).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Api { status: 429, .. }),
            "{err:?}"
        );
        assert_eq!(count.load(Ordering::SeqCst), RETRIES_ON_429 as usize + 1);
    }
}
