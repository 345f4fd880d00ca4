//! One xDS stream's task: takes requests, follows the published snapshots, and hands the machine's
//! next response to HTTP/2 whenever the client can take one.
//!
//! Nothing is queued per stream: the response channel holds one message, and a response is
//! computed only when that slot is free, from the latest snapshot. A client that stops reading
//! therefore costs one response (which shares the snapshot's buffers), never a backlog, and a
//! snapshot published while a request is being handled is never lost: every request and every
//! snapshot marks the stream as due, and the machine then brings every subscribed type up to the
//! latest snapshot, in push order.

use super::wire::{GrpcResponseBody, ProstDecoder, StreamEnd};
use super::{Metrics, OutgoingResponse, RequestOutcome, Shared, StreamMachine};
use crate::snapshot::Snapshot;
use futures::FutureExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

/// Largest request accepted: DiscoveryRequests are small; this only bounds a broken client.
const MAX_REQUEST_BYTES: usize = 4 << 20;

/// Requests already waiting that are taken in one go before the next response is computed, so
/// that a client's first requests (CDS, then LDS...) are answered in push order.
const REQUEST_BATCH: usize = 64;

/// Answers one xDS call: decodes the request stream with tonic and streams responses back
/// through [`GrpcResponseBody`], so their resource bytes are never copied per stream.
pub(super) fn open<M: StreamMachine>(
    shared: Shared,
    machine: M,
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
    tokio::spawn(pump(shared, requests, tx, end, peer, machine));
    let mut response = http::Response::new(tonic::body::Body::new(body));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    response
}

/// The stream's task, until the client goes, the server shuts down, or the client breaks the
/// protocol (then the trailers say why).
async fn pump<M: StreamMachine>(
    shared: Shared,
    mut requests: Streaming<M::Request>,
    tx: mpsc::Sender<Vec<bytes::Bytes>>,
    end: StreamEnd,
    peer: String,
    mut machine: M,
) {
    let protocol = M::PROTOCOL;
    let Shared { mut snapshots, mut shutdown, metrics } = shared;
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
    metrics.streams_opened.fetch_add(1, Ordering::Relaxed);
    metrics.streams_active.fetch_add(1, Ordering::Relaxed);
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
            }
            permit = tx.reserve(), if due => match permit {
                Ok(permit) => match machine.next_response(&snapshot) {
                    Some(response) => {
                        tracing::debug!(
                            %peer,
                            protocol,
                            type_ = response.xds_type().short_name(),
                            resources = response.resource_count(),
                            "sending"
                        );
                        permit.send(response.chunks());
                    }
                    None => due = false,
                },
                Err(_) => break None, // the response body is gone: so is the client
            },
            request = requests.message() => {
                match take_batch(&mut requests, request, &mut machine, &metrics, &peer, &snapshot) {
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
    metrics.streams_active.fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(%peer, protocol, "xDS stream closed");
}

fn shutting_down() -> Status {
    Status::unavailable("ambassador-xds is shutting down; connect again")
}

/// Handles `first` and the requests already waiting behind it. `Err` ends the stream: with a
/// status for a client error, `None` when the client is gone.
fn take_batch<M: StreamMachine>(
    requests: &mut Streaming<M::Request>,
    first: Result<Option<M::Request>, Status>,
    machine: &mut M,
    metrics: &Arc<Metrics>,
    peer: &str,
    snapshot: &Snapshot,
) -> Result<(), Option<Status>> {
    let mut next = Some(first);
    let mut taken = 0;
    while let Some(request) = next.take() {
        match request {
            Ok(Some(request)) => report(machine.on_request(&request), metrics, peer, snapshot)?,
            // The client closed its side (Envoy never does); nothing more will come.
            Ok(None) => return Err(None),
            Err(status) if status.code() == tonic::Code::InvalidArgument => return Err(Some(status)),
            Err(status) => {
                tracing::debug!(%peer, %status, "xDS stream ended by the client");
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

fn report(outcome: RequestOutcome, metrics: &Metrics, peer: &str, snapshot: &Snapshot) -> Result<(), Option<Status>> {
    metrics.ignored_requests.fetch_add(outcome.ignored as u64, Ordering::Relaxed);
    for nack in outcome.nacks {
        metrics.nacks.fetch_add(1, Ordering::Relaxed);
        let report = metrics.nack_log.record(peer, nack, snapshot);
        let culprits: Vec<String> = report.culprits.iter().map(|c| format!("{} ({})", c.resource, c.origin)).collect();
        tracing::error!(
            %peer,
            type_ = report.nack.xds_type.short_name(),
            version = %report.nack.version,
            resources = ?report.nack.resource_names,
            culprits = ?culprits,
            error = %report.nack.message,
            "Envoy rejected a response (NACK); it will not be sent again"
        );
    }
    match outcome.error {
        Some(message) => Err(Some(Status::invalid_argument(message))),
        None => Ok(()),
    }
}
