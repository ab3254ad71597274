//! A destination registry's policy, reached through the role assumed in the
//! destination account, and the write that survives concurrent writers.
//!
//! ECR has no conditional write: two stacks that read the same policy and
//! each write back their own statement lose one of them. So after writing,
//! this module waits a short, jittered moment, reads the policy again and
//! writes once more if this resource's statement was lost (or came back after
//! a removal), for a bounded number of rounds. Every writer that follows the
//! same rule ends with its own statement in place.

use crate::{
    aws::{Aws, AwsError},
    policy::{PolicyError, PolicyUpdate},
    properties::RoleToAssume,
    templates::TemplateConflict,
};
use std::{fmt, time::Duration};
use tracing::{debug, warn};

/// How the read-back after a write is paced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settle {
    /// The shortest pause between a write and its read-back.
    pub min_pause: Duration,
    /// The longest pause; each pause is drawn at random in between, so that
    /// concurrent writers do not keep colliding.
    pub max_pause: Duration,
    /// How many writes are attempted before giving up.
    pub max_rounds: u32,
}

impl Default for Settle {
    /// Pauses long enough for a concurrent writer's read-modify-write to land.
    fn default() -> Self {
        Self {
            min_pause: Duration::from_millis(200),
            max_pause: Duration::from_millis(600),
            max_rounds: 8,
        }
    }
}

impl Settle {
    fn pause(&self) -> Duration {
        let spread = self.max_pause.saturating_sub(self.min_pause);
        self.min_pause + spread.mul_f64(fastrand::f64())
    }
}

/// What went wrong in one destination registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationProblem {
    /// The role could not be assumed.
    AssumeRole {
        /// The role's ARN.
        role_arn: String,
        /// What STS answered.
        error: AwsError,
    },
    /// The policy could not be read.
    Read(AwsError),
    /// The policy could not be written or deleted.
    Write(AwsError),
    /// The policy cannot be merged or would be too long.
    Policy(PolicyError),
    /// Concurrent writers kept overwriting the change.
    Unsettled {
        /// How many writes were made.
        rounds: u32,
    },
    /// The repository creation templates could not be read.
    ReadTemplates(AwsError),
    /// A repository creation template could not be written or deleted.
    WriteTemplates(AwsError),
    /// A template of another owner holds a prefix this resource needs.
    TemplateConflict(TemplateConflict),
}

impl fmt::Display for DestinationProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AssumeRole { role_arn, error } => {
                write!(f, "could not assume role {role_arn}: {error}")
            }
            Self::Read(error) => write!(f, "failed to read the registry policy: {error}"),
            Self::Write(error) => write!(f, "failed to write the registry policy: {error}"),
            Self::Policy(error) => write!(f, "{error}"),
            Self::ReadTemplates(error) => {
                write!(
                    f,
                    "failed to read the repository creation templates: {error}"
                )
            }
            Self::WriteTemplates(error) => {
                write!(f, "failed to write a repository creation template: {error}")
            }
            Self::TemplateConflict(conflict) => write!(f, "{conflict}"),
            Self::Unsettled { rounds } => write!(
                f,
                "concurrent writers kept overwriting the registry policy; gave up after {rounds} \
                 writes (run the stack operation again)"
            ),
        }
    }
}

impl From<PolicyError> for DestinationProblem {
    fn from(error: PolicyError) -> Self {
        Self::Policy(error)
    }
}

/// A destination registry, with a client acting in its account.
#[derive(Clone, Debug)]
pub struct DestinationRegistry {
    ecr: aws_sdk_ecr::Client,
}

impl DestinationRegistry {
    /// A registry reached with `ecr` as it is.
    pub fn new(ecr: aws_sdk_ecr::Client) -> Self {
        Self { ecr }
    }

    /// The client acting in the registry.
    pub fn ecr(&self) -> &aws_sdk_ecr::Client {
        &self.ecr
    }

    /// Assumes `role` and opens the registry in `region` with it.
    pub async fn open(
        aws: &Aws,
        role: &RoleToAssume,
        region: &str,
        session_name: &str,
    ) -> Result<Self, DestinationProblem> {
        let ecr = aws
            .ecr_as(role, region, session_name)
            .await
            .map_err(|error| DestinationProblem::AssumeRole {
                role_arn: role.arn.clone(),
                error,
            })?;
        Ok(Self { ecr })
    }

    /// The registry policy's text; `None` when the registry has none.
    pub async fn read_policy(&self) -> Result<Option<String>, DestinationProblem> {
        match self.ecr.get_registry_policy().send().await {
            Ok(output) => Ok(output.policy_text),
            Err(e) => {
                let error = AwsError::from_sdk(&e);
                if no_policy(&error) {
                    Ok(None)
                } else {
                    Err(DestinationProblem::Read(error))
                }
            }
        }
    }

    /// Writes or deletes the registry policy as `update` says.
    pub async fn apply(&self, update: &PolicyUpdate) -> Result<(), DestinationProblem> {
        let result = match update {
            PolicyUpdate::Unchanged => return Ok(()),
            PolicyUpdate::Put(text) => self
                .ecr
                .put_registry_policy()
                .policy_text(text)
                .send()
                .await
                .map(drop)
                .map_err(|e| AwsError::from_sdk(&e)),
            PolicyUpdate::Delete => match self.ecr.delete_registry_policy().send().await {
                Ok(_) => Ok(()),
                Err(e) => Err(AwsError::from_sdk(&e)).or_else(|error| {
                    // Someone else deleted it first: the outcome is the same.
                    if no_policy(&error) {
                        Ok(())
                    } else {
                        Err(error)
                    }
                }),
            },
        };
        result.map_err(DestinationProblem::Write)
    }

    /// Applies `update`, then reads the policy back until `settled` holds,
    /// deciding again with `decide` after each loss. Returns how many writes
    /// it took (zero when `update` is `Unchanged`).
    pub async fn converge(
        &self,
        mut update: PolicyUpdate,
        settle: &Settle,
        decide: impl Fn(Option<&str>) -> Result<PolicyUpdate, PolicyError>,
        settled: impl Fn(Option<&str>) -> bool,
    ) -> Result<u32, DestinationProblem> {
        let mut rounds = 0;
        loop {
            if update == PolicyUpdate::Unchanged {
                return Ok(rounds);
            }
            rounds += 1;
            self.apply(&update).await?;

            tokio::time::sleep(settle.pause()).await;
            let current = self.read_policy().await?;
            if settled(current.as_deref()) {
                debug!(rounds, "registry policy settled");
                return Ok(rounds);
            }
            if rounds >= settle.max_rounds {
                return Err(DestinationProblem::Unsettled { rounds });
            }
            warn!(
                rounds,
                "a concurrent writer overwrote the registry policy; writing again"
            );
            update = decide(current.as_deref())?;
        }
    }
}

/// Whether an error says that the registry has no policy.
fn no_policy(error: &AwsError) -> bool {
    error.is("RegistryPolicyNotFoundException")
}
