//! HTTP egress for contracts' queries: limits, allow-list, protected addresses and the
//! private/special-address rule.
//!
//! A request's host is resolved once, every address it resolves to is checked, and the
//! connection goes to those checked addresses only: the request's client knows no other
//! answer for the host and refuses any other DNS lookup, so a second, different DNS answer
//! (DNS rebinding: public first, `127.0.0.1` next) is never used. Redirects are followed, as
//! Phala's client follows them, up to 5 hops, each hop checked like the first (a public URL
//! cannot redirect inward), with credentials dropped when the origin changes, all within the
//! request's one timeout; proxies from the environment are ignored. The protected addresses (this worker's API, the gateway, the ledger) are refused
//! even with `allow_private`.
//!
//! Every refusal maps to pink's `HttpRequestError` for the contract and to a log line with the
//! reason in the contract's log stream, so a developer sees *which* limit was hit. URLs in
//! those lines have their userinfo, query and fragment removed ([`redact_url`]).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use phat_pink::{HttpRequest, HttpRequestError, HttpResponse};

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
    /// Whether loopback, private, link-local and other special-purpose addresses may be
    /// reached (`phat dev` allows them: local development talks to local services).
    pub allow_private: bool,
    /// Addresses never reached, even with `allow_private`: this worker's API, the gateway,
    /// the ledger. One on this machine (loopback, unspecified or a local interface's address)
    /// protects its port on every address of this machine.
    pub deny_addrs: Vec<SocketAddr>,
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
            deny_addrs: Vec::new(),
        }
    }
}

impl EgressConfig {
    /// Adds the addresses `url`'s host resolves to (at its port) to `deny_addrs`.
    pub async fn deny_url(&mut self, url: &str) -> io::Result<()> {
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: {e}", redact_url(url)),
            )
        })?;
        let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has no host or port", redact_url(url)),
            ));
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        for addr in tokio::net::lookup_host((host, port)).await? {
            if !self.deny_addrs.contains(&addr) {
                self.deny_addrs.push(addr);
            }
        }
        Ok(())
    }
}

/// A refused or failed request: the contract's error and the reason for the log.
pub(crate) struct Refusal(pub(crate) HttpRequestError, pub(crate) String);

fn refuse(e: HttpRequestError, why: impl Into<String>) -> Refusal {
    Refusal(e, why.into())
}

mod addresses;
mod dns;
mod redact;

use addresses::*;
use dns::*;
pub(crate) use redact::redact_url;

/// A host and the checked addresses a client is pinned to.
type PinKey = (String, Vec<SocketAddr>);

/// Most pinned clients kept (each keeps its idle connections for reuse).
const MAX_CLIENTS: usize = 64;

/// Sends contracts' requests under an [`EgressConfig`].
#[derive(Clone)]
pub(crate) struct Egress {
    pub(crate) config: EgressConfig,
    lookup: Lookup,
    /// Clients pinned to a host's checked addresses, reused while DNS gives the same answer.
    clients: Arc<Mutex<HashMap<PinKey, reqwest::Client>>>,
}

impl Egress {
    pub(crate) fn new(config: EgressConfig) -> Self {
        Self {
            config,
            lookup: system_lookup(),
            clients: Arc::default(),
        }
    }

    /// Checks the target of `url` against the allow-list, the protected addresses and the
    /// private-address rule; returns the host and the checked addresses to connect to.
    async fn check_target(&self, url: &reqwest::Url) -> Result<PinKey, Refusal> {
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
        let port = url.port_or_known_default().unwrap_or(80);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let literal = bare.parse::<IpAddr>().is_ok();
        let found = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => (self.lookup)(bare.to_string(), port).await.map_err(|e| {
                refuse(
                    HttpRequestError::NetworkError,
                    format!("cannot resolve {host}: {e}"),
                )
            })?,
        };
        let mut addrs: Vec<SocketAddr> = Vec::with_capacity(found.len());
        for mut a in found {
            a.set_port(port);
            if !addrs.contains(&a) {
                addrs.push(a);
            }
        }
        if addrs.is_empty() {
            return Err(refuse(
                HttpRequestError::NetworkError,
                format!("{host} resolves to no address"),
            ));
        }
        for a in &addrs {
            let what = if literal {
                format!("{a}")
            } else {
                format!("{host} (resolved to {a})")
            };
            if let Some(p) = self.config.deny_addrs.iter().find(|p| reaches(*a, **p)) {
                return Err(refuse(
                    HttpRequestError::NotAllowed,
                    format!(
                        "{what} may reach {p}, a protected address of this cluster (worker, \
                         gateway or ledger); contracts never reach those"
                    ),
                ));
            }
            if self.config.allow_private {
                continue;
            }
            if let Some(why) = special(a.ip()) {
                return Err(refuse(
                    HttpRequestError::NotAllowed,
                    format!(
                        "{what} is a private or loopback address ({why}); this worker refuses \
                         those"
                    ),
                ));
            }
        }
        Ok((bare.to_string(), addrs))
    }

    /// The client that connects `target`'s host to its checked addresses and nowhere else.
    fn client(&self, target: PinKey) -> Result<reqwest::Client, Refusal> {
        let mut clients = self.clients.lock();
        if let Some(c) = clients.get(&target) {
            return Ok(c.clone());
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(NoDns))
            .resolve_to_addrs(&target.0, &target.1)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| {
                refuse(
                    HttpRequestError::FailedToCreateClient,
                    format!("cannot create the HTTP client: {}", describe(e)),
                )
            })?;
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(target, client.clone());
        Ok(client)
    }

    /// Sends one request.
    pub(crate) async fn send(
        &self,
        req: HttpRequest,
        timeout: Duration,
    ) -> Result<HttpResponse, Refusal> {
        let shown = redact_url(&req.url);
        let url = reqwest::Url::parse(&req.url)
            .map_err(|e| refuse(HttpRequestError::InvalidUrl, format!("{shown}: {e}")))?;
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
            // Redirects are followed as Phala's client follows them, each hop checked against
            // the egress rules like the first (a public URL cannot redirect inward).
            let (mut url, mut method, mut body, mut headers) =
                (url.clone(), method.clone(), req.body, headers);
            let mut hops = 0;
            let resp = loop {
                let target = self.check_target(&url).await?;
                let client = self.client(target)?;
                let resp = client
                    .request(method.clone(), url.clone())
                    .headers(headers.clone())
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|e| {
                        refuse(
                            HttpRequestError::NetworkError,
                            format!("{shown}: {}", describe(e)),
                        )
                    })?;
                let code = resp.status().as_u16();
                let location = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok());
                let (true, Some(location)) =
                    (matches!(code, 301 | 302 | 303 | 307 | 308), location)
                else {
                    break resp;
                };
                if hops == MAX_REDIRECTS {
                    return Err(refuse(
                        HttpRequestError::NetworkError,
                        format!("{shown}: more than {MAX_REDIRECTS} redirects"),
                    ));
                }
                hops += 1;
                let next = url.join(location).map_err(|e| {
                    refuse(
                        HttpRequestError::InvalidUrl,
                        format!("{shown} redirects to a bad URL: {e}"),
                    )
                })?;
                if !matches!(next.scheme(), "http" | "https") {
                    return Err(refuse(
                        HttpRequestError::InvalidUrl,
                        format!("{shown} redirects to scheme {}", next.scheme()),
                    ));
                }
                if code == 303 || (matches!(code, 301 | 302) && method == reqwest::Method::POST) {
                    method = reqwest::Method::GET;
                    body = Vec::new();
                }
                if next.origin() != url.origin() {
                    // Credentials meant for one site do not follow a redirect to another.
                    for h in [
                        reqwest::header::AUTHORIZATION,
                        reqwest::header::COOKIE,
                        reqwest::header::PROXY_AUTHORIZATION,
                    ] {
                        headers.remove(h);
                    }
                }
                url = next;
            };
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
                        format!("reading the body: {}", describe(e)),
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
        let result = match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(refuse(
                HttpRequestError::Timeout,
                format!("{shown} did not answer within {} ms", timeout.as_millis()),
            )),
        };
        match &result {
            Ok(r) => tracing::debug!("egress {method} {shown}: {}", r.status_code),
            Err(Refusal(e, why)) => {
                tracing::debug!("egress {method} {shown} failed ({e:?}): {why}")
            }
        }
        result
    }
}

/// Most redirects one request follows (reqwest's default is 10; browsers stop near 20).
const MAX_REDIRECTS: usize = 5;

/// A reqwest error with its causes, without the URL (which may hold secrets).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn special_addresses_are_classified() {
        // (address, a word of the reason; `None`: a public address that is allowed).
        let table: &[(&str, Option<&str>)] = &[
            ("0.0.0.0", Some("unspecified")),
            ("0.1.2.3", Some("this network")),
            ("10.0.0.1", Some("private")),
            ("172.16.5.5", Some("private")),
            ("172.31.255.255", Some("private")),
            ("192.168.0.1", Some("private")),
            ("100.64.0.1", Some("carrier-grade NAT")),
            ("100.127.255.255", Some("carrier-grade NAT")),
            ("127.0.0.1", Some("loopback")),
            ("127.255.0.7", Some("loopback")),
            ("169.254.169.254", Some("link-local")),
            ("192.0.0.9", Some("IETF protocol")),
            ("192.0.2.1", Some("documentation")),
            ("198.51.100.7", Some("documentation")),
            ("203.0.113.200", Some("documentation")),
            ("192.88.99.1", Some("6to4 relay")),
            ("198.18.0.1", Some("benchmarking")),
            ("198.19.255.255", Some("benchmarking")),
            ("224.0.0.1", Some("multicast")),
            ("239.255.255.250", Some("multicast")),
            ("240.0.0.1", Some("reserved")),
            ("255.255.255.255", Some("broadcast")),
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("172.32.0.1", None),
            ("198.20.0.1", None),
            ("223.255.255.255", None),
            ("::", Some("unspecified")),
            ("::1", Some("loopback")),
            ("fd00::1", Some("unique local")),
            ("fc00::1", Some("unique local")),
            ("fe80::1", Some("link-local")),
            ("fec0::1", Some("site-local")),
            ("ff02::1", Some("multicast")),
            ("::ffff:127.0.0.1", Some("IPv4-mapped")),
            ("::ffff:10.0.0.1", Some("IPv4-mapped")),
            ("::ffff:8.8.8.8", Some("IPv4-mapped")),
            ("::127.0.0.1", Some("IPv4-compatible")),
            ("::10.0.0.1", Some("IPv4-compatible")),
            ("::8.8.8.8", Some("IPv4-compatible")),
            (
                "64:ff9b::127.0.0.1",
                Some("NAT64 (64:ff9b::/96) of 127.0.0.1, loopback"),
            ),
            (
                "64:ff9b::10.0.0.1",
                Some("NAT64 (64:ff9b::/96) of 10.0.0.1, private"),
            ),
            ("64:ff9b::169.254.169.254", Some("link-local")),
            ("64:ff9b::8.8.8.8", None),
            ("64:ff9b:1::8.8.8.8", Some("local-use NAT64")),
            ("64:ff9b:1:7f00:1::", Some("local-use NAT64")),
            (
                "2002:7f00:1::",
                Some("6to4 (2002::/16) of 127.0.0.1, loopback"),
            ),
            (
                "2002:a00:1::1",
                Some("6to4 (2002::/16) of 10.0.0.1, private"),
            ),
            ("2002:808:808::1", None),
            ("2001::1", Some("Teredo")),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some("Teredo")),
            ("2001:2::1", Some("benchmarking")),
            ("2001:10::1", Some("IETF protocol")),
            ("2001:db8::1", Some("documentation")),
            ("3fff::1", Some("documentation")),
            ("100::1", Some("discard-only")),
            ("4000::1", Some("outside 2000::/3")),
            ("::2:0:0:1", Some("outside 2000::/3")),
            ("2606:4700::1111", None),
            ("2001:4860:4860::8888", None),
            ("2a00:1450::1", None),
        ];
        for (addr, want) in table {
            let ip: IpAddr = addr.parse().unwrap();
            match (special(ip), want) {
                (None, None) => {}
                (Some(why), Some(w)) => assert!(why.contains(w), "{addr}: {why}, want {w}"),
                (got, want) => panic!("{addr}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn protected_addresses_are_matched_through_every_form() {
        let worker: SocketAddr = "127.0.0.1:8702".parse().unwrap();
        let remote: SocketAddr = "203.0.113.9:8701".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8703".parse().unwrap();
        let table: &[(&str, SocketAddr, bool)] = &[
            ("127.0.0.1:8702", worker, true),
            ("127.0.0.1:8703", worker, false),
            ("127.0.0.2:8702", worker, true),
            ("0.0.0.0:8702", worker, true),
            ("[::1]:8702", worker, true),
            ("[::]:8702", worker, true),
            ("[::ffff:127.0.0.1]:8702", worker, true),
            ("[::127.0.0.1]:8702", worker, true),
            ("[64:ff9b::7f00:1]:8702", worker, true),
            ("[2002:7f00:1::]:8702", worker, true),
            ("8.8.8.8:8702", worker, false),
            ("203.0.113.9:8701", remote, true),
            ("[::ffff:203.0.113.9]:8701", remote, true),
            ("[64:ff9b::cb00:7109]:8701", remote, true),
            ("203.0.113.10:8701", remote, false),
            ("203.0.113.9:8702", remote, false),
            ("127.0.0.1:8703", any, true),
            ("[::1]:8703", any, true),
            ("8.8.8.8:8703", any, false),
        ];
        for (target, protected, want) in table {
            let t: SocketAddr = target.parse().unwrap();
            assert_eq!(reaches(t, *protected), *want, "{target} vs {protected}");
        }
    }

    #[test]
    fn urls_in_logs_lose_userinfo_query_and_fragment() {
        let table = [
            (
                "https://api.example/path?key=secret",
                "https://api.example/path?…",
            ),
            (
                "https://user:pw@api.example:8443/a/b?x=1#frag",
                "https://api.example:8443/a/b?…#…",
            ),
            ("https://token@api.example/", "https://api.example/"),
            ("http://127.0.0.1:8080/price", "http://127.0.0.1:8080/price"),
            ("https://api.example/#secret", "https://api.example/#…"),
            ("not a url?key=secret", "not a url?…"),
            ("//user:pw@host/x?k=v", "//host/x?…"),
            ("a://u:p@[oops/x", "a://[oops/x"),
        ];
        for (url, want) in table {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn in_range_handles_every_prefix_length() {
        assert!(in_v4(Ipv4Addr::new(1, 2, 3, 4), [0, 0, 0, 0], 0));
        assert!(in_v4(Ipv4Addr::new(1, 2, 3, 4), [1, 2, 3, 4], 32));
        assert!(!in_v4(Ipv4Addr::new(1, 2, 3, 5), [1, 2, 3, 4], 32));
        assert!(in_v6(Ipv6Addr::LOCALHOST, [0; 8], 0));
        assert!(in_v6(Ipv6Addr::LOCALHOST, [0, 0, 0, 0, 0, 0, 0, 1], 128));
    }
}

#[cfg(test)]
mod http_tests {
    use super::*;
    use axum::routing::get as route_get;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn app() -> axum::Router {
        axum::Router::new()
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
            )
            .route(
                "/redirect",
                route_get(|| async { axum::response::Redirect::temporary("/price") }),
            )
    }

    /// Serves `router` on `listener`.
    fn serve(listener: tokio::net::TcpListener, router: axum::Router) {
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    }

    /// A local HTTP server: `/price` JSON, `/slow` (2 s), `/big` (3 MiB), `/headers` (80),
    /// `/redirect` (to `/price`).
    async fn server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        serve(listener, app());
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

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn fetches_and_passes_statuses_through() {
        let base = server().await;
        let r = dev()
            .send(get(format!("{base}/price")), T)
            .await
            .ok()
            .unwrap();
        assert_eq!(r.status_code, 200);
        assert_eq!(r.body, br#"{"usd": 42.5}"#);
        let r = dev()
            .send(get(format!("{base}/nope")), T)
            .await
            .ok()
            .unwrap();
        assert_eq!(r.status_code, 404);
    }

    /// A server whose `/to?u=URL` redirects (307) to `URL`, `/see?u=URL` with 303, and `/loop`
    /// to itself; `/echo` answers the method, the body's length and the auth header.
    async fn redirector() -> String {
        use axum::extract::Query;
        use std::collections::HashMap;
        let router = axum::Router::new()
            .route(
                "/to",
                axum::routing::any(|q: Query<HashMap<String, String>>| async move {
                    axum::response::Redirect::temporary(&q["u"])
                }),
            )
            .route(
                "/see",
                axum::routing::any(|q: Query<HashMap<String, String>>| async move {
                    axum::response::Redirect::to(&q["u"])
                }),
            )
            .route(
                "/loop",
                route_get(|| async { axum::response::Redirect::temporary("/loop") }),
            )
            .route(
                "/echo",
                axum::routing::any(
                    |m: axum::http::Method, h: axum::http::HeaderMap, b: axum::body::Bytes| async move {
                        let auth = h.get("authorization").map_or("-", |v| v.to_str().unwrap_or("?"));
                        format!("{m} {} {auth}", b.len())
                    },
                ),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        serve(listener, router);
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn redirects_are_followed_with_the_rules_checked_on_every_hop() {
        let base = server().await;
        let r = dev()
            .send(get(format!("{base}/redirect")), T)
            .await
            .ok()
            .unwrap();
        assert_eq!(
            (r.status_code, &r.body[..]),
            (200, &br#"{"usd": 42.5}"#[..])
        );
        // 307 keeps the method and body; 303 turns them into a GET; credentials stay on
        // their origin.
        let hop = redirector().await;
        let other = redirector().await;
        let mut post = get(format!("{hop}/to?u=/echo"));
        post.method = "POST".into();
        post.body = b"abc".to_vec();
        post.headers = vec![("authorization".into(), "Bearer k".into())];
        let r = dev().send(post.clone(), T).await.ok().unwrap();
        assert_eq!(String::from_utf8_lossy(&r.body), "POST 3 Bearer k");
        post.url = format!("{hop}/see?u=/echo");
        let r = dev().send(post.clone(), T).await.ok().unwrap();
        assert_eq!(String::from_utf8_lossy(&r.body), "GET 0 Bearer k");
        post.url = format!("{hop}/to?u={other}/echo");
        let r = dev().send(post, T).await.ok().unwrap();
        assert_eq!(String::from_utf8_lossy(&r.body), "POST 3 -");
        // A hop to an address the rules refuse is refused, whatever the first hop was.
        let worker = server().await;
        let worker_addr: SocketAddr = worker.trim_start_matches("http://").parse().unwrap();
        let guarded = Egress::new(EgressConfig {
            allow_private: true,
            deny_addrs: vec![worker_addr],
            ..EgressConfig::default()
        });
        let (e, why) = err(guarded
            .send(get(format!("{hop}/to?u={worker}/price")), T)
            .await);
        assert!(matches!(e, HttpRequestError::NotAllowed), "{why}");
        assert!(why.contains("protected"), "{why}");
        let (e, why) = err(guarded
            .send(get(format!("{hop}/to?u=file:///etc/passwd")), T)
            .await);
        assert!(matches!(e, HttpRequestError::InvalidUrl), "{why}");
        // A redirect loop ends after 5 hops.
        let (e, why) = err(dev().send(get(format!("{hop}/loop")), T).await);
        assert!(matches!(e, HttpRequestError::NetworkError), "{why}");
        assert!(why.contains("more than 5 redirects"), "{why}");
    }

    #[tokio::test]
    async fn limits_give_the_documented_errors() {
        let base = server().await;
        let (e, why) = err(dev()
            .send(get(format!("{base}/slow")), Duration::from_millis(200))
            .await);
        assert!(matches!(e, HttpRequestError::Timeout), "{why}");
        let (e, why) = err(dev().send(get(format!("{base}/big")), T).await);
        assert!(matches!(e, HttpRequestError::ResponseTooLarge), "{why}");
        assert!(why.contains("2097152"), "{why}");
        let (e, _) = err(dev().send(get(format!("{base}/headers")), T).await);
        assert!(matches!(e, HttpRequestError::ResponseTooLarge));
        let (e, _) = err(dev().send(get("not a url".into()), T).await);
        assert!(matches!(e, HttpRequestError::InvalidUrl));
        let mut bad = get(format!("{base}/price"));
        bad.method = "GE T".into();
        let (e, _) = err(dev().send(bad, T).await);
        assert!(matches!(e, HttpRequestError::InvalidMethod));
    }

    #[tokio::test]
    async fn private_addresses_and_unlisted_hosts_are_refused() {
        let base = server().await;
        let port = base.rsplit(':').next().unwrap();
        // A production worker refuses loopback, by address or by a name resolving to it.
        let prod = Egress::new(EgressConfig::default());
        for url in [
            format!("{base}/price"),
            format!("http://localhost:{port}/price"),
            format!("http://[::ffff:127.0.0.1]:{port}/price"),
            format!("http://[64:ff9b::7f00:1]:{port}/price"),
            format!("http://[2002:7f00:1::]:{port}/price"),
            format!("http://0x7f.1:{port}/price"),
            format!("http://2130706433:{port}/price"),
            format!("http://0:{port}/price"),
        ] {
            let (e, why) = err(prod.send(get(url.clone()), T).await);
            assert!(matches!(e, HttpRequestError::NotAllowed), "{url}: {why}");
            assert!(why.contains("private or loopback"), "{url}: {why}");
        }
        // An allow-list refuses everything else.
        let listed = Egress::new(EgressConfig {
            allow_private: true,
            allow_hosts: Some(vec!["api.example".into()]),
            ..EgressConfig::default()
        });
        let (e, why) = err(listed.send(get(format!("{base}/price")), T).await);
        assert!(matches!(e, HttpRequestError::NotAllowed), "{why}");
        assert!(why.contains("allow-list"), "{why}");
        // Listed, it goes through.
        let ok = Egress::new(EgressConfig {
            allow_private: true,
            allow_hosts: Some(vec!["127.0.0.1".into()]),
            ..EgressConfig::default()
        });
        assert!(ok.send(get(format!("{base}/price")), T).await.is_ok());
    }

    #[tokio::test]
    async fn protected_addresses_are_refused_even_with_allow_private() {
        // Stands for this worker's API; another local service stays reachable.
        let worker = server().await;
        let other = server().await;
        let worker_addr: SocketAddr = worker.trim_start_matches("http://").parse().unwrap();
        let port = worker_addr.port();
        let mut config = EgressConfig {
            allow_private: true,
            deny_addrs: vec![worker_addr],
            ..EgressConfig::default()
        };
        let ledger = server().await;
        config.deny_url(&format!("{ledger}/v1")).await.unwrap();
        let egress = Egress::new(config);
        for url in [
            format!("{worker}/price"),
            format!("{ledger}/price"),
            format!("http://localhost:{port}/price"),
            format!("http://127.0.0.2:{port}/price"),
            format!("http://0.0.0.0:{port}/price"),
            format!("http://[::1]:{port}/price"),
            format!("http://[::ffff:127.0.0.1]:{port}/price"),
            format!("http://[64:ff9b::7f00:1]:{port}/price"),
        ] {
            let (e, why) = err(egress.send(get(url.clone()), T).await);
            assert!(matches!(e, HttpRequestError::NotAllowed), "{url}: {why}");
            assert!(why.contains("protected"), "{url}: {why}");
        }
        let r = egress.send(get(format!("{other}/price")), T).await.ok();
        assert_eq!(r.unwrap().status_code, 200);
    }

    /// An [`Egress`] whose DNS answers `first` once, then `later` (a rebinding name server).
    fn rebinding(config: EgressConfig, first: IpAddr, later: IpAddr) -> (Egress, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let mut egress = Egress::new(config);
        egress.lookup = Arc::new(move |host, port| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                assert_eq!(host, "rebind.test");
                let ip = if n == 0 { first } else { later };
                Ok(vec![SocketAddr::new(ip, port)])
            })
        });
        (egress, calls)
    }

    /// Two servers on one port: "checked" on 127.0.0.1 and "internal" on 127.0.0.2.
    async fn twin_servers() -> u16 {
        for _ in 0..20 {
            let a = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = a.local_addr().unwrap().port();
            if let Ok(b) = tokio::net::TcpListener::bind(("127.0.0.2", port)).await {
                serve(
                    a,
                    axum::Router::new().route("/", route_get(|| async { "checked" })),
                );
                serve(
                    b,
                    axum::Router::new().route("/", route_get(|| async { "internal" })),
                );
                return port;
            }
        }
        panic!("no port free on both 127.0.0.1 and 127.0.0.2");
    }

    #[tokio::test]
    async fn the_connection_goes_to_the_checked_address_only() {
        let port = twin_servers().await;
        let (egress, calls) = rebinding(
            EgressConfig {
                allow_private: true,
                ..EgressConfig::default()
            },
            "127.0.0.1".parse().unwrap(),
            "127.0.0.2".parse().unwrap(),
        );
        // The name is looked up once, by the check; the client connects to that answer (the
        // system resolver does not know `rebind.test`, and a second lookup would answer
        // 127.0.0.2).
        let r = egress
            .send(get(format!("http://rebind.test:{port}/")), T)
            .await
            .ok()
            .unwrap();
        assert_eq!(r.body, b"checked");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The next request is checked again, with the next answer.
        let r = egress
            .send(get(format!("http://rebind.test:{port}/?n=2")), T)
            .await
            .ok()
            .unwrap();
        assert_eq!(r.body, b"internal");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_rebound_answer_is_checked_before_any_connection() {
        let port = twin_servers().await;
        // Public first, then the protected worker port: the second request is refused.
        let (egress, _) = rebinding(
            EgressConfig {
                allow_private: true,
                deny_addrs: vec![SocketAddr::from(([127, 0, 0, 1], port))],
                ..EgressConfig::default()
            },
            "8.8.8.8".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        );
        let url = format!("http://rebind.test:{port}/");
        // The first answer passes the checks (no request is sent: it would leave loopback).
        assert!(egress.check_target(&url.parse().unwrap()).await.is_ok());
        let (e, why) = err(egress.send(get(url.clone()), T).await);
        assert!(matches!(e, HttpRequestError::NotAllowed), "{why}");
        assert!(why.contains("protected"), "{why}");
        // A production worker refuses a loopback answer just the same.
        let (egress, _) = rebinding(
            EgressConfig::default(),
            "8.8.8.8".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        );
        assert!(egress.check_target(&url.parse().unwrap()).await.is_ok());
        let (e, why) = err(egress.send(get(url), T).await);
        assert!(matches!(e, HttpRequestError::NotAllowed), "{why}");
        assert!(why.contains("private or loopback"), "{why}");
    }

    #[tokio::test]
    async fn one_special_address_among_the_answers_refuses_the_request() {
        let mut egress = Egress::new(EgressConfig::default());
        egress.lookup = Arc::new(|_, port| {
            Box::pin(async move {
                Ok(vec![
                    SocketAddr::from(([8, 8, 8, 8], port)),
                    SocketAddr::from(([10, 0, 0, 1], port)),
                ])
            })
        });
        let (e, why) = err(egress.send(get("http://mixed.test/".into()), T).await);
        assert!(matches!(e, HttpRequestError::NotAllowed), "{why}");
        assert!(why.contains("10.0.0.1"), "{why}");
    }

    #[tokio::test]
    async fn refusals_do_not_show_secrets_of_the_url() {
        let base = server().await;
        // Nothing listens on port 1 of loopback: a network error.
        let (e, why) = err(dev()
            .send(get("http://user:pw@127.0.0.1:1/x?key=secret".into()), T)
            .await);
        assert!(matches!(e, HttpRequestError::NetworkError), "{why}");
        assert!(why.starts_with("http://127.0.0.1:1/x?…"), "{why}");
        let (e, why) = err(dev()
            .send(
                get(format!("{base}/slow?key=secret")),
                Duration::from_millis(200),
            )
            .await);
        assert!(matches!(e, HttpRequestError::Timeout), "{why}");
        let (_, bad) = err(dev().send(get("http://[::1?key=secret".into()), T).await);
        for why in [why, bad] {
            assert!(!why.contains("secret") && !why.contains("pw"), "{why}");
        }
    }
}
