//! The AWS stand-in: one moto server per test binary, started through the
//! project's launcher, and clients acting in any account through it.

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use ecr_replication::aws::Aws;
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

/// The region every test's source registry is in.
pub const REGION: &str = "us-east-1";

/// The account moto gives to credentials it does not know.
pub const DEFAULT_ACCOUNT: &str = "123456789012";

static ENDPOINT: OnceLock<String> = OnceLock::new();
static NEXT_ACCOUNT: AtomicU64 = AtomicU64::new(100_000_000_000);

pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python of the project's virtual environment, which `make test` installs.
pub fn venv_python() -> PathBuf {
    let python = project_dir().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make test` (or `make venv`), which installs moto and the other \
         pinned tools into .venv",
        python.display()
    );
    python
}

/// The URL of this test binary's moto server, started on first use. The
/// server exits with the test process.
pub fn endpoint() -> &'static str {
    ENDPOINT.get_or_init(|| start(&project_dir().join("tests/moto_server.py")))
}

fn start(launcher: &Path) -> String {
    let mut child = Command::new(venv_python())
        .arg(launcher)
        .args(["--port", "0"])
        .env_remove("MOTO_ACCOUNT_ID")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the moto launcher");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the moto launcher's first line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the moto launcher did not start: {line:?}"))
        .to_owned();
    // The launcher exits when this process does; nothing to wait for here.
    std::mem::forget(child);
    url
}

/// An account id no other test of this binary uses.
pub fn fresh_account() -> String {
    format!("{:012}", NEXT_ACCOUNT.fetch_add(1, Ordering::Relaxed))
}

/// Credentials that act in `account` in moto, obtained the way the function
/// obtains them: by assuming a role in that account.
pub async fn credentials_for(account: &str) -> Credentials {
    let base = base_loader(endpoint()).load().await;
    let sts = aws_sdk_sts::Client::new(&base);
    let issued = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/test-caller"))
        .role_session_name("test")
        .send()
        .await
        .expect("moto issues credentials for any role")
        .credentials
        .expect("AssumeRole returns credentials");
    Credentials::new(
        issued.access_key_id(),
        issued.secret_access_key(),
        Some(issued.session_token().to_owned()),
        None,
        "moto",
    )
}

/// The function's clients, acting with `credentials`, reaching AWS through `endpoint`.
pub async fn aws_with(credentials: Credentials, endpoint: &str) -> Aws {
    Aws::load(base_loader(endpoint).credentials_provider(credentials)).await
}

/// An ECR client acting in `account` and `region`, for checking state.
pub async fn ecr_as(account: &str, region: &str) -> aws_sdk_ecr::Client {
    let credentials = credentials_for(account).await;
    let config = base_loader(endpoint())
        .credentials_provider(credentials)
        .region(Region::new(region.to_owned()))
        .load()
        .await;
    aws_sdk_ecr::Client::new(&config)
}

fn base_loader(endpoint: &str) -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(ecr_replication::aws::http_client())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "static"))
}

/// Starts moto's request recorder afresh.
pub async fn start_recording() {
    for action in ["reset-recording", "start-recording"] {
        let url = format!("{}/moto-api/recorder/{action}", endpoint());
        let (status, _) = super::http::call("POST", &url, b"")
            .await
            .expect("reach moto");
        assert_eq!(status, 200, "moto's recorder: {action}");
    }
}

/// Stops moto's request recorder and returns the API action of every
/// request it recorded, in order.
pub async fn stop_recording() -> Vec<String> {
    let url = format!("{}/moto-api/recorder/stop-recording", endpoint());
    super::http::call("POST", &url, b"")
        .await
        .expect("reach moto");
    let url = format!("{}/moto-api/recorder/download-recording", endpoint());
    let (status, recording) = super::http::call("GET", &url, b"")
        .await
        .expect("reach moto");
    assert_eq!(status, 200, "moto's recorder: download");
    String::from_utf8_lossy(&recording)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).expect("a recorded request");
            recorded_action(&entry)
        })
        .collect()
}

/// The action of one request in moto's recording.
fn recorded_action(entry: &serde_json::Value) -> String {
    use base64::Engine;
    let target = entry["headers"]
        .as_object()
        .and_then(|h| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
        })
        .and_then(|(_, v)| v.as_str());
    if let Some(target) = target {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    let body = entry["body"].as_str().unwrap_or_default();
    let body = if entry["body_encoded"] == true {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        body.to_owned()
    };
    body.split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .unwrap_or("unknown")
        .to_owned()
}
