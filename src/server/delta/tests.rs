//! The delta machine, request in, responses out: one test per protocol rule.

use super::*;
use crate::server::fixture::{delta_nack, delta_request, snapshot, Item};
use XdsType::{Cluster, Listener, Route, Secret};

const BASE: &[Item<'static>] =
    &[(Cluster, "a", "a1"), (Cluster, "b", "b1"), (Listener, "l", "l1"), (Route, "r", "r1"), (Secret, "s", "s1")];

fn names(response: &DeltaResponse) -> Vec<String> {
    response.resources.names()
}

fn removed(response: &DeltaResponse) -> Vec<String> {
    response.removed.iter().map(|n| n.to_string()).collect()
}

fn only(output: Output) -> DeltaResponse {
    assert!(output.nacks.is_empty(), "{:?}", output.nacks);
    let [response]: [DeltaResponse; 1] = output.responses.try_into().expect("exactly one response");
    response
}

fn ads() -> DeltaStream {
    DeltaStream::new(None)
}

/// A stream that holds every type of `snap` (subscribed, answered and ACKed).
fn synced(snap: &Snapshot) -> DeltaStream {
    let mut stream = ads();
    for (xds_type, names) in [(Cluster, vec![]), (Listener, vec![]), (Route, vec!["r"]), (Secret, vec!["s"])] {
        let response = only(stream.on_request(&delta_request(xds_type, &names, &[], ""), snap));
        assert!(stream.on_request(&delta_request(xds_type, &[], &[], &response.nonce), snap).responses.is_empty());
    }
    stream
}

#[test]
fn a_wildcard_subscription_gets_everything_once() {
    let snap = snapshot(1, None, BASE);
    let mut stream = ads();
    let response = only(stream.on_request(&delta_request(Cluster, &[], &[], ""), &snap));
    assert_eq!(names(&response), ["a", "b"]);
    assert!(response.removed.is_empty());
    let ack = stream.on_request(&delta_request(Cluster, &[], &[], &response.nonce), &snap);
    assert_eq!(ack, Output::default());
    assert_eq!(stream.on_snapshot(&snapshot(2, Some(&snap), BASE)), Output::default());
}

#[test]
fn only_changes_and_removals_are_sent() {
    let first = snapshot(1, None, BASE);
    let mut stream = ads();
    only(stream.on_request(&delta_request(Cluster, &[], &[], ""), &first));
    let changed = snapshot(2, Some(&first), &[(Cluster, "a", "a2"), (Cluster, "b", "b1")]);
    let update = only(stream.on_snapshot(&changed));
    assert_eq!((names(&update), removed(&update)), (vec!["a".to_string()], vec![]));
    let shrunk = snapshot(3, Some(&changed), &[(Cluster, "a", "a2")]);
    let removal = only(stream.on_snapshot(&shrunk));
    assert_eq!((names(&removal), removed(&removal)), (vec![], vec!["b".to_string()]));
}

#[test]
fn a_nack_is_reported_and_not_answered_with_the_same_resources() {
    let first = snapshot(1, None, BASE);
    let mut stream = ads();
    only(stream.on_request(&delta_request(Cluster, &[], &[], ""), &first));
    let bad = snapshot(2, Some(&first), &[(Cluster, "a", "bad"), (Cluster, "b", "b1")]);
    let rejected = only(stream.on_snapshot(&bad));
    let output = stream.on_request(&delta_nack(Cluster, &rejected.nonce), &bad);
    assert!(output.responses.is_empty());
    assert_eq!(output.nacks.len(), 1);
    assert_eq!(output.nacks[0].resource_names, ["a"]);
    assert_eq!(
        stream.on_snapshot(&snapshot(3, Some(&bad), &[(Cluster, "a", "bad"), (Cluster, "b", "b1")])),
        Output::default()
    );
}

#[test]
fn stale_nonces_are_counted_but_their_subscriptions_apply() {
    let snap = snapshot(1, None, &[(Secret, "s", "s1"), (Secret, "t", "t1")]);
    let mut stream = ads();
    only(stream.on_request(&delta_request(Secret, &["s"], &[], ""), &snap));
    let output = stream.on_request(&delta_request(Secret, &["t"], &[], "no-such-nonce"), &snap);
    assert_eq!(output.ignored, 1);
    assert_eq!(names(&only(Output { ignored: 0, ..output })), ["t"]);
}

#[test]
fn a_reconnect_with_initial_versions_gets_only_what_changed() {
    let snap = snapshot(1, None, BASE);
    let held_a = snap.of(Cluster).get("a").unwrap().version.to_string();
    let mut request = delta_request(Cluster, &[], &[], "");
    request.initial_resource_versions =
        [("a".to_string(), held_a), ("gone".to_string(), "old".to_string())].into_iter().collect();
    let response = only(ads().on_request(&request, &snap));
    assert_eq!((names(&response), removed(&response)), (vec!["b".to_string()], vec!["gone".to_string()]));
}

#[test]
fn a_rotated_secret_changes_only_the_secret() {
    let first = snapshot(1, None, BASE);
    let mut stream = synced(&first);
    let rotated: Vec<Item<'_>> =
        BASE.iter().map(|&(t, n, b)| if t == Secret { (t, n, "s2") } else { (t, n, b) }).collect();
    let update = only(stream.on_snapshot(&snapshot(2, Some(&first), &rotated)));
    assert_eq!((update.xds_type, names(&update)), (Secret, vec!["s".to_string()]));
}

#[test]
fn ads_removes_vanished_clusters_after_the_routes_moved_off_them() {
    let first = snapshot(1, None, BASE);
    let mut stream = synced(&first);
    let second = snapshot(
        2,
        Some(&first),
        &[(Cluster, "b", "b1"), (Cluster, "c", "c1"), (Listener, "l", "l1"), (Route, "r", "r2"), (Secret, "s", "s1")],
    );
    let order: Vec<(XdsType, Vec<String>, Vec<String>)> =
        stream.on_snapshot(&second).responses.iter().map(|r| (r.xds_type, names(r), removed(r))).collect();
    assert_eq!(
        order,
        [
            (Cluster, vec!["c".to_string()], vec![]),
            (Route, vec!["r".to_string()], vec![]),
            (Cluster, vec![], vec!["a".to_string()]),
        ]
    );
}

#[test]
fn a_per_type_service_serves_named_resources() {
    let snap = snapshot(1, None, &[(Secret, "s", "s1"), (Secret, "t", "t1")]);
    let mut stream = DeltaStream::new(Some(Secret));
    let mut untyped = delta_request(Secret, &["t"], &[], "");
    untyped.type_url.clear();
    assert_eq!(names(&only(stream.on_request(&untyped, &snap))), ["t"]);
}

#[test]
fn unsubscribing_stops_updates_for_that_name() {
    let first = snapshot(1, None, &[(Secret, "s", "s1"), (Secret, "t", "t1")]);
    let mut stream = ads();
    let response = only(stream.on_request(&delta_request(Secret, &["s", "t"], &[], ""), &first));
    assert!(stream.on_request(&delta_request(Secret, &[], &["t"], &response.nonce), &first).responses.is_empty());
    let second = snapshot(2, Some(&first), &[(Secret, "s", "s1"), (Secret, "t", "t2")]);
    assert_eq!(stream.on_snapshot(&second), Output::default());
}
