//! One invocation, from the event Lambda delivers to the response
//! CloudFormation reads.
//!
//! Whatever happens in between, CloudFormation gets exactly one answer, and
//! gets it before the function's deadline: the lifecycle runs in its own task
//! so that a panic becomes a FAILED answer, and under a time limit that keeps
//! a few seconds in reserve so that a hung call becomes a FAILED answer too,
//! rather than an hour of waiting.

use crate::{
    destination::Settle,
    event::{self, MalformedEvent, ReplyTo, Request, RequestKind},
    identity::ResourceIdentity,
    lifecycle::{self, Progress, Services, Success, failpoint},
    response::{self, Answer, Responder, SendError, Status},
    secrets,
};
use futures_util::FutureExt;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use std::{
    any::Any,
    collections::BTreeMap,
    fmt,
    future::Future,
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::time::Instant;
use tracing::{Instrument, error, info, info_span, warn};

/// The most time kept back from the lifecycle to send the response.
const MAX_RESERVE: Duration = Duration::from_secs(10);

/// The time kept back from sending the response, so that the invocation
/// itself ends before Lambda's deadline.
const SEND_MARGIN: Duration = Duration::from_millis(500);

/// Used when the runtime gives no deadline.
const DEFAULT_BUDGET: Duration = Duration::from_secs(120);

/// The custom resource handler.
#[derive(Debug)]
pub struct Handler {
    services: Arc<Services>,
    responder: Responder,
}

/// An invocation that could not be answered.
#[derive(Debug)]
#[non_exhaustive]
pub enum HandlerError {
    /// The event names no ResponseURL, so there is nobody to answer.
    Unanswerable(Box<MalformedEvent>),
    /// The response could not be delivered.
    Send(SendError),
    /// The handler panicked after its answer had gone out.
    Panicked(String),
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unanswerable(malformed) => {
                write!(
                    f,
                    "cannot answer an event without a ResponseURL: {malformed}"
                )
            }
            Self::Send(error) => write!(f, "{error}"),
            Self::Panicked(message) => write!(f, "the handler panicked after answering: {message}"),
        }
    }
}

impl std::error::Error for HandlerError {}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match error {
            HandlerError::Unanswerable(_) => "UnanswerableEvent",
            HandlerError::Send(_) => "ResponseNotDelivered",
            HandlerError::Panicked(_) => "PanicAfterAnswer",
        };
        Self {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// How a guarded piece of work ended.
#[derive(Debug)]
pub enum Outcome<T, E> {
    /// It finished, well or not.
    Finished(Result<T, E>),
    /// It panicked; the panic's message.
    Panicked(String),
    /// It ran out of time.
    TimedOut,
}

impl Handler {
    /// A handler over the given services and responder.
    pub fn new(services: Services, responder: Responder) -> Self {
        Self {
            services: Arc::new(services),
            responder,
        }
    }

    /// A handler configured from the environment, as in Lambda.
    pub async fn from_env() -> Self {
        let services = Services {
            aws: crate::aws::Aws::from_env().await,
            settle: Settle::default(),
        };
        Self::new(services, Responder::from_env())
    }

    /// Handles one invocation: carries out the request and answers CloudFormation.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
        let (payload, context) = event.into_parts();
        let deadline = deadline_of(&context);
        let request = match event::parse(payload) {
            Ok(request) => request,
            Err(malformed) => return self.answer_malformed(malformed, &context, deadline).await,
        };
        secrets::register(request.reply.response_url.expose());

        let span = info_span!(
            "event",
            aws_request_id = %context.request_id,
            request_type = request.kind_name(),
            logical_id = %request.reply.logical_id,
            physical_id = request.physical_id().unwrap_or_default(),
        );
        // Anything that panics outside the guarded lifecycle (building the
        // answer, say) still gets CloudFormation a FAILED answer.
        let answered = AtomicBool::new(false);
        let handled =
            AssertUnwindSafe(self.handle_request(&request, &context, deadline, &answered))
                .catch_unwind()
                .instrument(span.clone())
                .await;
        match handled {
            Ok(result) => result,
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                let _entered = span.enter();
                error!(%message, "the handler panicked");
                if answered.load(Ordering::SeqCst) {
                    return Err(HandlerError::Panicked(message));
                }
                let answer = Answer {
                    status: Status::Failed,
                    reason: with_log_hint(
                        format!("the handler failed unexpectedly: {message}"),
                        &context,
                    ),
                    // The real id even for a Create: the Delete that follows
                    // then removes whatever may have been written.
                    physical_id: request.physical_id().map_or_else(
                        || {
                            ResourceIdentity::new(
                                &request.reply.stack_id,
                                &request.reply.logical_id,
                            )
                            .physical_id
                        },
                        str::to_owned,
                    ),
                    data: BTreeMap::new(),
                };
                self.send(&request.reply, answer, deadline, &answered).await
            }
        }
    }

    async fn handle_request(
        &self,
        request: &Request,
        context: &Context,
        deadline: Instant,
        answered: &AtomicBool,
    ) -> Result<Value, HandlerError> {
        info!("request received");
        let partition = partition_of(&context.invoked_function_arn, self.services.aws.region());
        let progress = Progress::default();

        let work = {
            let services = Arc::clone(&self.services);
            let request = request.clone();
            let progress = progress.clone();
            // Boxed: the lifecycle's future is deep, and its own task anyway.
            Box::pin(
                async move { lifecycle::run(&services, &request, &partition, &progress).await },
            )
        };
        let outcome = guarded(work, work_deadline(deadline)).await;
        failpoint("answering");
        let answer = answer_for(request, outcome, &progress, context);
        self.send(&request.reply, answer, deadline, answered).await
    }

    async fn answer_malformed(
        &self,
        malformed: Box<MalformedEvent>,
        context: &Context,
        deadline: Instant,
    ) -> Result<Value, HandlerError> {
        let Some(reply) = malformed.reply.clone() else {
            error!(problem = %malformed.problem, "cannot answer: the event names no ResponseURL");
            return Err(HandlerError::Unanswerable(malformed));
        };
        secrets::register(reply.response_url.expose());
        warn!(problem = %malformed.problem, "malformed event");
        let physical_id = malformed.physical_id.clone().unwrap_or_else(|| {
            ResourceIdentity::new(&reply.stack_id, &reply.logical_id).unwritten_physical_id()
        });
        let answer = Answer {
            status: Status::Failed,
            reason: with_log_hint(malformed.to_string(), context),
            physical_id,
            data: BTreeMap::new(),
        };
        self.send(&reply, answer, deadline, &AtomicBool::new(false))
            .await
    }

    async fn send(
        &self,
        reply: &ReplyTo,
        answer: Answer,
        deadline: Instant,
        answered: &AtomicBool,
    ) -> Result<Value, HandlerError> {
        match answer.status {
            Status::Success => {
                info!(reason = %answer.reason, physical_id = %answer.physical_id, "answering SUCCESS")
            }
            Status::Failed => {
                warn!(reason = %answer.reason, physical_id = %answer.physical_id, "answering FAILED")
            }
        }
        let body = response::body(reply, &answer);
        answered.store(true, Ordering::SeqCst);
        let send_deadline = deadline.checked_sub(SEND_MARGIN).unwrap_or(deadline);
        self.responder
            .send(&reply.response_url, body, send_deadline)
            .await
            .map_err(|e| {
                error!(error = %e, "the response could not be delivered");
                HandlerError::Send(e)
            })?;
        Ok(json!({
            "Status": match answer.status { Status::Success => "SUCCESS", Status::Failed => "FAILED" },
            "PhysicalResourceId": answer.physical_id,
        }))
    }
}

/// Runs `work` in its own task until `deadline`: a panic or a timeout is
/// reported rather than propagated, and a timed-out task is stopped.
pub async fn guarded<T, E>(
    work: impl Future<Output = Result<T, E>> + Send + 'static,
    deadline: Instant,
) -> Outcome<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    let mut task = tokio::spawn(work.in_current_span());
    match tokio::time::timeout_at(deadline, &mut task).await {
        Ok(Ok(result)) => Outcome::Finished(result),
        Ok(Err(join_error)) => match join_error.try_into_panic() {
            Ok(panic) => Outcome::Panicked(panic_message(panic.as_ref())),
            Err(_) => Outcome::Panicked("the task was cancelled".into()),
        },
        Err(_) => {
            task.abort();
            Outcome::TimedOut
        }
    }
}

/// The answer for how the lifecycle ended.
fn answer_for(
    request: &Request,
    outcome: Outcome<Success, lifecycle::LifecycleError>,
    progress: &Progress,
    context: &Context,
) -> Answer {
    let reason = match outcome {
        Outcome::Finished(Ok(success)) => {
            return Answer {
                status: Status::Success,
                reason: success.summary,
                physical_id: success.physical_id,
                data: success.data,
            };
        }
        Outcome::Finished(Err(error)) => error.to_string(),
        Outcome::Panicked(message) => format!(
            "the handler failed unexpectedly while {}: {message}",
            step_or_starting(progress)
        ),
        Outcome::TimedOut => format!(
            "timed out while {} (an AWS endpoint did not answer in time); \
             what was written is undone by the Delete or rollback that follows",
            step_or_starting(progress)
        ),
    };
    Answer {
        status: Status::Failed,
        reason: with_log_hint(reason, context),
        physical_id: failed_physical_id(request, progress),
        data: BTreeMap::new(),
    }
}

/// The physical id of a FAILED answer. Update and Delete keep theirs. A
/// Create that wrote something answers the resource's real id, so that the
/// Delete CloudFormation sends next removes what it wrote; one that wrote
/// nothing answers an id that makes that Delete a no-op.
fn failed_physical_id(request: &Request, progress: &Progress) -> String {
    match &request.kind {
        RequestKind::Update { physical_id, .. } | RequestKind::Delete { physical_id } => {
            physical_id.clone()
        }
        RequestKind::Create => {
            let identity =
                ResourceIdentity::new(&request.reply.stack_id, &request.reply.logical_id);
            if progress.wrote() {
                identity.physical_id
            } else {
                identity.unwritten_physical_id()
            }
        }
    }
}

fn step_or_starting(progress: &Progress) -> String {
    let step = progress.current_step();
    if step.is_empty() {
        "starting".into()
    } else {
        step
    }
}

/// Adds where the full story is to a FAILED reason.
fn with_log_hint(reason: String, context: &Context) -> String {
    let stream = &context.env_config.log_stream;
    if stream.is_empty() {
        reason
    } else {
        format!("{reason} (log stream {stream})")
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic without a message".into())
}

/// Deadlines before this (September 2001, in epoch milliseconds) are not
/// real ones: some local runtimes send a duration in this header.
const EARLIEST_PLAUSIBLE_DEADLINE_MS: u64 = 1_000_000_000_000;

/// The invocation's deadline on the tokio clock; [`DEFAULT_BUDGET`] from now
/// when the runtime gave none that can be true.
fn deadline_of(context: &Context) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    if context.deadline < EARLIEST_PLAUSIBLE_DEADLINE_MS {
        warn!(
            deadline_ms = context.deadline,
            "the runtime gave no usable deadline; assuming {} s",
            DEFAULT_BUDGET.as_secs()
        );
        return Instant::now() + DEFAULT_BUDGET;
    }
    Instant::now() + Duration::from_millis(context.deadline.saturating_sub(now_ms))
}

/// When the lifecycle must stop, leaving time to answer: a quarter of the
/// time left, at most [`MAX_RESERVE`].
fn work_deadline(deadline: Instant) -> Instant {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let reserve = (remaining / 4).min(MAX_RESERVE);
    deadline.checked_sub(reserve).unwrap_or(deadline)
}

/// The partition from the function's ARN, or else from its region's name.
fn partition_of(function_arn: &str, region: Option<&str>) -> String {
    let mut parts = function_arn.split(':');
    if let (Some("arn"), Some(partition)) = (parts.next(), parts.next())
        && !partition.is_empty()
    {
        return partition.to_owned();
    }
    let region = region.unwrap_or_default();
    let partition = [
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-iso-", "aws-iso"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-isof-", "aws-iso-f"),
        ("eusc-", "aws-eusc"),
    ]
    .iter()
    .find(|(prefix, _)| region.starts_with(prefix))
    .map_or("aws", |(_, partition)| partition);
    partition.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_reported_not_propagated() {
        let outcome: Outcome<(), ()> = guarded(
            async { panic!("boom at step three") },
            Instant::now() + Duration::from_secs(5),
        )
        .await;
        assert!(matches!(outcome, Outcome::Panicked(ref m) if m == "boom at step three"));
    }

    #[tokio::test]
    async fn work_that_outlives_its_deadline_is_stopped() {
        let started = Instant::now();
        let outcome: Outcome<(), ()> = guarded(
            async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            },
            Instant::now() + Duration::from_millis(50),
        )
        .await;
        assert!(matches!(outcome, Outcome::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_work_deadline_keeps_a_reserve_for_the_answer() {
        let now = Instant::now();
        let long = work_deadline(now + Duration::from_secs(120));
        assert!(long <= now + Duration::from_secs(110));
        let short = work_deadline(now + Duration::from_secs(8));
        assert!(short <= now + Duration::from_millis(6100));
        assert!(short >= now + Duration::from_millis(5900));
    }

    #[test]
    fn the_partition_comes_from_the_function_arn_or_the_region() {
        assert_eq!(
            partition_of("arn:aws-cn:lambda:cn-north-1:111111111111:function:f", None),
            "aws-cn"
        );
        assert_eq!(partition_of("", Some("us-gov-west-1")), "aws-us-gov");
        assert_eq!(partition_of("", Some("eu-west-1")), "aws");
    }
}
