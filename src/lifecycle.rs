//! The resource's life: what Create, Update and Delete do, and in which order.
//!
//! Every event first reads what it will change (the source configuration,
//! then each destination's policy through its role), decides the new state,
//! and checks it against ECR's limits; only then does it write. Permissions
//! come before replication, so that the first replicated push is allowed,
//! and on the way out replication goes before permissions.

use crate::{
    aws::{Aws, AwsError},
    backfill,
    destination::{DestinationProblem, Settle},
    event::{Request, RequestKind},
    grants::Grants,
    identity::ResourceIdentity,
    properties::{Destination, InvalidProperties, ReplicationSpec, SourceRegistry},
    replication::{self, LimitError, Rule, RuleChange},
    source::{self, SourceState},
};
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

impl Event<'_> {
    fn grants<'a>(&'a self, source: &'a SourceRegistry) -> Grants<'a> {
        Grants {
            services: self.services,
            identity: &self.identity,
            session_name: &self.session_name,
            progress: self.progress,
            source,
        }
    }

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

        let grants = self.grants(source);
        let planned = grants
            .plan(&spec, spec.repository_settings.is_some())
            .await?;
        let granted = grants.apply(planned).await?;
        self.write_rules(&rules, change, source).await?;

        let mut success = self.success(
            self.identity.physical_id.clone(),
            source,
            format!("{}; {granted}", describe(change)),
        );
        if spec.backfill_existing_images {
            let everywhere: Vec<&Destination> = spec.destinations.iter().collect();
            self.backfill(source, &everywhere, &mut success).await;
        }
        Ok(success)
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

        // Templates are read wherever this resource may have them: where the
        // new settings want them, or where the old ones put them.
        let old_templates = old
            .as_ref()
            .is_some_and(|o| o.repository_settings.is_some());
        let with_templates = spec.repository_settings.is_some() || old_templates;
        let grants = self.grants(source);
        let planned = grants.plan(&spec, with_templates).await?;
        let granted = grants.apply(planned).await?;
        self.write_rules(&rules, change, source).await?;

        let listed = |d: &Destination, spec: &ReplicationSpec| {
            spec.destinations
                .iter()
                .any(|n| n.account_id == d.account_id && n.region == d.region)
        };
        let dropped: Vec<(String, Destination)> = old
            .iter()
            .flat_map(|old| old.destinations.iter())
            .filter(|d| !listed(d, &spec))
            .map(|d| (format!("{} (no longer listed)", d.label()), d.clone()))
            .collect();
        let revoked = grants.revoke(dropped, old_templates).await?;

        let mut success = self.success(
            physical_id.to_owned(),
            source,
            format!("{}; {granted}; {revoked}", describe(change)),
        );
        if spec.backfill_existing_images {
            // New destinations, or all of them when backfill was just asked for.
            let asked_before = old.as_ref().is_some_and(|o| o.backfill_existing_images);
            let added: Vec<&Destination> = spec
                .destinations
                .iter()
                .filter(|d| !asked_before || old.as_ref().is_none_or(|o| !listed(d, o)))
                .collect();
            self.backfill(source, &added, &mut success).await;
        }
        Ok(success)
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
            .map(|(i, d)| (format!("Destinations[{i}] ({})", d.label()), d.clone()))
            .collect();
        let revoked = self
            .grants(source)
            .revoke(destinations, spec.repository_settings.is_some())
            .await?;

        Ok(self.success(
            physical_id.to_owned(),
            source,
            format!("{}; {revoked}", describe(change)),
        ))
    }

    /// Starts backfills to `destinations`; their ids and errors go to Data.
    async fn backfill(
        &self,
        source: &SourceRegistry,
        destinations: &[&Destination],
        success: &mut Success,
    ) {
        if destinations.is_empty() {
            return;
        }
        self.progress.step("starting backfills");
        let report = backfill::start(
            self.services.aws.source_ecr(),
            &source.account_id,
            destinations,
        )
        .await;
        success.summary.push_str(&format!("; {}", report.summary()));
        success.data.extend(report.data());
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
