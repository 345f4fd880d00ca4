//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several connector replicas
//! exactly one writes the Secret. The rules are client-go's: the holder renews every
//! `renew_every`; it stops leading when it could not renew for two thirds of the lease
//! duration; another replica takes over a lease whose record it has seen unchanged for a whole
//! lease duration (by its own clock, so clock skew between nodes does not matter); writes are
//! compare-and-swap on the Lease's resourceVersion. A replica that stops releases the lease.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This replica (its Pod name).
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
}

/// What one election step concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Leader,
    /// Someone else holds the lease (who, if known).
    Follower(Option<String>),
}

pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The lease record as last seen (resourceVersion) and when it was first seen so.
    observed: Option<(String, Instant)>,
    /// When this replica last renewed successfully.
    renewed: Option<Instant>,
}

impl Elector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Elector {
        let api = Api::namespaced(client, &config.namespace);
        Elector { api, config, observed: None, renewed: None }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// Whether this replica still leads by its own clock (it renewed recently enough).
    fn still_leading(&self) -> bool {
        self.renewed.is_some_and(|at| at.elapsed() < self.config.duration * 2 / 3)
    }

    /// One round: create, renew or take over the lease when this replica may; else follow.
    /// API errors keep the previous role until it runs out.
    pub async fn step(&mut self) -> Role {
        match self.try_step().await {
            Ok(role) => role,
            Err(err) => {
                tracing::debug!(%err, lease = %self.config.name, "lease round failed");
                if self.still_leading() {
                    Role::Leader
                } else {
                    self.renewed = None;
                    Role::Follower(None)
                }
            }
        }
    }

    async fn try_step(&mut self) -> Result<Role, kube::Error> {
        let now = Instant::now();
        let current = match self.api.get_opt(&self.config.name).await? {
            None => {
                let lease = self.record(None, 0);
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(self.won(now)),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(Role::Follower(None)),
                    Err(err) => Err(err),
                };
            }
            Some(lease) => lease,
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let version = current.metadata.resource_version.clone().unwrap_or_default();
        let unchanged_since = match &self.observed {
            Some((seen, since)) if *seen == version => *since,
            _ => now,
        };
        self.observed = Some((version, unchanged_since));
        let duration =
            spec.lease_duration_seconds.map_or(self.config.duration, |s| Duration::from_secs(s.max(1) as u64));
        let ours = holder.as_deref() == Some(self.config.identity.as_str());
        let expired = holder.is_none() || now.duration_since(unchanged_since) >= duration;
        if !ours && !expired {
            self.renewed = None;
            return Ok(Role::Follower(holder));
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let mut lease = self.record(Some(&current), transitions);
        if ours {
            // Renewing keeps the acquire time.
            if let (Some(spec), Some(acquired)) = (lease.spec.as_mut(), spec.acquire_time) {
                spec.acquire_time = Some(acquired);
            }
        }
        match self.api.replace(&self.config.name, &PostParams::default(), &lease).await {
            Ok(_) => {
                if !ours {
                    tracing::info!(lease = %self.config.name, previous = holder.as_deref().unwrap_or("nobody"), "took over the lease: this replica writes the Secret");
                }
                Ok(self.won(now))
            }
            // Someone else wrote it first: follow this round.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                self.renewed = None;
                Ok(Role::Follower(None))
            }
            Err(err) => Err(err),
        }
    }

    fn won(&mut self, at: Instant) -> Role {
        self.renewed = Some(at);
        Role::Leader
    }

    /// The lease as this replica writes it (on top of `current`'s metadata, for its version).
    fn record(&self, current: Option<&Lease>, transitions: i32) -> Lease {
        let now = MicroTime(Timestamp::now());
        let metadata = match current {
            Some(lease) => lease.metadata.clone(),
            None => ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..Default::default()
            },
        };
        Lease {
            metadata,
            spec: Some(LeaseSpec {
                holder_identity: Some(self.config.identity.clone()),
                lease_duration_seconds: Some(self.config.duration.as_secs().max(1) as i32),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(transitions),
                ..Default::default()
            }),
        }
    }

    /// Gives the lease up (on shutdown), so another replica takes over at once.
    pub async fn release(&mut self) {
        if !self.still_leading() {
            return;
        }
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else { return };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self.api.replace(&self.config.name, &PostParams::default(), &lease).await {
            Ok(_) => tracing::info!(lease = %self.config.name, "released the lease"),
            Err(err) => tracing::warn!(lease = %self.config.name, %err, "could not release the lease"),
        }
        self.renewed = None;
    }
}
