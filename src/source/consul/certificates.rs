//! `serve --consul-address`: Consul Connect's certificate for Ambassador as the Secret
//! `ambassador-consul-connect` (by default) in the configured namespace, straight into the
//! configuration, for users without Kubernetes. TLSContexts name it as they would name the
//! connector's Secret; a rotated leaf changes only that SDS secret.

use super::connect::{ConnectStatus, ConnectWatch};
use crate::diagnostic::{Diagnostic, Kind, Origin, ResourceId};
use crate::model::{Meta, Model, Resource, Secret, SecretData};
use crate::source::{BoxFuture, Changes, Contribution, Source};
use std::time::Duration;
use tokio::sync::watch;

/// How long `serve` waits for Consul's first answer before publishing without the Secret (its
/// contexts then fail closed until it comes).
pub const FIRST_ANSWER: Duration = Duration::from_secs(10);

pub struct ConsulCertificateSource {
    agent: String,
    secret: ResourceId,
    status: watch::Receiver<ConnectStatus>,
    _watch: ConnectWatch,
}

impl ConsulCertificateSource {
    /// Follows `watch`, notifying `changes` whenever what it holds changes.
    pub fn new(agent: &str, watch: ConnectWatch, namespace: &str, name: &str, changes: Changes) -> Self {
        let status = watch.status();
        let mut updates = watch.status();
        tokio::spawn(async move {
            while updates.changed().await.is_ok() {
                changes.notify();
            }
        });
        let secret = ResourceId::new("Secret", namespace, name);
        ConsulCertificateSource { agent: agent.to_string(), secret, status, _watch: watch }
    }

    fn origin(&self) -> Origin {
        Origin::object(&format!("consul {}", self.agent))
    }
}

impl Source for ConsulCertificateSource {
    fn name(&self) -> String {
        format!("consul {}", self.agent)
    }

    /// Ready once Consul answered with both the leaf and the roots, or after [`FIRST_ANSWER`].
    fn ready(&self) -> BoxFuture<'_, ()> {
        let mut status = self.status.clone();
        Box::pin(async move {
            let answered = status.wait_for(|status| status.certificates.is_some());
            if tokio::time::timeout(FIRST_ANSWER, answered).await.is_err() {
                tracing::warn!(secret = %self.secret, "no certificate from Consul yet; serving without it");
            }
        })
    }

    fn read(&mut self) -> Result<Contribution, Box<Diagnostic>> {
        let status = self.status.borrow().clone();
        let origin = self.origin();
        let problem = status.error().map(|err| {
            Diagnostic::warning(
                Some(&origin),
                Some(&self.secret),
                format!("{err}; the last certificate Consul issued stays in service"),
            )
            .with_kind(Kind::Unreadable)
        });
        let Some(certificates) = status.certificates else {
            let message = match status.error() {
                Some(err) => format!("no certificate from Consul yet: {err}"),
                None => "no certificate from Consul yet".to_string(),
            };
            let diagnostic = Diagnostic::error(Some(&origin), Some(&self.secret), message).with_kind(Kind::Unreadable);
            return Err(Box::new(diagnostic));
        };
        let entries = certificates.secret_entries().map_err(|why| {
            Box::new(Diagnostic::error(Some(&origin), Some(&self.secret), why).with_kind(Kind::Invalid))
        })?;
        let secret: Secret = Resource {
            meta: Meta { id: self.secret.clone(), origin, ambassador_id: None, labels: Default::default() }.into(),
            spec: std::sync::Arc::new(SecretData { secret_type: "kubernetes.io/tls".into(), entries }),
        };
        let model = Model { secrets: vec![secret], ..Model::default() };
        Ok(Contribution { model, diagnostics: problem.into_iter().collect() })
    }
}
