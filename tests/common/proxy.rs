//! A fault-injecting proxy between the function's AWS clients and moto.
//!
//! Requests are forwarded unchanged, except those matching a planned fault:
//! by action (`AssumeRole`, `PutRegistryPolicy`, ...) and, optionally, by a
//! piece of the request body (an account id in a role ARN, say).

use super::http::{self, Request, Response};
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// What a matching request gets instead of moto's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// An AWS error with this HTTP status and code.
    Error { status: u16, code: &'static str },
    /// The connection is closed without an answer.
    Drop,
    /// The answer comes after this long (or never, for long enough).
    Delay(Duration),
}

impl Fault {
    pub fn access_denied() -> Self {
        Self::Error {
            status: 403,
            code: "AccessDenied",
        }
    }

    pub fn throttling() -> Self {
        Self::Error {
            status: 400,
            code: "ThrottlingException",
        }
    }

    pub fn server_error() -> Self {
        Self::Error {
            status: 500,
            code: "InternalFailure",
        }
    }
}

#[derive(Clone, Debug)]
struct Planned {
    action: String,
    body_contains: Option<String>,
    fault: Fault,
    remaining: u32,
}

#[derive(Clone)]
pub struct Proxy {
    address: SocketAddr,
    plans: Arc<Mutex<Vec<Planned>>>,
    seen: Arc<Mutex<Vec<String>>>,
    answers: Arc<Mutex<Vec<(String, String)>>>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let plans: Arc<Mutex<Vec<Planned>>> = Arc::default();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let answers: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let address = {
            let (plans, seen, answers) = (plans.clone(), seen.clone(), answers.clone());
            http::serve(move |request: Request| {
                let action = action_of(&request);
                seen.lock().unwrap().push(action.clone());
                let fault = take_fault(&plans, &action, &request);
                let (upstream, answers) = (upstream.clone(), answers.clone());
                async move {
                    match fault {
                        None => {
                            let response = forward(&upstream, request).await;
                            if let Some(response) = &response {
                                let body = String::from_utf8_lossy(&response.body).into_owned();
                                answers.lock().unwrap().push((action, body));
                            }
                            response
                        }
                        Some(Fault::Drop) => None,
                        Some(Fault::Delay(pause)) => {
                            tokio::time::sleep(pause).await;
                            forward(&upstream, request).await
                        }
                        Some(Fault::Error { status: 200, .. }) => Some(
                            Response::new(200, "{}")
                                .header("content-type", "application/x-amz-json-1.1"),
                        ),
                        Some(Fault::Error { status, code }) => {
                            Some(error_response(&request, status, code))
                        }
                    }
                }
            })
            .await
        };
        Self {
            address,
            plans,
            seen,
            answers,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Answers the next `times` requests for `action` (whose body contains
    /// `body_contains`, when given) with `fault`.
    pub fn fail(&self, action: &str, body_contains: Option<&str>, fault: Fault, times: u32) {
        self.plans.lock().unwrap().push(Planned {
            action: action.to_owned(),
            body_contains: body_contains.map(str::to_owned),
            fault,
            remaining: times,
        });
    }

    /// Answers every request for `actions` with an empty success instead
    /// of forwarding it: for calls moto lacks, whose results the test gives
    /// through the SDK's mocks (which replace what the wire answered).
    pub fn absorb(&self, actions: &[&str]) {
        for action in actions {
            self.fail(
                action,
                None,
                Fault::Error {
                    status: 200,
                    code: "",
                },
                u32::MAX,
            );
        }
    }

    /// Every action requested so far, in order.
    pub fn actions(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// The bodies moto answered for `action`, in order.
    pub fn answers(&self, action: &str) -> Vec<String> {
        self.answers
            .lock()
            .unwrap()
            .iter()
            .filter(|(a, _)| a == action)
            .map(|(_, body)| body.clone())
            .collect()
    }

    /// How many faults are still planned (absorbed actions not counted).
    pub fn pending_faults(&self) -> u32 {
        self.plans
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.remaining != u32::MAX)
            .map(|p| p.remaining)
            .sum()
    }
}

fn take_fault(plans: &Mutex<Vec<Planned>>, action: &str, request: &Request) -> Option<Fault> {
    let body = String::from_utf8_lossy(&request.body);
    let mut plans = plans.lock().unwrap();
    let planned = plans.iter_mut().find(|p| {
        p.remaining > 0
            && p.action == action
            && p.body_contains
                .as_deref()
                .is_none_or(|needle| body.contains(needle))
    })?;
    planned.remaining -= 1;
    Some(planned.fault.clone())
}

/// The API action of a request: from `X-Amz-Target` (JSON protocols) or the
/// `Action` form field (query protocols such as STS).
pub fn action_of(request: &Request) -> String {
    if let Some(target) = request.header("x-amz-target") {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    let body = String::from_utf8_lossy(&request.body);
    body.split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .unwrap_or("unknown")
        .to_owned()
}

fn error_response(request: &Request, status: u16, code: &str) -> Response {
    let message = format!("injected {code} by the test proxy");
    if request.header("x-amz-target").is_some() {
        let body = format!(r#"{{"__type":"{code}","message":"{message}"}}"#);
        Response::new(status, body)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amzn-errortype", code)
    } else {
        let body = format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>{message}</Message></Error><RequestId>test</RequestId></ErrorResponse>"
        );
        Response::new(status, body).header("content-type", "text/xml")
    }
}

async fn forward(upstream: &str, request: Request) -> Option<Response> {
    let mut stream = TcpStream::connect(upstream).await.ok()?;
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
    for (name, value) in &request.headers {
        if !matches!(
            name.as_str(),
            "connection" | "content-length" | "transfer-encoding"
        ) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        request.body.len()
    ));
    stream.write_all(head.as_bytes()).await.ok()?;
    stream.write_all(&request.body).await.ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.ok()?;

    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let mut response = Response::new(status, raw[split + 4..].to_vec());
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            if !matches!(
                name.as_str(),
                "connection" | "content-length" | "transfer-encoding"
            ) {
                response = response.header(&name, value.trim());
            }
        }
    }
    Some(response)
}
