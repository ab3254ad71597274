//! A CloudFormation custom resource that sets up Amazon ECR cross-account
//! replication from one stack in the source account.
//!
//! It merges its own rule into the source registry's replication
//! configuration and, through a role it assumes in each destination account,
//! its own statement into the destination registry policy, keeping every
//! rule and statement that other owners wrote.
//!
//! # Layout
//!
//! - [`handler`]: one invocation, from the Lambda event to the answer
//!   CloudFormation reads, guarded against panics and timeouts.
//! - [`event`]: the CloudFormation request, read leniently enough to answer
//!   even a malformed one.
//! - [`lifecycle`]: what Create, Update and Delete do, and in which order.
//! - [`properties`]: the resource's properties and their validation.
//! - [`identity`]: the statement id and physical id of a resource.
//! - [`replication`]: the source registry's rules and the pure decisions on them.
//! - [`policy`]: the destination registry policy and the pure decisions on it.
//! - [`repository_settings`], [`templates`]: settings of the repositories
//!   replication creates, as repository creation templates.
//! - [`backfill`]: copying images that existed before the setup.
//! - [`source`], [`destination`]: reading and writing those in AWS.
//! - [`grants`]: the resource's statement and templates across all
//!   destination registries.
//! - [`aws`]: the AWS clients and error summaries.
//! - [`response`]: the response body and its delivery.
//! - [`logging`], [`secrets`]: log setup, and keeping secrets out of logs.

pub mod aws;
pub mod backfill;
pub mod destination;
pub mod event;
pub mod grants;
pub mod handler;
pub mod identity;
pub mod lifecycle;
pub mod logging;
pub mod policy;
pub mod properties;
pub mod replication;
pub mod repository_settings;
pub mod response;
pub mod secrets;
pub mod source;
pub mod templates;
