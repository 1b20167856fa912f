//! An endpoint that is not a worker (or a hostile one) cannot make the client allocate without
//! bound: answers over `MAX_ANSWER` are refused with a typed error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use phat_client::{Client, ClientError, MAX_ANSWER};

#[tokio::test]
async fn an_oversized_answer_is_refused_not_buffered() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // A stream of chunks longer than the limit: the client stops reading at the limit.
    let app = axum::Router::new().fallback(|| async {
        let chunk = bytes_of(1 << 20);
        let stream = futures_stream(MAX_ANSWER / (1 << 20) + 8, chunk);
        axum::body::Body::from_stream(stream)
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    match Client::new(&url).unwrap().info().await {
        Err(ClientError::Decode(m)) => assert!(m.contains("over"), "{m}"),
        other => panic!("an oversized answer was accepted: {other:?}"),
    }
}

fn bytes_of(n: usize) -> Vec<u8> {
    vec![b'x'; n]
}

fn futures_stream(
    n: usize,
    chunk: Vec<u8>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::iter((0..n).map(move |_| Ok(chunk.clone())))
}
