//! A stand-in for Slack's incoming webhook: an HTTP server on a loopback
//! port that answers every POST with Slack's "ok" and keeps the JSON bodies,
//! so that tests can read exactly what Alertmanager would have sent to Slack.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::process::wait_until;

/// One webhook call: the path it was sent to and its parsed JSON body.
#[derive(Debug, Clone)]
pub struct SlackMessage {
    pub path: String,
    pub body: Value,
}

impl SlackMessage {
    /// The first attachment's field (Alertmanager puts title, text, color
    /// and fallback there), or "" when absent.
    pub fn attachment(&self, field: &str) -> &str {
        self.body["attachments"][0][field].as_str().unwrap_or("")
    }

    pub fn title(&self) -> &str {
        self.attachment("title")
    }

    pub fn text(&self) -> &str {
        self.attachment("text")
    }
}

pub struct SlackReceiver {
    /// `http://127.0.0.1:<port>/services/T0/B0/e2e`: the webhook URL to configure.
    pub url: String,
    messages: Arc<Mutex<Vec<SlackMessage>>>,
    /// Requests that were not a JSON POST: a test failure, kept to report.
    errors: Arc<Mutex<Vec<String>>>,
}

impl SlackReceiver {
    pub fn start() -> SlackReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (m, e) = (messages.clone(), errors.clone());
        // Detached: the thread ends with the test process.
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (m, e) = (m.clone(), e.clone());
                std::thread::spawn(move || serve(conn, &m, &e));
            }
        });
        SlackReceiver {
            url: format!("http://127.0.0.1:{port}/services/T0/B0/e2e"),
            messages,
            errors,
        }
    }

    /// Everything received so far, in arrival order.
    pub fn messages(&self) -> Vec<SlackMessage> {
        self.messages.lock().unwrap().clone()
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }

    /// Waits until a message received after the first `skip` ones matches
    /// `pred`, and returns it.
    pub fn wait_for(
        &self,
        what: &str,
        skip: usize,
        timeout: Duration,
        pred: impl Fn(&SlackMessage) -> bool,
    ) -> Result<SlackMessage, String> {
        let mut found = None;
        wait_until(what, timeout, || {
            found = self.messages().into_iter().skip(skip).find(|m| pred(m));
            Ok(found.is_some())
        })
        .map_err(|e| format!("{e}\nmessages so far:\n{}", self.dump()))?;
        Ok(found.expect("found"))
    }

    /// All messages' titles and texts, for failure reports.
    pub fn dump(&self) -> String {
        self.messages()
            .iter()
            .enumerate()
            .map(|(i, m)| format!("  #{i} {}\n{}", m.title(), indent(m.text())))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("      {l}\n")).collect()
}

/// Serves HTTP/1.1 requests on one connection (Alertmanager keeps it alive).
fn serve(conn: TcpStream, messages: &Mutex<Vec<SlackMessage>>, errors: &Mutex<Vec<String>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) if method == "POST" => messages.lock().unwrap().push(SlackMessage {
                path: path.to_string(),
                body: v,
            }),
            other => errors.lock().unwrap().push(format!(
                "{method} {path}: not a JSON POST ({:?}): {}",
                other.err(),
                String::from_utf8_lossy(&body)
            )),
        }
        let answer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
