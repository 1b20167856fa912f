//! The web console: the prebuilt page, script and style that every worker and `phat dev`'s
//! endpoint serve at `/console`.
//!
//! The page and its style are `console/src/index.html` and `console.css`, embedded as they
//! are. The script is built from `console/src/*.ts` (TypeScript on the SDK, bundled by
//! esbuild) and committed as `assets/console.js`, so building phat needs no Node. `console/`'s
//! tests rebuild it and fail when the committed bytes differ from the source (`npm run build`
//! in `console/` refreshes it).
//!
//! The console only talks to the origin that served it, and its responses say so: a content
//! security policy allows scripts, styles and connections to `'self'` only.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file.
#[derive(Clone, Copy, Debug)]
pub struct Asset {
    /// The file's bytes.
    pub body: &'static [u8],
    /// Its `Content-Type`.
    pub content_type: &'static str,
}

/// The embedded files by name (the path under `/console/`).
const ASSETS: &[(&str, Asset)] = &[
    (
        "index.html",
        Asset {
            body: include_bytes!("../../../console/src/index.html"),
            content_type: "text/html; charset=utf-8",
        },
    ),
    (
        "console.js",
        Asset {
            body: include_bytes!("../assets/console.js"),
            content_type: "text/javascript; charset=utf-8",
        },
    ),
    (
        "console.css",
        Asset {
            body: include_bytes!("../../../console/src/console.css"),
            content_type: "text/css; charset=utf-8",
        },
    ),
];

/// The content security policy of every console response: the page loads its own script and
/// style (and wallet extensions theirs: they inject `injectedWeb3` from their own scheme),
/// connects only to its own origin, and may not be framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; \
     script-src 'self' 'wasm-unsafe-eval' chrome-extension: moz-extension:; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The embedded file at `name` (`""` is the page itself), if there is one.
pub fn asset(name: &str) -> Option<Asset> {
    let name = if name.is_empty() { "index.html" } else { name };
    ASSETS.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
}

/// Routes `/console` (redirected to `/console/`), `/console/` and `/console/{file}`, for any
/// router state.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(|| async { serve("") }))
        .route(
            "/console/{file}",
            get(|axum::extract::Path(file): axum::extract::Path<String>| async move {
                serve(&file)
            }),
        )
}

/// The response for `name`: the file, or a plain 404.
fn serve(name: &str) -> Response {
    let Some(a) = asset(name) else {
        return (StatusCode::NOT_FOUND, "no such console file").into_response();
    };
    let mut resp = a.body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    resp
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "test code: a failed unwrap is a failed test"
    )]
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str) -> Response {
        router::<()>()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn serves_the_page_its_script_and_style_with_a_strict_policy() {
        let page = get("/console/").await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            page.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(page.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("connect-src 'self'"));
        let body = axum::body::to_bytes(page.into_body(), 1 << 20)
            .await
            .unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        // The page loads the two other assets, and they are served.
        for file in ["console.js", "console.css"] {
            assert!(html.contains(file), "index.html does not load {file}");
            let r = get(&format!("/console/{file}")).await;
            assert_eq!(r.status(), StatusCode::OK, "{file}");
        }
        assert_eq!(
            get("/console/console.js").await.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn redirects_the_bare_path_and_refuses_unknown_files() {
        let r = get("/console").await;
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(r.headers()[header::LOCATION], "/console/");
        for path in [
            "/console/nope.js",
            "/console/..%2FCargo.toml",
            "/console/%2e%2e",
        ] {
            assert_eq!(get(path).await.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }
}
