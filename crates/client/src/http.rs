//! The HTTP plumbing under every call: URLs (with the read floor), transport errors, and
//! answers read within [`MAX_ANSWER`] bytes with the API's error bodies decoded.

use phat_primitives::protocol::ApiError;

use crate::retry::SendRetrying;
use crate::{Client, ClientError, MAX_ANSWER};

impl Client {
    /// `path` with `?min_seq=` of the read floor, when there is one.
    pub(crate) fn read_url(&self, path: &str) -> String {
        match self.floor.load(std::sync::atomic::Ordering::Relaxed) {
            0 => self.url(path),
            seq => self.url(&format!("{path}?min_seq={seq}")),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub(crate) fn unreachable(&self, e: reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            endpoint: self.base.clone(),
            message: e.to_string(),
        }
    }

    pub(crate) async fn answer<T: serde::de::DeserializeOwned>(
        &self,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, ClientError> {
        let mut resp = resp.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        // An endpoint is untrusted until its report verifies: read at most MAX_ANSWER bytes.
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.unreachable(e))? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(ClientError::Decode(format!(
                    "the answer is over {MAX_ANSWER} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()));
        }
        match serde_json::from_slice::<ApiError>(&body) {
            Ok(ApiError { error }) => Err(ClientError::Api {
                status: status.as_u16(),
                kind: error.kind,
                message: error.message,
            }),
            Err(_) => Err(ClientError::Api {
                status: status.as_u16(),
                kind: "http".into(),
                message: String::from_utf8_lossy(&body).chars().take(300).collect(),
            }),
        }
    }

    /// POSTs `body` as JSON to `path` and reads the JSON answer.
    pub(crate) async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, ClientError> {
        self.answer(
            self.http
                .post(self.url(path))
                .json(body)
                .send_retrying()
                .await,
        )
        .await
    }
}
