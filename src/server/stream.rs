//! One xDS stream's task: takes requests, follows the published snapshots, and hands the machine's
//! next response to HTTP/2 whenever the client can take one.
//!
//! Nothing is queued per stream: the response channel holds one message, and a response is
//! computed only when that slot is free, from the latest snapshot. A client that stops reading
//! therefore costs one response (which shares the snapshot's buffers), never a backlog, and a
//! snapshot published while a request is being handled is never lost: every request and every
//! snapshot marks the stream as due, and the machine then brings every subscribed type up to the
//! latest snapshot, in push order.

use super::status::{NodeInfo, StreamHandle};
use super::wire::{GrpcResponseBody, ProstDecoder, StreamEnd};
use super::{OutgoingResponse, RequestOutcome, Shared, StreamMachine};
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::xds::XdsType;
use futures::FutureExt;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

/// Largest request accepted: DiscoveryRequests are small; this only bounds a broken client.
const MAX_REQUEST_BYTES: usize = 4 << 20;

/// Requests already waiting that are taken in one go before the next response is computed, so
/// that a client's first requests (CDS, then LDS...) are answered in push order.
const REQUEST_BATCH: usize = 64;

/// Answers one xDS call: decodes the request stream with tonic and streams responses back
/// through [`GrpcResponseBody`], so their resource bytes are never copied per stream. `service`
/// names the gRPC service for operators (`ADS`, `CDS`, ...).
pub(super) fn open<M: StreamMachine>(
    shared: Shared,
    machine: M,
    service: &'static str,
    request: http::Request<axum::body::Body>,
) -> http::Response<tonic::body::Body> {
    let peer =
        request.extensions().get::<std::net::SocketAddr>().map(ToString::to_string).unwrap_or_else(|| "unknown".into());
    let requests = Streaming::new_request(
        ProstDecoder::<M::Request>::default(),
        request.into_body(),
        None,
        Some(MAX_REQUEST_BYTES),
    );
    let (tx, rx) = mpsc::channel(1);
    let end = StreamEnd::default();
    let body = GrpcResponseBody::new(rx, end.clone(), shared.metrics.responses_sent.clone());
    tokio::spawn(pump(shared, requests, tx, end, peer, service, machine));
    let mut response = http::Response::new(tonic::body::Body::new(body));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    response
}

/// When each recent response went out, to time the ACK that answers it (bounded).
#[derive(Default)]
struct InFlight(VecDeque<((XdsType, String), Instant)>);

const TIMED_RESPONSES: usize = 32;

impl InFlight {
    fn sent(&mut self, xds_type: XdsType, nonce: String) {
        self.0.push_back(((xds_type, nonce), Instant::now()));
        if self.0.len() > TIMED_RESPONSES {
            self.0.pop_front();
        }
    }

    fn acked(&mut self, xds_type: XdsType, nonce: &str) -> Option<std::time::Duration> {
        let at = self.0.iter().position(|((t, n), _)| *t == xds_type && n == nonce)?;
        let (_, sent) = self.0.remove(at)?;
        Some(sent.elapsed())
    }
}

/// The stream's task, until the client goes, the server shuts down, or the client breaks the
/// protocol (then the trailers say why).
async fn pump<M: StreamMachine>(
    shared: Shared,
    mut requests: Streaming<M::Request>,
    tx: mpsc::Sender<Vec<bytes::Bytes>>,
    end: StreamEnd,
    peer: String,
    service: &'static str,
    mut machine: M,
) {
    let protocol = M::PROTOCOL;
    let Shared { mut snapshots, mut shutdown, metrics, status: registry } = shared;
    // Before the first snapshot (serial 0) there is nothing true to say: an empty answer would make
    // a reconnecting Envoy drop its listeners and clusters. Requests wait until then.
    tokio::select! {
        ready = snapshots.wait_for(|s| s.serial > 0) => if ready.is_err() { return },
        _ = shutdown.wait_for(|stop| *stop) => {
            *end.lock().expect("never poisoned") = Some(shutting_down());
            return;
        }
    }
    let mut snapshot = snapshots.borrow_and_update().clone();
    metrics.stream_opened(protocol);
    let entry = registry.register(&peer, protocol, service);
    let mut in_flight = InFlight::default();
    tracing::debug!(%peer, protocol, "xDS stream opened");
    // Whether a response may be due: set by every request and snapshot, cleared when the
    // machine has nothing more to send.
    let mut due = false;
    let status: Option<Status> = loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break Some(shutting_down()),
            changed = snapshots.changed() => {
                if changed.is_err() {
                    break Some(shutting_down());
                }
                snapshot = snapshots.borrow_and_update().clone();
                due = true;
                entry.update(|e| e.types.iter_mut().for_each(|t| t.pending = true));
            }
            permit = tx.reserve(), if due => match permit {
                Ok(permit) => match machine.next_response(&snapshot) {
                    Some(response) => {
                        let xds_type = response.xds_type();
                        tracing::debug!(
                            %peer,
                            protocol,
                            type_ = xds_type.short_name(),
                            resources = response.resource_count(),
                            "sending"
                        );
                        metrics.pushes.inc(xds_type.short_name());
                        in_flight.sent(xds_type, response.nonce().to_string());
                        permit.send(response.chunks());
                    }
                    None => {
                        due = false;
                        // Settled: where every type stands is cheap to say now.
                        let types = machine.sync(&snapshot);
                        entry.update(|e| e.types = types);
                    }
                },
                Err(_) => break None, // the response body is gone: so is the client
            },
            request = requests.message() => {
                let batch = Batch { machine: &mut machine, metrics: &metrics, peer: &peer, snapshot: &snapshot, entry: &entry, in_flight: &mut in_flight };
                match batch.take(&mut requests, request) {
                    Ok(()) => due = true,
                    Err(ended) => break ended,
                }
            }
        }
    };
    if let Some(status) = &status {
        tracing::debug!(%peer, protocol, %status, "xDS stream ended");
    }
    *end.lock().expect("never poisoned") = status;
    drop(tx);
    metrics.stream_closed(protocol);
    tracing::debug!(%peer, protocol, "xDS stream closed");
}

fn shutting_down() -> Status {
    Status::unavailable("ambassador-xds is shutting down; connect again")
}

/// What handling a batch of requests needs.
struct Batch<'a, M> {
    machine: &'a mut M,
    metrics: &'a Metrics,
    peer: &'a str,
    snapshot: &'a Snapshot,
    entry: &'a StreamHandle,
    in_flight: &'a mut InFlight,
}

impl<M: StreamMachine> Batch<'_, M> {
    /// Handles `first` and the requests already waiting behind it. `Err` ends the stream: with a
    /// status for a client error, `None` when the client is gone.
    fn take(
        mut self,
        requests: &mut Streaming<M::Request>,
        first: Result<Option<M::Request>, Status>,
    ) -> Result<(), Option<Status>> {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(request) = next.take() {
            match request {
                Ok(Some(request)) => {
                    if let Some(node) = M::node(&request) {
                        let info = NodeInfo::from_node(node);
                        self.entry.update(|e| e.node = Some(info));
                    }
                    let outcome = self.machine.on_request(&request);
                    self.report(outcome)?;
                }
                // The client closed its side (Envoy never does); nothing more will come.
                Ok(None) => return Err(None),
                Err(status) if status.code() == tonic::Code::InvalidArgument => return Err(Some(status)),
                Err(status) => {
                    tracing::debug!(peer = %self.peer, %status, "xDS stream ended by the client");
                    return Err(None);
                }
            }
            taken += 1;
            if taken < REQUEST_BATCH {
                next = requests.message().now_or_never();
            }
        }
        Ok(())
    }

    fn report(&mut self, outcome: RequestOutcome) -> Result<(), Option<Status>> {
        let (metrics, peer) = (self.metrics, self.peer);
        metrics.ignored_requests.fetch_add(outcome.ignored as u64, Ordering::Relaxed);
        for (xds_type, nonce) in &outcome.acks {
            if let Some(latency) = self.in_flight.acked(*xds_type, nonce) {
                metrics.push_ack_latency.observe(latency);
            }
        }
        for nack in outcome.nacks {
            metrics.nacks.inc(nack.xds_type.short_name());
            let report = self.entry.registry().nacks.record(peer, nack, self.snapshot);
            let culprits: Vec<String> =
                report.culprits.iter().map(|c| format!("{} ({})", c.resource, c.origin)).collect();
            tracing::error!(
                %peer,
                type_ = report.nack.xds_type.short_name(),
                version = %report.nack.version,
                resources = ?report.nack.resource_names,
                culprits = ?culprits,
                error = %report.nack.message,
                "Envoy rejected a response (NACK); it will not be sent again"
            );
            self.entry.update(|e| {
                e.last_nacks.insert(report.nack.xds_type, report);
            });
        }
        match outcome.error {
            Some(message) => Err(Some(Status::invalid_argument(message))),
            None => Ok(()),
        }
    }
}
