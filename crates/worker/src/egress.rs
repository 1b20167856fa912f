//! HTTP egress for contracts' queries: limits, allow-list and the private-address rule.
//!
//! Every refusal maps to pink's `HttpRequestError` for the contract and to a log line with the
//! reason in the contract's log stream, so a developer sees *which* limit was hit.

use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt;
use phat_runtime::pink::{HttpRequest, HttpRequestError, HttpResponse};

/// Limits of contracts' HTTP requests, per worker.
#[derive(Clone, Debug)]
pub struct EgressConfig {
    /// Longest a request may take (also bounded by the query's time left).
    pub max_timeout: Duration,
    /// Largest response body (bytes).
    pub max_body: usize,
    /// Most headers in a request or a response.
    pub max_headers: usize,
    /// Most requests in one batch.
    pub max_batch: usize,
    /// When set, only these hosts may be reached.
    pub allow_hosts: Option<Vec<String>>,
    /// Whether loopback, private, link-local and unspecified addresses may be reached
    /// (`phat dev` allows them: local development talks to local services).
    pub allow_private: bool,
}

impl Default for EgressConfig {
    fn default() -> Self {
        Self {
            max_timeout: Duration::from_secs(10),
            max_body: 2 << 20,
            max_headers: 64,
            max_batch: 5,
            allow_hosts: None,
            allow_private: false,
        }
    }
}

/// A refused or failed request: the contract's error and the reason for the log.
pub(crate) struct Refusal(pub(crate) HttpRequestError, pub(crate) String);

fn refuse(e: HttpRequestError, why: impl Into<String>) -> Refusal {
    Refusal(e, why.into())
}

/// True for addresses a production worker must not reach on a contract's behalf.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // carrier-grade NAT
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// Sends contracts' requests under an [`EgressConfig`].
#[derive(Clone)]
pub(crate) struct Egress {
    pub(crate) config: EgressConfig,
    client: reqwest::Client,
}

impl Egress {
    pub(crate) fn new(config: EgressConfig) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap_or_default();
        Self { config, client }
    }

    /// Checks the target of `url` against the allow-list and the private-address rule.
    async fn check_target(&self, url: &reqwest::Url) -> Result<(), Refusal> {
        let host = url
            .host_str()
            .ok_or_else(|| refuse(HttpRequestError::InvalidUrl, "the URL has no host"))?;
        if let Some(allowed) = &self.config.allow_hosts {
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
                return Err(refuse(
                    HttpRequestError::NotAllowed,
                    format!("host {host} is not in this worker's allow-list"),
                ));
            }
        }
        if self.config.allow_private {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| {
                    refuse(
                        HttpRequestError::NetworkError,
                        format!("cannot resolve {host}: {e}"),
                    )
                })?
                .map(|a| a.ip())
                .collect(),
        };
        if let Some(ip) = addrs.into_iter().find(|ip| is_private(*ip)) {
            return Err(refuse(
                HttpRequestError::NotAllowed,
                format!(
                    "{host} is a private or loopback address ({ip}); this worker refuses those"
                ),
            ));
        }
        Ok(())
    }

    /// Sends one request.
    pub(crate) async fn send(
        &self,
        req: HttpRequest,
        timeout: Duration,
    ) -> Result<HttpResponse, Refusal> {
        let url = reqwest::Url::parse(&req.url)
            .map_err(|e| refuse(HttpRequestError::InvalidUrl, format!("{}: {e}", req.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse(
                HttpRequestError::InvalidUrl,
                format!("scheme {} is not http or https", url.scheme()),
            ));
        }
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| {
            refuse(
                HttpRequestError::InvalidMethod,
                format!("`{}` is not an HTTP method", req.method),
            )
        })?;
        if req.headers.len() > self.config.max_headers {
            return Err(refuse(
                HttpRequestError::NotAllowed,
                format!(
                    "{} request headers, more than the {} allowed",
                    req.headers.len(),
                    self.config.max_headers
                ),
            ));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &req.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                refuse(
                    HttpRequestError::InvalidHeaderName,
                    format!("header name `{k}`"),
                )
            })?;
            let value = reqwest::header::HeaderValue::from_str(v).map_err(|_| {
                refuse(
                    HttpRequestError::InvalidHeaderValue,
                    format!("value of header `{k}`"),
                )
            })?;
            headers.append(name, value);
        }
        let timeout = timeout.min(self.config.max_timeout);
        let max_body = self.config.max_body;
        let max_headers = self.config.max_headers;
        let work = async {
            self.check_target(&url).await?;
            let resp = self
                .client
                .request(method, url.clone())
                .headers(headers)
                .body(req.body)
                .send()
                .await
                .map_err(|e| refuse(HttpRequestError::NetworkError, format!("{}: {e}", req.url)))?;
            if resp.headers().len() > max_headers {
                return Err(refuse(
                    HttpRequestError::ResponseTooLarge,
                    format!(
                        "the response has {} headers, more than the {max_headers} allowed",
                        resp.headers().len()
                    ),
                ));
            }
            let status = resp.status();
            let headers: Vec<(String, String)> = resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            if resp.content_length().is_some_and(|l| l as usize > max_body) {
                return Err(refuse(
                    HttpRequestError::ResponseTooLarge,
                    format!("the response body is over the {max_body}-byte limit"),
                ));
            }
            let mut body = Vec::new();
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    refuse(
                        HttpRequestError::NetworkError,
                        format!("reading the body: {e}"),
                    )
                })?;
                if body.len() + chunk.len() > max_body {
                    return Err(refuse(
                        HttpRequestError::ResponseTooLarge,
                        format!("the response body is over the {max_body}-byte limit"),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(HttpResponse {
                status_code: status.as_u16(),
                reason_phrase: status.canonical_reason().unwrap_or("").to_string(),
                headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(refuse(
                HttpRequestError::Timeout,
                format!(
                    "{} did not answer within {} ms",
                    req.url,
                    timeout.as_millis()
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "169.254.1.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}

#[cfg(test)]
mod http_tests {
    use super::*;
    use axum::routing::get as route_get;

    /// A local HTTP server: `/price` JSON, `/slow` (2 s), `/big` (3 MiB), `/headers` (80).
    async fn server() -> String {
        let app = axum::Router::new()
            .route("/price", route_get(|| async { r#"{"usd": 42.5}"# }))
            .route(
                "/slow",
                route_get(|| async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    "late"
                }),
            )
            .route("/big", route_get(|| async { vec![b'x'; 3 << 20] }))
            .route(
                "/headers",
                route_get(|| async {
                    let mut h = axum::http::HeaderMap::new();
                    for i in 0..80 {
                        h.insert(
                            axum::http::HeaderName::from_bytes(format!("x-h{i}").as_bytes())
                                .unwrap(),
                            axum::http::HeaderValue::from_static("v"),
                        );
                    }
                    (h, "ok")
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn get(url: String) -> HttpRequest {
        HttpRequest {
            url,
            method: "GET".into(),
            headers: vec![],
            body: vec![],
        }
    }

    fn dev() -> Egress {
        Egress::new(EgressConfig {
            allow_private: true,
            ..EgressConfig::default()
        })
    }

    fn err(r: Result<HttpResponse, Refusal>) -> (HttpRequestError, String) {
        match r {
            Ok(resp) => panic!("expected a refusal, got status {}", resp.status_code),
            Err(Refusal(e, why)) => (e, why),
        }
    }

    #[tokio::test]
    async fn fetches_and_passes_statuses_through() {
        let base = server().await;
        let r = dev()
            .send(get(format!("{base}/price")), Duration::from_secs(5))
            .await
            .ok()
            .unwrap();
        assert_eq!(r.status_code, 200);
        assert_eq!(r.body, br#"{"usd": 42.5}"#);
        let r = dev()
            .send(get(format!("{base}/nope")), Duration::from_secs(5))
            .await
            .ok()
            .unwrap();
        assert_eq!(r.status_code, 404);
    }

    #[tokio::test]
    async fn limits_give_the_documented_errors() {
        let base = server().await;
        let (e, why) = err(dev()
            .send(get(format!("{base}/slow")), Duration::from_millis(200))
            .await);
        assert!(matches!(e, HttpRequestError::Timeout), "{why}");
        let (e, why) = err(dev()
            .send(get(format!("{base}/big")), Duration::from_secs(5))
            .await);
        assert!(matches!(e, HttpRequestError::ResponseTooLarge), "{why}");
        assert!(why.contains("2097152"), "{why}");
        let (e, _) = err(dev()
            .send(get(format!("{base}/headers")), Duration::from_secs(5))
            .await);
        assert!(matches!(e, HttpRequestError::ResponseTooLarge));
        let (e, _) = err(dev()
            .send(get("not a url".into()), Duration::from_secs(5))
            .await);
        assert!(matches!(e, HttpRequestError::InvalidUrl));
        let mut bad = get(format!("{base}/price"));
        bad.method = "GE T".into();
        let (e, _) = err(dev().send(bad, Duration::from_secs(5)).await);
        assert!(matches!(e, HttpRequestError::InvalidMethod));
    }

    #[tokio::test]
    async fn private_addresses_and_unlisted_hosts_are_refused() {
        let base = server().await;
        // A production worker refuses loopback.
        let prod = Egress::new(EgressConfig::default());
        let (e, why) = err(prod
            .send(get(format!("{base}/price")), Duration::from_secs(5))
            .await);
        assert!(matches!(e, HttpRequestError::NotAllowed), "{why}");
        assert!(why.contains("private or loopback"), "{why}");
        // An allow-list refuses everything else.
        let listed = Egress::new(EgressConfig {
            allow_private: true,
            allow_hosts: Some(vec!["api.example".into()]),
            ..EgressConfig::default()
        });
        let (e, why) = err(listed
            .send(get(format!("{base}/price")), Duration::from_secs(5))
            .await);
        assert!(matches!(e, HttpRequestError::NotAllowed), "{why}");
        assert!(why.contains("allow-list"), "{why}");
        // Listed, it goes through.
        let ok = Egress::new(EgressConfig {
            allow_private: true,
            allow_hosts: Some(vec!["127.0.0.1".into()]),
            ..EgressConfig::default()
        });
        assert!(ok
            .send(get(format!("{base}/price")), Duration::from_secs(5))
            .await
            .is_ok());
    }
}
