//! The answer to CloudFormation: building a body that fits its 4,096-byte
//! limit, and sending it to the presigned `ResponseURL` with retries.
//!
//! The body goes out with a PUT and no `Content-Type` header, because the
//! presigned URL's signature does not cover one.

use crate::event::{ReplyTo, ResponseUrl};
use aws_lambda_events::cloudformation::{
    CloudFormationCustomResourceResponse as CfnResponse,
    CloudFormationCustomResourceResponseStatus as CfnStatus,
};
use aws_smithy_http_client::{
    Connector,
    tls::{Provider, rustls_provider::CryptoMode},
};
use aws_smithy_runtime_api::client::{
    http::{HttpConnector, HttpConnectorSettings},
    orchestrator::HttpRequest,
};
use aws_smithy_types::body::SdkBody;
use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    time::Duration,
};
use tokio::time::Instant;
use tracing::{info, warn};

/// CloudFormation refuses response bodies larger than this.
pub const MAX_BODY_BYTES: usize = 4096;

/// At least this many attempts are made while time allows.
const MAX_ATTEMPTS: u32 = 6;

/// The pause before the second attempt; it doubles after each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// One attempt may take at most this long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Success or failure, as CloudFormation spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The resource reached the requested state.
    Success,
    /// It did not; `reason` says why.
    Failed,
}

/// What the handler tells CloudFormation about one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// SUCCESS or FAILED.
    pub status: Status,
    /// Why, in words a stack's user can act on.
    pub reason: String,
    /// The resource's physical id.
    pub physical_id: String,
    /// The values `Fn::GetAtt` reads.
    pub data: BTreeMap<String, String>,
}

/// Builds the response body for `answer`, shortening the Reason (and, if
/// ever needed, Data values) so that the body fits in [`MAX_BODY_BYTES`].
///
/// ```
/// use ecr_replication::event::{ReplyTo, ResponseUrl};
/// use ecr_replication::response::{Answer, Status, body, MAX_BODY_BYTES};
///
/// let reply = ReplyTo {
///     response_url: ResponseUrl::new("https://example.com/r"),
///     stack_id: "arn:aws:cloudformation:us-east-1:111111111111:stack/s/1".into(),
///     request_id: "r-1".into(),
///     logical_id: "Replication".into(),
/// };
/// let answer = Answer {
///     status: Status::Failed,
///     reason: "x".repeat(10_000),
///     physical_id: "id".into(),
///     data: Default::default(),
/// };
/// let bytes = body(&reply, &answer);
/// assert!(bytes.len() <= MAX_BODY_BYTES);
/// assert!(String::from_utf8(bytes).unwrap().contains("reason shortened from 10000 characters"));
/// ```
pub fn body(reply: &ReplyTo, answer: &Answer) -> Vec<u8> {
    let full = render(reply, answer);
    if full.len() <= MAX_BODY_BYTES {
        return full;
    }

    let total = answer.reason.chars().count();
    let note =
        format!(" [reason shortened from {total} characters; the function's log has all of it]");
    let mut shortened = answer.clone();
    let with_reason_cut_to = |keep: usize, shortened: &mut Answer| {
        let kept: String = answer.reason.chars().take(keep).collect();
        shortened.reason = format!("{kept}{note}");
        render(reply, shortened)
    };
    // The longest prefix of the reason that fits: JSON escaping makes the
    // bytes a character takes vary, so search rather than compute.
    let (mut fits, mut too_long) = (0, total);
    if with_reason_cut_to(0, &mut shortened).len() <= MAX_BODY_BYTES {
        while too_long - fits > 1 {
            let middle = fits + (too_long - fits) / 2;
            if with_reason_cut_to(middle, &mut shortened).len() <= MAX_BODY_BYTES {
                fits = middle;
            } else {
                too_long = middle;
            }
        }
        return with_reason_cut_to(fits, &mut shortened);
    }

    // Even without a reason the body is too large: cut the data values.
    warn!("response data does not fit in a CloudFormation response; shortening it");
    for value in shortened.data.values_mut() {
        value.truncate(value.char_indices().nth(64).map_or(value.len(), |(i, _)| i));
    }
    shortened.reason = note.trim_start().to_owned();
    render(reply, &shortened)
}

fn render(reply: &ReplyTo, answer: &Answer) -> Vec<u8> {
    let mut response = CfnResponse::default();
    response.status = match answer.status {
        Status::Success => CfnStatus::Success,
        Status::Failed => CfnStatus::Failed,
    };
    response.reason = Some(answer.reason.clone());
    response.physical_resource_id = answer.physical_id.clone();
    response.stack_id = reply.stack_id.clone();
    response.request_id = reply.request_id.clone();
    response.logical_resource_id = reply.logical_id.clone();
    response.data = answer
        .data
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect::<HashMap<_, _>>();
    serde_json::to_vec(&response).expect("a response of strings always serializes")
}

/// Why a response could not be delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The URL is not `https` and plain HTTP is not allowed.
    InsecureUrl,
    /// The URL cannot be used for a request.
    InvalidUrl(String),
    /// Every attempt failed; the last failure is kept.
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// What the last attempt ended with.
        last: String,
    },
    /// The endpoint refused the response with a client error, which a retry
    /// would not change (an expired or altered URL).
    Refused {
        /// The HTTP status.
        status: u16,
    },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InsecureUrl => f.write_str(
                "refused to send the response: ResponseURL is not https \
                 (set ALLOW_INSECURE_RESPONSE_URL=true only for local runs)",
            ),
            Self::InvalidUrl(problem) => write!(f, "ResponseURL is not a usable URL: {problem}"),
            Self::GaveUp { attempts, last } => write!(
                f,
                "failed to send the response after {attempts} attempts: {last}"
            ),
            Self::Refused { status } => write!(f, "the response was refused with HTTP {status}"),
        }
    }
}

impl std::error::Error for SendError {}

/// Sends response bodies to presigned URLs.
#[derive(Debug)]
pub struct Responder {
    connector: Connector,
    allow_insecure: bool,
}

impl Responder {
    /// A responder on the same HTTP and TLS stack as the AWS clients.
    /// `allow_insecure` lets it send to plain `http` URLs (local runs only).
    pub fn new(allow_insecure: bool) -> Self {
        let settings = HttpConnectorSettings::builder()
            .connect_timeout(Duration::from_secs(3))
            .read_timeout(ATTEMPT_TIMEOUT)
            .build();
        let connector = Connector::builder()
            .connector_settings(settings)
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build();
        Self {
            connector,
            allow_insecure,
        }
    }

    /// A responder configured from `ALLOW_INSECURE_RESPONSE_URL`.
    pub fn from_env() -> Self {
        let allow = std::env::var("ALLOW_INSECURE_RESPONSE_URL")
            .is_ok_and(|v| v.eq_ignore_ascii_case("true"));
        Self::new(allow)
    }

    /// PUTs `body` to `url`, retrying network errors and 5xx answers with
    /// backoff until it succeeds, `MAX_ATTEMPTS` are spent or `deadline` is near.
    pub async fn send(
        &self,
        url: &ResponseUrl,
        body: Vec<u8>,
        deadline: Instant,
    ) -> Result<(), SendError> {
        let url = url.expose();
        let allowed =
            url.starts_with("https://") || (self.allow_insecure && url.starts_with("http://"));
        if !allowed {
            return Err(SendError::InsecureUrl);
        }

        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = request(url, &body)?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let outcome =
                tokio::time::timeout(remaining.min(ATTEMPT_TIMEOUT), self.connector.call(request))
                    .await;
            let failure = match outcome {
                Ok(Ok(response)) if response.status().is_success() => {
                    info!(
                        attempt,
                        status = response.status().as_u16(),
                        "response delivered"
                    );
                    return Ok(());
                }
                Ok(Ok(response)) if is_final(response.status().as_u16()) => {
                    return Err(SendError::Refused {
                        status: response.status().as_u16(),
                    });
                }
                Ok(Ok(response)) => format!("HTTP {}", response.status().as_u16()),
                Ok(Err(error)) => format!("connection failed: {}", error_kind(&error)),
                Err(_) => "no answer in time".to_owned(),
            };

            let pause = backoff.mul_f64(0.5 + fastrand::f64());
            let out_of_time = Instant::now() + pause + Duration::from_millis(100) >= deadline;
            if attempt >= MAX_ATTEMPTS || out_of_time {
                return Err(SendError::GaveUp {
                    attempts: attempt,
                    last: failure,
                });
            }
            warn!(attempt, %failure, "sending the response failed; trying again");
            tokio::time::sleep(pause).await;
            backoff *= 2;
        }
    }
}

/// Whether an HTTP status means that trying again cannot help.
fn is_final(status: u16) -> bool {
    (400..500).contains(&status) && status != 408 && status != 429
}

fn request(url: &str, body: &[u8]) -> Result<HttpRequest, SendError> {
    let request = http::Request::builder()
        .method("PUT")
        .uri(url)
        .header("content-length", body.len())
        .body(SdkBody::from(body.to_vec()))
        .map_err(|e| SendError::InvalidUrl(e.to_string()))?;
    HttpRequest::try_from(request).map_err(|e| SendError::InvalidUrl(e.to_string()))
}

/// The kind of a connection error, without the URL it may quote.
fn error_kind(error: &aws_smithy_runtime_api::client::result::ConnectorError) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_io() {
        "connection error"
    } else {
        "request error"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn reply() -> ReplyTo {
        ReplyTo {
            response_url: ResponseUrl::new("https://example.com/r"),
            stack_id: "arn:aws:cloudformation:us-east-1:111111111111:stack/s/guid".into(),
            request_id: "r-1".into(),
            logical_id: "Replication".into(),
        }
    }

    fn answer(reason: &str) -> Answer {
        Answer {
            status: Status::Failed,
            reason: reason.into(),
            physical_id: "EcrReplSReplication".into(),
            data: BTreeMap::from([("StatementId".into(), "EcrReplSReplication".into())]),
        }
    }

    fn parsed(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn a_small_answer_is_sent_as_it_is() {
        let doc = parsed(&body(
            &reply(),
            &answer("Destinations[0].Region: is required"),
        ));
        assert_eq!(doc["Status"], "FAILED");
        assert_eq!(doc["Reason"], "Destinations[0].Region: is required");
        assert_eq!(doc["PhysicalResourceId"], "EcrReplSReplication");
        assert_eq!(
            doc["StackId"],
            "arn:aws:cloudformation:us-east-1:111111111111:stack/s/guid"
        );
        assert_eq!(doc["RequestId"], "r-1");
        assert_eq!(doc["LogicalResourceId"], "Replication");
        assert_eq!(doc["Data"]["StatementId"], "EcrReplSReplication");
    }

    #[test]
    fn a_long_reason_is_shortened_to_fit_and_says_so() {
        // Quotes and non-ASCII characters take more bytes than characters.
        for unit in ["x", "\"", "é", "\u{1}"] {
            let reason = unit.repeat(9000);
            let bytes = body(&reply(), &answer(&reason));
            assert!(bytes.len() <= MAX_BODY_BYTES, "{unit}: {}", bytes.len());
            assert!(
                bytes.len() > MAX_BODY_BYTES - 64,
                "{unit}: shortened too much"
            );
            let doc = parsed(&bytes);
            let shown = doc["Reason"].as_str().unwrap();
            assert!(shown.starts_with(unit));
            assert!(shown.ends_with("the function's log has all of it]"));
            assert_eq!(doc["Data"]["StatementId"], "EcrReplSReplication");
        }
    }

    #[test]
    fn oversized_data_is_cut_when_the_reason_alone_cannot_make_room() {
        let mut big = answer("short");
        big.data.insert("Huge".into(), "y".repeat(5000));
        let bytes = body(&reply(), &big);
        assert!(bytes.len() <= MAX_BODY_BYTES);
        assert_eq!(parsed(&bytes)["Data"]["Huge"].as_str().unwrap().len(), 64);
    }
}
