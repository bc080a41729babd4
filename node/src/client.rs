//! A small HTTP client for the node API, used by the CLI and the demo.

use anyhow::{anyhow, Context};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// Talks to one node's HTTP API.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl ApiClient {
    /// A client for the node whose API listens on `addr` (`host:port` or a full URL).
    pub fn new(addr: &str) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
        Self { base: base_url(addr, "http"), http, token: None }
    }

    /// A client for the HTTPS API at `addr` that trusts only the regional CA in `ca_pem`
    /// (a bare `host:port` means `https://host:port`).
    pub fn with_ca(addr: &str, ca_pem: &[u8]) -> anyhow::Result<Self> {
        let ca = reqwest::Certificate::from_pem(ca_pem).context("the CA file is not a PEM certificate")?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTPS client")?;
        Ok(Self { base: base_url(addr, "https"), http, token: None })
    }

    /// The same client, sending `token` as `Authorization: Bearer` on every request.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// A client for another node's API with the same token, scheme and trusted CA.
    pub fn at(&self, addr: &str) -> Self {
        let scheme = if self.base.starts_with("https://") { "https" } else { "http" };
        Self { base: base_url(addr, scheme), http: self.http.clone(), token: self.token.clone() }
    }

    /// The bearer token sent, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    /// `POST path` with a JSON body.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        self.send(self.http.put(format!("{}{path}", self.base)).json(body)).await
    }

    /// `GET path`, answered as text (e.g. Prometheus metrics).
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let resp = self.request(self.http.get(format!("{}{path}", self.base))).send().await;
        let resp = resp.with_context(|| format!("cannot reach node at {}; is it running?", self.base))?;
        let status = resp.status();
        let text = resp.text().await.context("reading the node's answer")?;
        if !status.is_success() {
            return Err(anyhow!("{status}: {text}"));
        }
        Ok(text)
    }

    /// `GET path`, answered as raw bytes (e.g. a DICOM file).
    pub async fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let resp = self.request(self.http.get(format!("{}{path}", self.base))).send().await;
        let resp = resp.with_context(|| format!("cannot reach node at {}; is it running?", self.base))?;
        let status = resp.status();
        let bytes = resp.bytes().await.context("reading the node's answer")?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or_else(|| text.into_owned());
            return Err(anyhow!("{status}: {message}"));
        }
        Ok(bytes.to_vec())
    }

    /// `DELETE path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.delete(format!("{}{path}", self.base))).await
    }

    fn request(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let resp = self
            .request(req)
            .send()
            .await
            .with_context(|| format!("cannot reach node at {}; is it running?", self.base))?;
        let status = resp.status();
        let text = resp.text().await.context("reading the node's answer")?;
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or(text);
            return Err(anyhow!("{status}: {message}"));
        }
        serde_json::from_str(&text).with_context(|| format!("unexpected answer from {}: {text}", self.base))
    }
}

/// `addr` as a base URL: kept if it has a scheme, else with `scheme`.
fn base_url(addr: &str, scheme: &str) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.trim_end_matches('/').to_owned()
    } else {
        format!("{scheme}://{addr}")
    }
}
