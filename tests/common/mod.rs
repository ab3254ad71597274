//! Shared test support: moto through a fault-injecting proxy, the response
//! recorder, the `events/` fixtures, and a harness that runs the handler on
//! them and reads what AWS holds afterwards.
#![allow(dead_code)] // Each test binary uses a different part of this module.

pub mod http;
pub mod moto;
pub mod proxy;
pub mod recorder;
pub mod runtime_api;

use aws_credential_types::Credentials;
use ecr_replication::{
    aws::Aws, destination::Settle, handler::Handler, identity::ResourceIdentity,
    lifecycle::Services, replication::Rule, response::Responder, source,
};
use lambda_runtime::{Context, LambdaEvent};
use proxy::Proxy;
use recorder::Recorder;
use serde_json::Value;
use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// The accounts the fixtures in `events/` name, replaced by fresh ones.
pub const FIXTURE_SOURCE: &str = "123456789012";
pub const FIXTURE_DESTINATION: &str = "222222222222";
pub const FIXTURE_OTHER_DESTINATION: &str = "333333333333";

/// The destination region of the fixtures' cross-account destination.
pub const DESTINATION_REGION: &str = "eu-west-1";

static NEXT_STACK: AtomicU32 = AtomicU32::new(1);

/// The ECR actions moto does not implement, answered by the SDK's mocks.
pub const MOCKED_ACTIONS: [&str; 5] = [
    "DescribeRepositoryCreationTemplates",
    "CreateRepositoryCreationTemplate",
    "UpdateRepositoryCreationTemplate",
    "DeleteRepositoryCreationTemplate",
    "StartReplicationBackfill",
];

/// Policy read-backs paced for tests: short, still jittered.
pub fn quick_settle() -> Settle {
    Settle {
        min_pause: Duration::from_millis(5),
        max_pause: Duration::from_millis(40),
        max_rounds: 10,
    }
}

/// A fixture from `events/`.
pub fn fixture(name: &str) -> Value {
    let path = moto::project_dir()
        .join("events")
        .join(format!("{name}.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// One test's world: a source account with the function's clients, two
/// destination accounts, a proxy in front of moto and a response recorder.
pub struct Harness {
    pub source: String,
    /// Credentials acting in the source account, as the function's would.
    pub credentials: Credentials,
    pub destination: String,
    pub other_destination: String,
    pub stack_id: String,
    pub proxy: Proxy,
    pub recorder: Recorder,
    pub aws: Aws,
    pub handler: Handler,
    /// The deadline each invocation gets.
    pub timeout: Duration,
}

impl Harness {
    pub async fn new() -> Self {
        Self::with_settle(quick_settle()).await
    }

    pub async fn with_settle(settle: Settle) -> Self {
        Self::build(settle, |aws| aws).await
    }

    /// A harness whose ECR clients also answer from `mocks` the calls those
    /// rules match (the ones moto does not implement); all other calls go
    /// to moto.
    pub async fn with_ecr_mocks(mocks: aws_smithy_mocks::MockResponseInterceptor) -> Self {
        let h = Self::build(quick_settle(), |aws| {
            aws.with_ecr_interceptor(mocks.allow_passthrough())
        })
        .await;
        h.proxy.absorb(&MOCKED_ACTIONS);
        h
    }

    async fn build(settle: Settle, customize: impl FnOnce(Aws) -> Aws) -> Self {
        let source = moto::fresh_account();
        let proxy = Proxy::start(moto::endpoint()).await;
        let credentials = moto::credentials_for(&source).await;
        let aws = customize(moto::aws_with(credentials.clone(), &proxy.url()).await);
        let handler = Handler::new(
            Services {
                aws: aws.clone(),
                settle,
            },
            Responder::new(true),
        );
        let stack = NEXT_STACK.fetch_add(1, Ordering::Relaxed);
        Self {
            stack_id: format!(
                "arn:aws:cloudformation:us-east-1:{source}:stack/test-{stack}/00000000-0000-4000-8000-{stack:012}"
            ),
            source,
            credentials,
            destination: moto::fresh_account(),
            other_destination: moto::fresh_account(),
            proxy,
            recorder: Recorder::start().await,
            aws,
            handler,
            timeout: Duration::from_secs(60),
        }
    }

    /// The fixture `name` made this test's own: its accounts, its stack,
    /// its response URL, and the physical id this handler issues.
    pub fn event(&self, name: &str) -> Value {
        let text = fixture(name)
            .to_string()
            .replace(FIXTURE_SOURCE, &self.source)
            .replace(FIXTURE_DESTINATION, &self.destination)
            .replace(FIXTURE_OTHER_DESTINATION, &self.other_destination);
        let mut event: Value = serde_json::from_str(&text).expect("still JSON");
        event["StackId"] = Value::from(self.stack_id.clone());
        event["ResponseURL"] = Value::from(self.recorder.url(name, "c0ffee0123456789abcdef"));
        if event.get("PhysicalResourceId").is_some() {
            event["PhysicalResourceId"] = Value::from(self.physical_id("Replication"));
        }
        event
    }

    /// The physical id (and statement id) of `logical_id` in this test's stack.
    pub fn physical_id(&self, logical_id: &str) -> String {
        ResourceIdentity::new(&self.stack_id, logical_id).physical_id
    }

    /// The Lambda context of an invocation with this harness's deadline.
    pub fn context(&self) -> Context {
        let mut context = Context::default();
        context.request_id = format!("invocation-{}", NEXT_STACK.fetch_add(1, Ordering::Relaxed));
        context.invoked_function_arn = format!(
            "arn:aws:lambda:us-east-1:{}:function:ecr-replication",
            self.source
        );
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        context.deadline = (now + self.timeout).as_millis() as u64;
        context
    }

    /// The environment that makes a function process act as this harness's
    /// source account, through its proxy.
    pub fn function_environment(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.proxy.url()),
            (
                "AWS_ACCESS_KEY_ID".into(),
                self.credentials.access_key_id().into(),
            ),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                self.credentials.secret_access_key().into(),
            ),
            (
                "AWS_SESSION_TOKEN".into(),
                self.credentials.session_token().unwrap_or_default().into(),
            ),
        ]
    }

    /// Runs the handler on `event` and returns the one response it sent.
    pub async fn invoke(&self, event: Value) -> Value {
        let before = self.recorder.received().len();
        let result = self
            .handler
            .handle(LambdaEvent::new(event, self.context()))
            .await;
        assert!(
            result.is_ok(),
            "the handler could not answer: {:?}",
            result.err()
        );
        let received = self.recorder.received();
        assert_eq!(
            received.len(),
            before + 1,
            "exactly one response per invocation"
        );
        let response = received.last().expect("one response").clone();
        assert_eq!(response.method, "PUT");
        assert_eq!(
            response.header("content-type"),
            None,
            "no Content-Type header"
        );
        let body: Value = serde_json::from_slice(&response.body).expect("the response is JSON");
        assert!(
            response.body.len() <= 4096,
            "the response fits in 4096 bytes"
        );
        body
    }

    /// The rules of the source registry, as JSON.
    pub async fn rules(&self) -> Vec<Value> {
        let ecr = moto::ecr_as(&self.source, moto::REGION).await;
        source::read(&ecr)
            .await
            .expect("read the source configuration")
            .rules
            .iter()
            .map(Rule::to_json)
            .collect()
    }

    /// Writes rules into the source registry as another owner would.
    pub async fn put_rules(&self, rules: Vec<Value>) {
        let rules: Vec<Rule> = rules
            .into_iter()
            .map(|r| Rule::from_json(r).expect("a well-formed rule"))
            .collect();
        let ecr = moto::ecr_as(&self.source, moto::REGION).await;
        source::write(&ecr, &rules)
            .await
            .expect("write the source configuration");
    }

    /// What the registries hold: the source rules and the policy of the
    /// first destination, to compare before and after an event.
    pub async fn snapshot(&self) -> (Vec<Value>, Option<Value>) {
        (
            self.rules().await,
            self.policy(&self.destination, DESTINATION_REGION).await,
        )
    }

    /// The registry policy of `account` in `region`, if any.
    pub async fn policy(&self, account: &str, region: &str) -> Option<Value> {
        policy_of(account, region).await
    }

    /// Writes a registry policy as another owner would.
    pub async fn put_policy(&self, account: &str, region: &str, policy: Value) {
        moto::ecr_as(account, region)
            .await
            .put_registry_policy()
            .policy_text(policy.to_string())
            .send()
            .await
            .expect("write a registry policy");
    }
}

/// The registry policy of `account` in `region`, if any.
pub async fn policy_of(account: &str, region: &str) -> Option<Value> {
    let ecr = moto::ecr_as(account, region).await;
    match ecr.get_registry_policy().send().await {
        Ok(output) => Some(serde_json::from_str(output.policy_text()?).expect("policy JSON")),
        Err(e) if format!("{:?}", e).contains("RegistryPolicyNotFoundException") => None,
        Err(e) => panic!("read the registry policy: {e:?}"),
    }
}

/// Writes a test's figures to `target/tmp/figures/<name>.json`, from where
/// `scripts/figures` gathers them into one table.
pub fn record_figures(name: &str, figures: Value) {
    let directory = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("figures");
    std::fs::create_dir_all(&directory).expect("create the figures directory");
    let text = serde_json::to_string_pretty(&figures).expect("figures are JSON");
    std::fs::write(directory.join(format!("{name}.json")), text).expect("write the figures");
    println!("figures {name}: {figures}");
}

/// The statements of a policy whose Sid is `sid`.
pub fn statements_with_sid<'a>(policy: &'a Option<Value>, sid: &str) -> Vec<&'a Value> {
    policy
        .iter()
        .flat_map(|p| p["Statement"].as_array().into_iter().flatten())
        .filter(|s| s["Sid"] == sid)
        .collect()
}

/// A statement of another source account, as a second owner of a destination
/// registry policy would write it.
pub fn other_owners_statement(destination: &str) -> Value {
    serde_json::json!({
        "Sid": "OtherTeamReplication",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
        "Action": ["ecr:ReplicateImage"],
        "Resource": [format!("arn:aws:ecr:eu-west-1:{destination}:repository/*")]
    })
}

/// A rule of another owner, with a field the SDK does not model.
pub fn other_owners_rule(index: usize) -> Value {
    serde_json::json!({
        "destinations": [{"region": "ap-south-1", "registryId": format!("{:012}", 900_000_000_000u64 + index as u64)}],
        "repositoryFilters": [{"filter": format!("legacy-{index}/"), "filterType": "PREFIX_MATCH"}],
        "deleteReplication": {"enabled": true}
    })
}
