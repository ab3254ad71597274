//! The AWS clients: one HTTP and TLS stack shared by every client, the
//! source account's clients, and clients that act in a destination account
//! through a role assumed once per destination and event.
//!
//! Also how an AWS error is summarised for a CloudFormation Reason: its code
//! and message, which is what a user needs to act.

use crate::{properties::RoleToAssume, secrets};
use aws_config::{
    BehaviorVersion, ConfigLoader, Region, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig,
};
use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};
use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::{
    Builder,
    tls::{Provider, rustls_provider::CryptoMode},
};
use aws_smithy_runtime_api::client::{
    http::SharedHttpClient,
    interceptors::{Intercept, SharedInterceptor},
};
use aws_smithy_types::error::display::DisplayErrorContext;
use std::{error::Error, fmt, time::Duration};

/// How many times the SDK tries a call that failed with throttling, a 5xx or
/// a network error.
const MAX_ATTEMPTS: u32 = 5;

/// How long one attempt of an AWS call may take before it is retried.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Credentials from an assumed role last this long: the shortest STS allows,
/// far longer than one event.
const ASSUMED_ROLE_SECONDS: i32 = 900;

/// The clients of the source account and the means to reach destinations.
#[derive(Clone, Debug)]
pub struct Aws {
    config: SdkConfig,
    source_ecr: aws_sdk_ecr::Client,
    sts: aws_sdk_sts::Client,
    ecr_interceptors: Vec<SharedInterceptor>,
}

impl Aws {
    /// Loads the configuration from the environment (region, credentials,
    /// `AWS_ENDPOINT_URL`) and builds the source account's clients.
    pub async fn from_env() -> Self {
        Self::load(aws_config::defaults(BehaviorVersion::latest())).await
    }

    /// Completes `loader` with this crate's HTTP client, retries and
    /// timeouts, loads it and builds the source account's clients.
    pub async fn load(loader: ConfigLoader) -> Self {
        let config = loader
            .http_client(
                Builder::new()
                    .tls_provider(Provider::Rustls(CryptoMode::Ring))
                    .build_https(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            )
            .load()
            .await;
        Self::from_config(config)
    }

    /// Builds the clients from an existing configuration.
    pub fn from_config(config: SdkConfig) -> Self {
        Self {
            source_ecr: aws_sdk_ecr::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
            config,
            ecr_interceptors: Vec::new(),
        }
    }

    /// Adds `interceptor` to every ECR client, the source account's and
    /// those acting in destinations (to observe or stub calls).
    pub fn with_ecr_interceptor(mut self, interceptor: impl Intercept + 'static) -> Self {
        self.ecr_interceptors
            .push(SharedInterceptor::new(interceptor));
        self.source_ecr = self.ecr_client(aws_sdk_ecr::config::Builder::from(&self.config));
        self
    }

    fn ecr_client(&self, mut builder: aws_sdk_ecr::config::Builder) -> aws_sdk_ecr::Client {
        for interceptor in &self.ecr_interceptors {
            builder.push_interceptor(interceptor.clone());
        }
        aws_sdk_ecr::Client::from_conf(builder.build())
    }

    /// The region the function runs in, which is the source registry's region.
    pub fn region(&self) -> Option<&str> {
        self.config.region().map(Region::as_ref)
    }

    /// The ECR client of the source account.
    pub fn source_ecr(&self) -> &aws_sdk_ecr::Client {
        &self.source_ecr
    }

    /// An ECR client of the source account in another region.
    pub fn source_ecr_in(&self, region: &str) -> aws_sdk_ecr::Client {
        self.ecr_client(
            aws_sdk_ecr::config::Builder::from(&self.config).region(Region::new(region.to_owned())),
        )
    }

    /// Assumes `role` and returns an ECR client acting with it in `region`.
    pub async fn ecr_as(
        &self,
        role: &RoleToAssume,
        region: &str,
        session_name: &str,
    ) -> Result<aws_sdk_ecr::Client, AwsError> {
        let output = self
            .sts
            .assume_role()
            .role_arn(&role.arn)
            .role_session_name(session_name)
            .set_external_id(role.external_id.clone())
            .duration_seconds(ASSUMED_ROLE_SECONDS)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(&e))?;
        let Some(issued) = output.credentials else {
            return Err(AwsError::new(None, "STS answered without credentials"));
        };

        secrets::register(issued.access_key_id());
        secrets::register(issued.secret_access_key());
        secrets::register(issued.session_token());
        let credentials = Credentials::new(
            issued.access_key_id(),
            issued.secret_access_key(),
            Some(issued.session_token().to_owned()),
            None,
            "AssumeRole",
        );
        Ok(self.ecr_client(
            aws_sdk_ecr::config::Builder::from(&self.config)
                .credentials_provider(SharedCredentialsProvider::new(credentials))
                .region(Region::new(region.to_owned())),
        ))
    }
}

/// The HTTP client of every AWS client: hyper with rustls on ring, the same
/// stack the response to CloudFormation goes out on.
pub fn http_client() -> SharedHttpClient {
    Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// A failed AWS call, summarised as its error code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    /// The AWS error code, such as `AccessDenied`; `None` when the call never
    /// got an answer (timeout, connection refused).
    pub code: Option<String>,
    /// The message that goes with it.
    pub message: String,
}

impl AwsError {
    /// An error with the given code and message.
    pub fn new(code: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            code: code.map(str::to_owned),
            message: message.into(),
        }
    }

    /// Summarises an SDK error: the service's code and message when it
    /// answered, otherwise what kept the call from being answered.
    pub fn from_sdk<E, R>(error: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + Error + 'static,
        R: fmt::Debug + 'static,
    {
        match error {
            SdkError::ServiceError(service) => Self {
                code: service.err().code().map(str::to_owned),
                message: service
                    .err()
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| DisplayErrorContext(service.err()).to_string()),
            },
            other => Self {
                code: None,
                message: chain(other),
            },
        }
    }

    /// Whether the error has the given AWS error code.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// An error and its sources, each once, joined as `outer: inner: root`.
fn chain(error: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        let text = current.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        next = current.source();
    }
    parts.join(": ")
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl Error for AwsError {}
