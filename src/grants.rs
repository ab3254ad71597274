//! What this resource holds in each destination registry: its statement in
//! the registry policy (cross-account destinations) and, with
//! `DestinationRepositorySettings`, its repository creation templates. All
//! destinations are handled concurrently, each through one client opened
//! once per event.

use crate::{
    destination::{DestinationProblem, DestinationRegistry},
    identity::ResourceIdentity,
    lifecycle::{DestinationError, LifecycleError, Progress, Services},
    policy::{self, Grant, PolicyUpdate},
    properties::{Destination, ReplicationSpec, SourceRegistry},
    templates::{self, TemplateChange},
};
use futures_util::future::join_all;
use serde_json::Value;
use tracing::{info, warn};

/// The context of one event's work in destination registries.
pub struct Grants<'a> {
    /// The AWS clients and pacing.
    pub services: &'a Services,
    /// Whose statement and templates these are.
    pub identity: &'a ResourceIdentity,
    /// The STS session name for destination roles.
    pub session_name: &'a str,
    /// Where the event is.
    pub progress: &'a Progress,
    /// The source registry.
    pub source: &'a SourceRegistry,
}

/// One destination, read and decided, ready to be written.
pub struct Planned {
    label: String,
    registry: Option<DestinationRegistry>,
    statement: Option<(Value, PolicyUpdate)>,
    templates: Vec<TemplateChange>,
}

impl Grants<'_> {
    /// Opens each destination of `spec`, reads its policy (and templates,
    /// when `with_templates`) and decides the changes, concurrently. Fails,
    /// before anything is written, if any destination fails.
    pub async fn plan(
        &self,
        spec: &ReplicationSpec,
        with_templates: bool,
    ) -> Result<Vec<Planned>, LifecycleError> {
        self.progress.step("reading destination registries");
        let planned = spec
            .destinations
            .iter()
            .enumerate()
            .map(|(index, destination)| {
                let label = format!("Destinations[{index}] ({})", destination.label());
                async move {
                    self.plan_one(spec, destination, with_templates, label.clone())
                        .await
                        .map_err(|problem| DestinationError { label, problem })
                }
            });
        let results = join_all(planned).await;
        let errors: Vec<DestinationError> = results
            .iter()
            .filter_map(|r| r.as_ref().err().cloned())
            .collect();
        if !errors.is_empty() {
            return Err(LifecycleError::Destinations(errors));
        }
        Ok(results.into_iter().filter_map(Result::ok).collect())
    }

    async fn plan_one(
        &self,
        spec: &ReplicationSpec,
        destination: &Destination,
        with_templates: bool,
        label: String,
    ) -> Result<Planned, DestinationProblem> {
        let Some(registry) = self.open(destination, with_templates).await? else {
            return Ok(Planned {
                label,
                registry: None,
                statement: None,
                templates: Vec::new(),
            });
        };

        let statement = if destination.is_cross_account() {
            let current = registry.read_policy().await?;
            let statement = policy::statement(&Grant {
                statement_id: &self.identity.statement_id,
                partition: &self.source.partition,
                source_account: &self.source.account_id,
                destination_account: &destination.account_id,
                region: &destination.region,
                prefixes: &spec.prefixes,
                allow_create_repository: spec.allow_create_repository,
            });
            let update = policy::with_statement(current.as_deref(), &statement)?;
            Some((statement, update))
        } else {
            None
        };

        let templates = if with_templates {
            let wanted = spec
                .repository_settings
                .as_ref()
                .map_or_else(Vec::new, |settings| {
                    templates::wanted(
                        settings,
                        &spec.prefixes,
                        &self.identity.statement_id,
                        &self.source.partition,
                        destination,
                        destination.template_role_arn.as_deref(),
                    )
                });
            let existing = templates::read(registry.ecr())
                .await
                .map_err(DestinationProblem::ReadTemplates)?;
            templates::plan(&existing, &wanted, &self.identity.statement_id)
                .map_err(DestinationProblem::TemplateConflict)?
        } else {
            Vec::new()
        };
        Ok(Planned {
            label,
            registry: Some(registry),
            statement,
            templates,
        })
    }

    /// Writes what was planned, concurrently, and checks that each
    /// statement holds against concurrent writers.
    pub async fn apply(&self, planned: Vec<Planned>) -> Result<String, LifecycleError> {
        let writes = planned.iter().any(|p| {
            !p.templates.is_empty()
                || p.statement
                    .as_ref()
                    .is_some_and(|(_, u)| *u != PolicyUpdate::Unchanged)
        });
        if writes {
            self.progress
                .writing("writing destination registry policies");
        }
        let statements = planned.iter().filter(|p| p.statement.is_some()).count();
        let template_changes: usize = planned.iter().map(|p| p.templates.len()).sum();

        let applied = planned.into_iter().map(|p| async move {
            let result = async {
                let Some(registry) = &p.registry else {
                    return Ok(());
                };
                if let Some((statement, update)) = p.statement {
                    let statement = &statement;
                    let rounds = registry
                        .converge(
                            update,
                            &self.services.settle,
                            |current| policy::with_statement(current, statement),
                            |current| policy::holds(current, statement),
                        )
                        .await?;
                    info!(
                        destination = %p.label,
                        rounds,
                        statement_id = %self.identity.statement_id,
                        "{}",
                        if rounds == 0 { "statement already in place" } else { "statement written" }
                    );
                }
                if !p.templates.is_empty() {
                    templates::apply(registry.ecr(), &p.templates)
                        .await
                        .map_err(DestinationProblem::WriteTemplates)?;
                    info!(destination = %p.label, changes = ?p.templates, "repository creation templates written");
                }
                Ok(())
            }
            .await;
            result.map_err(|problem| DestinationError {
                label: p.label,
                problem,
            })
        });
        let errors: Vec<DestinationError> = join_all(applied)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        if !errors.is_empty() {
            return Err(LifecycleError::Destinations(errors));
        }

        let mut summary = match statements {
            0 => "no cross-account destination needs a registry policy".to_owned(),
            1 => "statement in place in 1 destination registry policy".to_owned(),
            n => format!("statement in place in {n} destination registry policies"),
        };
        if template_changes > 0 {
            summary.push_str(&format!(
                "; {template_changes} repository creation template change(s)"
            ));
        }
        Ok(summary)
    }

    /// Removes this resource's statement (and templates, when
    /// `with_templates`) from each destination, concurrently. A role that
    /// can no longer be assumed is a warning, not a failure.
    pub async fn revoke(
        &self,
        destinations: Vec<(String, Destination)>,
        with_templates: bool,
    ) -> Result<String, LifecycleError> {
        let targets: Vec<&(String, Destination)> = destinations
            .iter()
            .filter(|(_, d)| d.is_cross_account() || with_templates)
            .collect();
        if targets.is_empty() {
            return Ok("nothing to remove from destinations".into());
        }
        self.progress
            .writing("removing statements from destination registry policies");
        let sid = self.identity.statement_id.as_str();
        let revoked = targets.iter().map(|(label, destination)| async move {
            let registry = match self.open(destination, with_templates).await {
                Ok(Some(registry)) => registry,
                Ok(None) => return Ok(true),
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
                if destination.is_cross_account() {
                    let current = registry.read_policy().await?;
                    let update = policy::without_statement(current.as_deref(), sid)?;
                    let rounds = registry
                        .converge(
                            update,
                            &self.services.settle,
                            |current| policy::without_statement(current, sid),
                            |current| !policy::mentions(current, sid),
                        )
                        .await?;
                    info!(
                        destination = %label,
                        rounds,
                        statement_id = sid,
                        "{}",
                        if rounds == 0 { "no statement to remove" } else { "statement removed" }
                    );
                }
                if with_templates {
                    let existing = templates::read(registry.ecr())
                        .await
                        .map_err(DestinationProblem::ReadTemplates)?;
                    let changes = templates::plan(&existing, &[], sid)
                        .map_err(DestinationProblem::TemplateConflict)?;
                    templates::apply(registry.ecr(), &changes)
                        .await
                        .map_err(DestinationProblem::WriteTemplates)?;
                    info!(destination = %label, removed = changes.len(), "repository creation templates removed");
                }
                Ok::<_, DestinationProblem>(())
            }
            .await;
            result.map(|()| true).map_err(|problem| DestinationError {
                label: label.clone(),
                problem,
            })
        });

        let results = join_all(revoked).await;
        let left_in_place = results.iter().filter(|r| matches!(r, Ok(false))).count();
        let errors: Vec<DestinationError> = results.into_iter().filter_map(Result::err).collect();
        if !errors.is_empty() {
            return Err(LifecycleError::Destinations(errors));
        }
        Ok(match left_in_place {
            0 => format!("removed from {} destination(s)", targets.len()),
            n => format!(
                "removed from {} destination(s); left in place in {n} whose role could not be \
                 assumed (see the log)",
                targets.len() - n
            ),
        })
    }

    /// A client for `destination`'s registry: through its role in another
    /// account, or the function's own in another region of its account
    /// (needed only for templates; `None` otherwise).
    async fn open(
        &self,
        destination: &Destination,
        with_templates: bool,
    ) -> Result<Option<DestinationRegistry>, DestinationProblem> {
        match &destination.role {
            Some(role) => DestinationRegistry::open(
                &self.services.aws,
                role,
                &destination.region,
                self.session_name,
            )
            .await
            .map(Some),
            None if with_templates => Ok(Some(DestinationRegistry::new(
                self.services.aws.source_ecr_in(&destination.region),
            ))),
            None => Ok(None),
        }
    }
}
