//! `ambassador-xds consul-connect`: the connector of the Consul half of the mTLS docs. It follows
//! the certificate Consul's Connect CA issues to Ambassador (and the CA roots) and stores it as
//! the Kubernetes Secret `ambassador-consul-connect` (`tls.crt` = leaf then active root,
//! `tls.key`, `ca.crt` = every root), creates the TLSContext `ambassador-consul` when missing,
//! and lets only the replica holding a Lease write. Consul failing, denying or answering
//! nonsense never removes what was written; a certificate that does not load is not written.

pub mod lease;
pub mod status;
pub mod store;

use crate::compile::{check_ca_bundle, check_certificate};
use crate::model::Sensitive;
use crate::source::consul::{ConnectStatus, ConnectWatch, ConsulClient};
use lease::{Elector, LeaseConfig, Role};
use status::Shared;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use store::Target;
use tokio::sync::watch;

pub struct Connector {
    pub consul: ConsulClient,
    /// The Consul service the certificate is issued to.
    pub service: String,
    pub target: Target,
    pub lease: LeaseConfig,
    pub wait: Duration,
}

const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Runs until `shutdown` turns true; then releases the lease.
pub async fn run(connector: Connector, client: kube::Client, shared: Shared, mut shutdown: watch::Receiver<bool>) {
    let Connector { consul, service, target, lease, wait } = connector;
    shared.update(|s| s.secret = format!("{}/{}", target.namespace, target.secret));
    let connect = ConnectWatch::start(consul, &service, wait);
    let mut certificates = connect.status();
    let mut elector = Elector::new(client.clone(), lease);
    let mut renew = tokio::time::interval(elector.config().renew_every);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut writer = Writer { client, target, written: None, context_checked: false, retry: None };
    loop {
        tokio::select! {
            _ = renew.tick() => {
                let role = elector.step().await;
                let leader = role == Role::Leader;
                let was_leader = shared.get().leader;
                if leader != was_leader {
                    if leader {
                        tracing::info!(lease = %elector.config().name, "leading: this replica writes the Secret");
                        // A new term writes once, whatever the last term wrote.
                        writer.written = None;
                        writer.context_checked = false;
                    } else {
                        tracing::info!(lease = %elector.config().name, "standing by: another replica holds the lease");
                    }
                }
                shared.update(|s| {
                    s.leader = leader;
                    s.holder = match &role { Role::Follower(holder) => holder.clone(), Role::Leader => None };
                });
            }
            changed = certificates.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = sleep_until(writer.retry.map(|(at, _)| at)), if writer.retry.is_some() => {}
            _ = shutdown.wait_for(|stop| *stop) => {
                elector.release().await;
                return;
            }
        }
        let current = certificates.borrow_and_update().clone();
        writer.sync(&current, &shared).await;
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

struct Writer {
    client: kube::Client,
    target: Target,
    /// What the Secret holds, as this replica last wrote it in this term.
    written: Option<BTreeMap<String, Sensitive>>,
    context_checked: bool,
    /// After a failed write: when to try again, and the delay used.
    retry: Option<(tokio::time::Instant, Duration)>,
}

impl Writer {
    /// Brings the Secret up to date with `current` (only on the leader).
    async fn sync(&mut self, current: &ConnectStatus, shared: &Shared) {
        let consul = current.error().map(|err| (err.state(), err.to_string()));
        let Some(certificates) = &current.certificates else {
            shared.update(|s| s.consul = consul);
            return;
        };
        let entries = certificates.secret_entries().and_then(|entries| check(&entries).map(|()| entries));
        let entries = match entries {
            Ok(entries) => entries,
            Err(why) => {
                let message = format!("the certificate Consul issued cannot be used: {why}");
                return shared.update(|s| {
                    s.consul = consul;
                    s.have_certificate = true;
                    s.invalid = Some(message);
                });
            }
        };
        let leader = shared.get().leader;
        let up_to_date = self.written.as_ref() == Some(&entries);
        shared.update(|s| {
            s.consul = consul;
            s.invalid = None;
            s.have_certificate = true;
            s.up_to_date = up_to_date;
        });
        if !leader || (up_to_date && self.context_checked) {
            return;
        }
        if let Some((at, _)) = self.retry {
            if tokio::time::Instant::now() < at {
                return;
            }
        }
        let result = async {
            if !up_to_date {
                store::apply_secret(&self.client, &self.target, &entries).await?;
                tracing::info!(
                    secret = %format!("{}/{}", self.target.namespace, self.target.secret),
                    serial = %certificates.leaf.serial_number,
                    valid_before = %certificates.leaf.valid_before,
                    active_root = %certificates.roots.active_root_id,
                    "wrote the Secret"
                );
                self.written = Some(entries.clone());
                shared.update(|s| {
                    s.writes += 1;
                    s.up_to_date = true;
                    s.last_write_unix =
                        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).ok().map(|d| d.as_secs());
                });
            }
            if !self.context_checked {
                if let Some(name) = self.target.tls_context.clone() {
                    if !store::ensure_tls_context(&self.client, &self.target, &name).await? {
                        tracing::warn!("getambassador.io TLSContexts are not served (CRDs not installed?); create TLSContext {name} yourself");
                    }
                }
                self.context_checked = true;
            }
            Ok::<(), String>(())
        };
        match result.await {
            Ok(()) => {
                self.retry = None;
                shared.update(|s| s.write = None);
            }
            Err(message) => {
                let delay = self.retry.map_or(FIRST_RETRY, |(_, delay)| (delay * 2).min(MAX_RETRY));
                let delay = delay.mul_f64(0.5 + 0.5 * crate::source::consul::blocking::jitter());
                self.retry = Some((tokio::time::Instant::now() + delay, delay.max(FIRST_RETRY)));
                shared.update(|s| s.write = Some(message));
            }
        }
    }
}

/// The material loads in Envoy (the checks `serve` applies before serving it).
fn check(entries: &BTreeMap<String, Sensitive>) -> Result<(), String> {
    let get = |key: &str| entries.get(key).map(Sensitive::expose).unwrap_or_default();
    check_certificate(get("tls.crt"), get("tls.key")).map_err(|err| format!("the leaf: {err}"))?;
    check_ca_bundle(get("ca.crt")).map_err(|err| format!("the CA roots: {err}"))?;
    Ok(())
}
