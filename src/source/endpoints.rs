//! Where EDS clusters' endpoints come from: the other kind of source.
//!
//! Configuration sources ([`super::Source`]) are read as a whole and compiled; endpoint sources
//! are asked only for the [`EndpointTarget`]s the compiled configuration names, and a change of
//! their endpoints rebuilds nothing but the `ClusterLoadAssignment`s (Mappings are not read or
//! compiled again). The controller tells each source what is wanted after every compile; the
//! source starts and stops its watches to match and notifies its [`super::Changes`] handle (the
//! controller's endpoint channel) when endpoints change.

use super::BoxFuture;
use crate::model::endpoint::{EndpointTable, EndpointTarget};
use std::collections::BTreeSet;
use std::time::Instant;

pub trait EndpointSource: Send + Sync + 'static {
    /// For logs: `consul`, `kubernetes endpointslices`.
    fn name(&self) -> String;

    /// Whether this source resolves `target` (Consul targets, Kubernetes targets).
    fn serves(&self, target: &EndpointTarget) -> bool;

    /// The targets the served configuration needs now, all of them `serves` accepts: watches
    /// start for new ones and stop for those no longer wanted. Returns at once.
    fn want(&self, targets: &BTreeSet<EndpointTarget>);

    /// Resolves once every wanted target has been fetched once (successfully or not), or at
    /// `deadline`: a new cluster's first assignment waits for its endpoints, a little.
    fn first_fetch(&self, deadline: Instant) -> BoxFuture<'_, ()>;

    /// The endpoints of every wanted target fetched at least once.
    fn endpoints(&self) -> EndpointTable;
}
