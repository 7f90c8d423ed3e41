//! Blocking HTTP GETs with a timeout, answering non-2xx statuses as values
//! rather than errors so that tests can print what the server said.

use std::sync::OnceLock;
use std::time::Duration;

pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// The Accept header Prometheus 2.42 sends on every scrape: OpenMetrics
/// first, the text format as a fallback.
pub const PROMETHEUS_SCRAPE_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
     application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// The classic text exposition format, version 0.0.4.
pub const TEXT_FORMAT_ACCEPT: &str = "text/plain;version=0.0.4";

/// One agent for the whole test binary, so that hundreds of queries reuse
/// their connections.
fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(15))
            .build()
    })
}

pub fn get(url: &str, query: &[(&str, &str)], accept: Option<&str>) -> Result<Response, String> {
    let mut req = agent().get(url);
    for (k, v) in query {
        req = req.query(k, v);
    }
    if let Some(a) = accept {
        req = req.set("Accept", a);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("GET {url}: {e}")),
    };
    let status = resp.status();
    let content_type = resp.header("Content-Type").unwrap_or("").to_string();
    let body = resp
        .into_string()
        .map_err(|e| format!("GET {url}: reading the body: {e}"))?;
    Ok(Response {
        status,
        content_type,
        body,
    })
}

/// POST a JSON body; like [`get`], a non-2xx status is a value, not an error.
pub fn post_json(url: &str, body: &str) -> Result<Response, String> {
    let resp = match agent()
        .post(url)
        .set("Content-Type", "application/json")
        .send_string(body)
    {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("POST {url}: {e}")),
    };
    let status = resp.status();
    let content_type = resp.header("Content-Type").unwrap_or("").to_string();
    let body = resp
        .into_string()
        .map_err(|e| format!("POST {url}: reading the body: {e}"))?;
    Ok(Response {
        status,
        content_type,
        body,
    })
}
