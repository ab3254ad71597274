//! The resource's life: what Create, Update and Delete do, and in which order.
//!
//! Every event first reads what it will change (the source configuration,
//! then each destination's policy through its role), decides the new state,
//! and checks it against ECR's limits; only then does it write. Permissions
//! come before replication, so that the first replicated push is allowed,
//! and on the way out replication goes before permissions.

use crate::{
    aws::{Aws, AwsError},
    destination::{DestinationProblem, DestinationRegistry, Settle},
    event::{Request, RequestKind},
    identity::ResourceIdentity,
    policy::{self, Grant, PolicyUpdate},
    properties::{Destination, InvalidProperties, ReplicationSpec, SourceRegistry},
    replication::{self, LimitError, Rule, RuleChange},
    source::{self, SourceState},
};
use futures_util::future::join_all;
use serde_json::Value;
use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, Mutex, PoisonError},
};
use tracing::{info, warn};

/// What the lifecycle needs from the outside world.
#[derive(Clone, Debug)]
pub struct Services {
    /// The AWS clients.
    pub aws: Aws,
    /// How policy writes are checked against concurrent writers.
    pub settle: Settle,
}

/// What an event achieved, for a SUCCESS response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Success {
    /// The physical id to answer.
    pub physical_id: String,
    /// The values `Fn::GetAtt` reads.
    pub data: BTreeMap<String, String>,
    /// What was done, in a sentence.
    pub summary: String,
}

/// Why an event failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LifecycleError {
    /// The properties are invalid; nothing was written.
    Invalid(InvalidProperties),
    /// The function does not know its region.
    NoRegion,
    /// The source replication configuration could not be read.
    ReadSource(AwsError),
    /// The source replication configuration could not be written.
    WriteSource(AwsError),
    /// The source replication configuration would exceed ECR's limits.
    SourceLimits(LimitError),
    /// One or more destination registries failed.
    Destinations(Vec<DestinationError>),
}

/// A failure in one destination registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationError {
    /// Which destination, as the user declared it: `Destinations[1] (222222222222/eu-west-1)`.
    pub label: String,
    /// What went wrong.
    pub problem: DestinationProblem,
}

impl fmt::Display for LifecycleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(invalid) => write!(f, "{invalid}"),
            Self::NoRegion => f.write_str("the function has no region configured (AWS_REGION)"),
            Self::ReadSource(error) => write!(
                f,
                "failed to read the source registry's replication configuration: {error}"
            ),
            Self::WriteSource(error) => write!(
                f,
                "failed to write the source registry's replication configuration: {error}"
            ),
            Self::SourceLimits(error) => write!(f, "{error}; nothing was written"),
            Self::Destinations(errors) => {
                for (i, error) in errors.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{}: {}", error.label, error.problem)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LifecycleError {}

/// Where an event is, so that a timeout or a panic can say what was pending
/// and whether anything may have been written.
#[derive(Clone, Debug, Default)]
pub struct Progress(Arc<Mutex<ProgressState>>);

#[derive(Clone, Debug, Default)]
struct ProgressState {
    step: String,
    wrote: bool,
}

impl Progress {
    /// Records the step now under way.
    pub fn step(&self, step: impl Into<String>) {
        let step = step.into();
        self.lock().step.clone_from(&step);
        failpoint(&step);
    }

    /// Records that a write is about to start.
    pub fn writing(&self, step: impl Into<String>) {
        let step = step.into();
        {
            let mut state = self.lock();
            state.step.clone_from(&step);
            state.wrote = true;
        }
        failpoint(&step);
    }

    /// The step under way.
    pub fn current_step(&self) -> String {
        self.lock().step.clone()
    }

    /// Whether any write has started.
    pub fn wrote(&self) -> bool {
        self.lock().wrote
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProgressState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// In debug builds, panics when `step` starts with the value of
/// `ECR_REPLICATION_PANIC_AT`, so that tests can prove a panic at any step
/// still answers CloudFormation. Release builds have no such hook.
pub fn failpoint(step: &str) {
    #[cfg(debug_assertions)]
    if let Ok(target) = std::env::var("ECR_REPLICATION_PANIC_AT")
        && !target.is_empty()
        && step.starts_with(&target)
    {
        panic!("injected panic at {step:?} (ECR_REPLICATION_PANIC_AT)");
    }
    #[cfg(not(debug_assertions))]
    let _ = step;
}

/// Carries out one request and says what it achieved.
pub async fn run(
    services: &Services,
    request: &Request,
    partition: &str,
    progress: &Progress,
) -> Result<Success, LifecycleError> {
    let identity = ResourceIdentity::new(&request.reply.stack_id, &request.reply.logical_id);
    let event = Event {
        services,
        identity,
        session_name: session_name(&request.reply.logical_id),
        progress,
    };

    if let RequestKind::Delete { physical_id } = &request.kind
        && !event.identity.issued(physical_id)
    {
        info!(
            physical_id,
            "nothing to delete: this physical id was not issued for a created resource"
        );
        return Ok(Success {
            physical_id: physical_id.clone(),
            data: BTreeMap::new(),
            summary: "nothing to delete: the resource was never created".into(),
        });
    }

    progress.step("reading the source registry's replication configuration");
    let region = services.aws.region().ok_or(LifecycleError::NoRegion)?;
    let state = source::read(services.aws.source_ecr())
        .await
        .map_err(LifecycleError::ReadSource)?;
    let source = SourceRegistry {
        account_id: state.registry_id.clone(),
        region: region.to_owned(),
        partition: partition.to_owned(),
    };
    info!(
        source_registry = %state.registry_id,
        region,
        rules = state.rules.len(),
        "read the source replication configuration"
    );

    match &request.kind {
        RequestKind::Create => event.create(&request.properties, &source, state).await,
        RequestKind::Update {
            physical_id,
            old_properties,
        } => {
            event
                .update(
                    &request.properties,
                    old_properties,
                    physical_id,
                    &source,
                    state,
                )
                .await
        }
        RequestKind::Delete { physical_id } => {
            event
                .delete(&request.properties, physical_id, &source, state)
                .await
        }
    }
}

/// One event's context.
struct Event<'a> {
    services: &'a Services,
    identity: ResourceIdentity,
    session_name: String,
    progress: &'a Progress,
}

/// A grant read and decided, ready to be written.
struct PlannedGrant {
    label: String,
    registry: DestinationRegistry,
    statement: Value,
    update: PolicyUpdate,
}

impl Event<'_> {
    async fn create(
        &self,
        properties: &Value,
        source: &SourceRegistry,
        state: SourceState,
    ) -> Result<Success, LifecycleError> {
        let spec = ReplicationSpec::parse(properties, source).map_err(LifecycleError::Invalid)?;
        let (rules, change) = replication::add(&state.rules, &Rule::from_spec(&spec));
        if change.writes() {
            replication::check_limits(&rules).map_err(LifecycleError::SourceLimits)?;
        }

        let grants = self.plan_grants(&spec, source).await?;
        let granted = self.apply_grants(grants).await?;
        self.write_rules(&rules, change, source).await?;

        Ok(self.success(
            self.identity.physical_id.clone(),
            source,
            format!("{}; {granted}", describe(change)),
        ))
    }

    async fn update(
        &self,
        properties: &Value,
        old_properties: &Value,
        physical_id: &str,
        source: &SourceRegistry,
        state: SourceState,
    ) -> Result<Success, LifecycleError> {
        let spec = ReplicationSpec::parse(properties, source).map_err(LifecycleError::Invalid)?;
        // Invalid old properties come with the rollback of an update that was
        // refused for them: there is nothing of theirs to replace or revoke,
        // and failing here would leave the stack in UPDATE_ROLLBACK_FAILED.
        let old = match ReplicationSpec::parse(old_properties, source) {
            Ok(old) => Some(old),
            Err(invalid) => {
                warn!(%invalid, "old properties are invalid; treating them as nothing to replace");
                None
            }
        };

        let old_rule = old.as_ref().map(Rule::from_spec);
        let (rules, change) =
            replication::replace(&state.rules, old_rule.as_ref(), &Rule::from_spec(&spec));
        if change.writes() {
            replication::check_limits(&rules).map_err(LifecycleError::SourceLimits)?;
        }

        let grants = self.plan_grants(&spec, source).await?;
        let granted = self.apply_grants(grants).await?;
        self.write_rules(&rules, change, source).await?;

        let dropped: Vec<(String, Destination)> = old
            .iter()
            .flat_map(|old| old.cross_account_destinations())
            .filter(|d| {
                !spec
                    .destinations
                    .iter()
                    .any(|n| n.account_id == d.account_id && n.region == d.region)
            })
            .map(|d| (format!("{} (no longer listed)", d.label()), d.clone()))
            .collect();
        let revoked = self.revoke(dropped).await?;

        Ok(self.success(
            physical_id.to_owned(),
            source,
            format!("{}; {granted}; {revoked}", describe(change)),
        ))
    }

    async fn delete(
        &self,
        properties: &Value,
        physical_id: &str,
        source: &SourceRegistry,
        state: SourceState,
    ) -> Result<Success, LifecycleError> {
        let spec = match ReplicationSpec::parse(properties, source) {
            Ok(spec) => spec,
            Err(invalid) => {
                warn!(
                    %invalid,
                    statement_id = %self.identity.statement_id,
                    "properties are invalid; nothing can be identified to remove"
                );
                return Ok(self.success(
                    physical_id.to_owned(),
                    source,
                    format!("nothing removed: {invalid}"),
                ));
            }
        };

        let (rules, change) = replication::remove(&state.rules, &Rule::from_spec(&spec));
        self.write_rules(&rules, change, source).await?;

        let destinations: Vec<(String, Destination)> = spec
            .destinations
            .iter()
            .enumerate()
            .filter(|(_, d)| d.is_cross_account())
            .map(|(i, d)| (format!("Destinations[{i}] ({})", d.label()), d.clone()))
            .collect();
        let revoked = self.revoke(destinations).await?;

        Ok(self.success(
            physical_id.to_owned(),
            source,
            format!("{}; {revoked}", describe(change)),
        ))
    }

    /// Assumes each cross-account destination's role, reads its policy and
    /// decides the new one, concurrently; fails before any write if one fails.
    async fn plan_grants(
        &self,
        spec: &ReplicationSpec,
        source: &SourceRegistry,
    ) -> Result<Vec<PlannedGrant>, LifecycleError> {
        let planned = spec
            .destinations
            .iter()
            .enumerate()
            .filter(|(_, d)| d.is_cross_account())
            .map(|(index, destination)| async move {
                let label = format!("Destinations[{index}] ({})", destination.label());
                let plan = async {
                    let role = destination
                        .role
                        .as_ref()
                        .expect("cross-account destinations have a role");
                    let registry = DestinationRegistry::open(
                        &self.services.aws,
                        role,
                        &destination.region,
                        &self.session_name,
                    )
                    .await?;
                    let current = registry.read_policy().await?;
                    let statement = policy::statement(&Grant {
                        statement_id: &self.identity.statement_id,
                        partition: &source.partition,
                        source_account: &source.account_id,
                        destination_account: &destination.account_id,
                        region: &destination.region,
                        prefixes: &spec.prefixes,
                        allow_create_repository: spec.allow_create_repository,
                    });
                    let update = policy::with_statement(current.as_deref(), &statement)?;
                    Ok::<_, DestinationProblem>((registry, statement, update))
                };
                match plan.await {
                    Ok((registry, statement, update)) => Ok(PlannedGrant {
                        label,
                        registry,
                        statement,
                        update,
                    }),
                    Err(problem) => Err(DestinationError { label, problem }),
                }
            });
        self.progress.step("reading destination registry policies");
        let (plans, errors): (Vec<_>, Vec<_>) =
            join_all(planned).await.into_iter().partition(Result::is_ok);
        if !errors.is_empty() {
            return Err(LifecycleError::Destinations(
                errors.into_iter().filter_map(Result::err).collect(),
            ));
        }
        Ok(plans.into_iter().filter_map(Result::ok).collect())
    }

    /// Writes the planned grants concurrently and checks that they hold.
    async fn apply_grants(&self, grants: Vec<PlannedGrant>) -> Result<String, LifecycleError> {
        let total = grants.len();
        if grants.iter().any(|g| g.update != PolicyUpdate::Unchanged) {
            self.progress
                .writing("writing destination registry policies");
        }
        let applied = grants.into_iter().map(|grant| async move {
            let statement = &grant.statement;
            let result = grant
                .registry
                .converge(
                    grant.update,
                    &self.services.settle,
                    |current| policy::with_statement(current, statement),
                    |current| policy::holds(current, statement),
                )
                .await;
            match result {
                Ok(rounds) => {
                    info!(
                        destination = %grant.label,
                        rounds,
                        statement_id = %self.identity.statement_id,
                        "{}",
                        if rounds == 0 { "statement already in place" } else { "statement written" }
                    );
                    Ok(())
                }
                Err(problem) => Err(DestinationError {
                    label: grant.label,
                    problem,
                }),
            }
        });
        let errors: Vec<DestinationError> = join_all(applied)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        if !errors.is_empty() {
            return Err(LifecycleError::Destinations(errors));
        }
        Ok(match total {
            0 => "no cross-account destination needs a registry policy".to_owned(),
            1 => "statement in place in 1 destination registry policy".to_owned(),
            n => format!("statement in place in {n} destination registry policies"),
        })
    }

    /// Removes this resource's statement from each destination, concurrently.
    /// A role that can no longer be assumed is a warning, not a failure.
    async fn revoke(
        &self,
        destinations: Vec<(String, Destination)>,
    ) -> Result<String, LifecycleError> {
        if destinations.is_empty() {
            return Ok("no statement to remove".into());
        }
        self.progress
            .writing("removing statements from destination registry policies");
        let sid = self.identity.statement_id.as_str();
        let revoked = destinations.iter().map(|(label, destination)| async move {
            let role = destination
                .role
                .as_ref()
                .expect("cross-account destinations have a role");
            let registry = match DestinationRegistry::open(
                &self.services.aws,
                role,
                &destination.region,
                &self.session_name,
            )
            .await
            {
                Ok(registry) => registry,
                Err(problem) => {
                    warn!(
                        destination = %label,
                        %problem,
                        statement_id = sid,
                        "role can no longer be assumed; statement left in place"
                    );
                    return Ok(false);
                }
            };
            let result = async {
                let current = registry.read_policy().await?;
                let update = policy::without_statement(current.as_deref(), sid)?;
                registry
                    .converge(
                        update,
                        &self.services.settle,
                        |current| policy::without_statement(current, sid),
                        |current| !policy::mentions(current, sid),
                    )
                    .await
            }
            .await;
            match result {
                Ok(rounds) => {
                    info!(
                        destination = %label,
                        rounds,
                        statement_id = sid,
                        "{}",
                        if rounds == 0 { "no statement to remove" } else { "statement removed" }
                    );
                    Ok(true)
                }
                Err(problem) => Err(DestinationError {
                    label: label.clone(),
                    problem,
                }),
            }
        });

        let results = join_all(revoked).await;
        let left_in_place = results.iter().filter(|r| matches!(r, Ok(false))).count();
        let errors: Vec<DestinationError> = results.into_iter().filter_map(Result::err).collect();
        if !errors.is_empty() {
            return Err(LifecycleError::Destinations(errors));
        }
        Ok(match left_in_place {
            0 => format!(
                "statement removed from {} destination(s)",
                destinations.len()
            ),
            n => format!(
                "statement removed from {} destination(s); left in place in {n} whose role \
                 could not be assumed (see the log)",
                destinations.len() - n
            ),
        })
    }

    async fn write_rules(
        &self,
        rules: &[Rule],
        change: RuleChange,
        source: &SourceRegistry,
    ) -> Result<(), LifecycleError> {
        info!(
            source_registry = %source.account_id,
            change = ?change,
            rules = rules.len(),
            "replication rule decided"
        );
        if !change.writes() {
            return Ok(());
        }
        self.progress
            .writing("writing the source registry's replication configuration");
        source::write(self.services.aws.source_ecr(), rules)
            .await
            .map_err(LifecycleError::WriteSource)
    }

    fn success(&self, physical_id: String, source: &SourceRegistry, summary: String) -> Success {
        Success {
            physical_id,
            data: BTreeMap::from([
                ("SourceRegistryId".to_owned(), source.account_id.clone()),
                ("StatementId".to_owned(), self.identity.statement_id.clone()),
            ]),
            summary,
        }
    }
}

/// A sentence for what happened to the rule.
fn describe(change: RuleChange) -> &'static str {
    match change {
        RuleChange::Added => "replication rule added",
        RuleChange::AlreadyPresent => "replication rule already present (shared)",
        RuleChange::Replaced => "replication rule replaced in place",
        RuleChange::MergedIntoExisting => "replication rule merged into an equal existing rule",
        RuleChange::Unchanged => "replication rule unchanged",
        RuleChange::Removed => "replication rule removed",
        RuleChange::NotPresent => "replication rule already absent",
    }
}

/// The STS session name, which shows in the destination account's CloudTrail.
fn session_name(logical_id: &str) -> String {
    let name: String = logical_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(40)
        .collect();
    format!("ecr-replication-{name}")
}
