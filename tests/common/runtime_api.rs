//! A local Lambda Runtime API: it hands events to a function process the way
//! Lambda does (`/runtime/invocation/next` with the request id, deadline and
//! function ARN headers) and records what the function answers.

use super::{
    DESTINATION_REGION, fixture,
    http::{self, Request, Response},
    moto, policy_of,
    recorder::Recorder,
};
use serde_json::{Value, json};
use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    process::{Child, Command},
    sync::Notify,
};

/// What the function answered for one invocation.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// `/response`, with the handler's return value.
    Response(Value),
    /// `/error`, with Lambda's error document.
    Error(Value),
}

#[derive(Default)]
struct State {
    queue: VecDeque<(String, Value, u64)>,
    outcomes: HashMap<String, Outcome>,
    first_poll: Option<Instant>,
    init_error: Option<Value>,
    next_id: u32,
}

#[derive(Clone)]
pub struct RuntimeApi {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    queued: Arc<Notify>,
    answered: Arc<Notify>,
    pub function_arn: String,
}

impl RuntimeApi {
    pub async fn start(function_arn: &str) -> Self {
        let state: Arc<Mutex<State>> = Arc::default();
        let queued = Arc::new(Notify::new());
        let answered = Arc::new(Notify::new());
        let arn = function_arn.to_owned();
        let address = {
            let (state, queued, answered) = (state.clone(), queued.clone(), answered.clone());
            http::serve(move |request: Request| {
                let (state, queued, answered, arn) =
                    (state.clone(), queued.clone(), answered.clone(), arn.clone());
                async move { Some(route(request, &state, &queued, &answered, &arn).await) }
            })
            .await
        };
        Self {
            address,
            state,
            queued,
            answered,
            function_arn: function_arn.to_owned(),
        }
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` for the function process.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Queues an invocation of `payload` that must end within `timeout`.
    pub fn invoke(&self, payload: Value, timeout: Duration) -> String {
        let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + timeout;
        let mut state = self.state.lock().unwrap();
        state.next_id += 1;
        let id = format!("00000000-0000-4000-8000-{:012}", state.next_id);
        state
            .queue
            .push_back((id.clone(), payload, deadline.as_millis() as u64));
        drop(state);
        self.queued.notify_waiters();
        self.queued.notify_one();
        id
    }

    /// Waits up to `wait` for the function's answer to invocation `id`.
    pub async fn outcome(&self, id: &str, wait: Duration) -> Option<Outcome> {
        let give_up = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.answered.notified();
            if let Some(outcome) = self.state.lock().unwrap().outcomes.get(id).cloned() {
                return Some(outcome);
            }
            if tokio::time::timeout_at(give_up, notified).await.is_err() {
                return None;
            }
        }
    }

    /// When the function first asked for an event.
    pub fn first_poll(&self) -> Option<Instant> {
        self.state.lock().unwrap().first_poll
    }

    /// What the function reported if it failed to start.
    pub fn init_error(&self) -> Option<Value> {
        self.state.lock().unwrap().init_error.clone()
    }

    /// The environment Lambda gives a function, for this Runtime API and
    /// an AWS endpoint at `aws_endpoint`.
    pub fn lambda_environment(&self, aws_endpoint: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", "ecr-replication".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/12/03/[$LATEST]0123456789abcdef".into(),
            ),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                "/aws/lambda/ecr-replication".into(),
            ),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", aws_endpoint.into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            (
                "AWS_SECRET_ACCESS_KEY",
                "testing-secret-key-not-for-logs".into(),
            ),
            ("ALLOW_INSECURE_RESPONSE_URL", "true".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Starts `program` as the function, with Lambda's environment and any
    /// `extra` variables, collecting what it writes.
    pub fn spawn_function(
        &self,
        program: &[&Path],
        aws_endpoint: &str,
        extra: &[(String, String)],
    ) -> Function {
        let (binary, prefix) = program.split_last().expect("a program to run");
        let mut command = match prefix.first() {
            Some(runner) => {
                let mut c = Command::new(runner);
                c.args(&prefix[1..]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        command
            .env_clear()
            .envs(self.lambda_environment(aws_endpoint))
            .envs(extra.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let output: Arc<Mutex<Vec<u8>>> = Arc::default();
        // Read both streams as they come: a full pipe would block the function.
        for stream in [
            Box::new(child.stdout.take().expect("piped")) as Box<dyn AsyncRead + Send + Unpin>,
            Box::new(child.stderr.take().expect("piped")),
        ] {
            let output = output.clone();
            tokio::spawn(async move {
                let mut stream = stream;
                let mut buffer = [0u8; 8192];
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    output.lock().unwrap().extend_from_slice(&buffer[..n]);
                }
            });
        }
        Function { child, output }
    }
}

/// A running function process and everything it has written so far.
pub struct Function {
    pub child: Child,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Function {
    /// Standard output and error, as written so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Stops the process and returns all it wrote.
    pub async fn stop(mut self) -> String {
        let _ = self.child.kill().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.output()
    }
}

async fn route(
    request: Request,
    state: &Mutex<State>,
    queued: &Notify,
    answered: &Notify,
    function_arn: &str,
) -> Response {
    let path = request.target.trim_start_matches("/2018-06-01/runtime/");
    if request.method == "GET" && path == "invocation/next" {
        state
            .lock()
            .unwrap()
            .first_poll
            .get_or_insert_with(Instant::now);
        loop {
            let notified = queued.notified();
            if let Some((id, payload, deadline)) = state.lock().unwrap().queue.pop_front() {
                return Response::new(200, payload.to_string())
                    .header("content-type", "application/json")
                    .header("lambda-runtime-aws-request-id", id)
                    .header("lambda-runtime-deadline-ms", deadline.to_string())
                    .header("lambda-runtime-invoked-function-arn", function_arn)
                    .header(
                        "lambda-runtime-trace-id",
                        "Root=1-00000000-000000000000000000000000",
                    );
            }
            notified.await;
        }
    }
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    if path == "init/error" {
        state.lock().unwrap().init_error = Some(body);
        answered.notify_waiters();
        return Response::new(202, "{}");
    }
    if let Some(rest) = path.strip_prefix("invocation/") {
        let (id, kind) = rest.split_once('/').unwrap_or((rest, ""));
        let outcome = match kind {
            "response" => Outcome::Response(body),
            "error" => Outcome::Error(body),
            _ => return Response::new(404, "{}"),
        };
        state
            .lock()
            .unwrap()
            .outcomes
            .insert(id.to_owned(), outcome);
        answered.notify_waiters();
        return Response::new(202, "{}");
    }
    Response::new(404, "{}")
}

/// The signature of the test's response URLs, which must never be logged.
pub const SIGNATURE: &str = "5e1f0c2d3b4a59687766554433221100ffeeddccbbaa99887766554433221100";

/// Runs `program` (a function binary, after any runner and its arguments)
/// under a Runtime API, sends it the Create, Update and Delete events of
/// `events/` in the fixtures' own accounts, and checks what CloudFormation is
/// told, what the Runtime API gets and what AWS holds after each. Returns the
/// function's logs, which it has checked for secrets.
pub async fn answer_event_files(program: &[&Path]) -> String {
    let recorder = Recorder::start().await;
    let api =
        RuntimeApi::start("arn:aws:lambda:us-east-1:123456789012:function:ecr-replication").await;
    let function = api.spawn_function(
        program,
        moto::endpoint(),
        &[("RUST_LOG".to_owned(), "trace".to_owned())],
    );
    let physical_id = "EcrReplAppimagesReplication0a512be1eaf638d2";

    for (count, name) in ["create", "update", "delete"].into_iter().enumerate() {
        let mut event = fixture(name);
        event["ResponseURL"] = json!(recorder.url(name, SIGNATURE));
        let id = api.invoke(event, Duration::from_secs(120));
        let Some(outcome) = api.outcome(&id, Duration::from_secs(120)).await else {
            panic!(
                "no answer to {name}; init error: {:?}; output:\n{}",
                api.init_error(),
                function.stop().await
            );
        };

        let received = recorder.received();
        assert_eq!(received.len(), count + 1, "one response per event");
        let response: Value = serde_json::from_slice(&received[count].body).unwrap();
        assert_eq!(response["Status"], "SUCCESS", "{name}: {response:#}");
        assert_eq!(response["PhysicalResourceId"], physical_id);
        assert_eq!(response["Data"]["SourceRegistryId"], "123456789012");
        assert_eq!(
            outcome,
            Outcome::Response(json!({"Status": "SUCCESS", "PhysicalResourceId": physical_id}))
        );

        let first = policy_of("222222222222", DESTINATION_REGION).await;
        let second = policy_of("333333333333", DESTINATION_REGION).await;
        let (first_expected, second_expected) = match name {
            "create" => (true, false),
            "update" => (false, true),
            _ => (false, false),
        };
        assert_eq!(
            first.is_some(),
            first_expected,
            "{name}: policy of 222222222222: {first:?}"
        );
        assert_eq!(
            second.is_some(),
            second_expected,
            "{name}: policy of 333333333333: {second:?}"
        );
        if let Some(policy) = first.or(second) {
            assert_eq!(policy["Statement"][0]["Sid"], physical_id);
        }
    }

    let logs = function.stop().await;
    assert!(
        !logs.contains(SIGNATURE),
        "the ResponseURL's signature reached the logs"
    );
    assert!(
        !logs.contains("testing-secret-key-not-for-logs"),
        "a secret key reached the logs"
    );
    logs
}
