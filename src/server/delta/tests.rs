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

fn drain(stream: &mut DeltaStream, snap: &Snapshot) -> Vec<DeltaResponse> {
    std::iter::from_fn(|| stream.next_response(snap)).take(100).collect()
}

fn only(responses: Vec<DeltaResponse>) -> DeltaResponse {
    let [response]: [DeltaResponse; 1] = responses.try_into().expect("exactly one response");
    response
}

fn ask(stream: &mut DeltaStream, request: &DeltaDiscoveryRequest, snap: &Snapshot) -> Vec<DeltaResponse> {
    let outcome = stream.on_request(request);
    assert!(outcome.nacks.is_empty() && outcome.error.is_none(), "{outcome:?}");
    drain(stream, snap)
}

fn ads() -> DeltaStream {
    DeltaStream::new(None)
}

/// A stream that holds every type of `snap` (subscribed, answered and ACKed).
fn synced(snap: &Snapshot) -> DeltaStream {
    let mut stream = ads();
    for (xds_type, names) in [(Cluster, vec![]), (Listener, vec![]), (Route, vec!["r"]), (Secret, vec!["s"])] {
        let response = only(ask(&mut stream, &delta_request(xds_type, &names, &[], ""), snap));
        assert!(ask(&mut stream, &delta_request(xds_type, &[], &[], &response.nonce), snap).is_empty());
    }
    stream
}

#[test]
fn a_wildcard_subscription_gets_everything_once() {
    let snap = snapshot(1, None, BASE);
    let mut stream = ads();
    let response = only(ask(&mut stream, &delta_request(Cluster, &[], &[], ""), &snap));
    assert_eq!(names(&response), ["a", "b"]);
    assert!(response.removed.is_empty());
    assert!(ask(&mut stream, &delta_request(Cluster, &[], &[], &response.nonce), &snap).is_empty());
    assert!(drain(&mut stream, &snapshot(2, Some(&snap), BASE)).is_empty());
}

#[test]
fn only_changes_are_sent_and_removals_come_after_them() {
    let first = snapshot(1, None, BASE);
    let mut stream = ads();
    only(ask(&mut stream, &delta_request(Cluster, &[], &[], ""), &first));
    let changed = snapshot(2, Some(&first), &[(Cluster, "a", "a2"), (Cluster, "b", "b1")]);
    let update = only(drain(&mut stream, &changed));
    assert_eq!((names(&update), removed(&update)), (vec!["a".to_string()], vec![]));
    let shrunk = snapshot(3, Some(&changed), &[(Cluster, "a", "a2")]);
    let removal = only(drain(&mut stream, &shrunk));
    assert_eq!((names(&removal), removed(&removal)), (vec![], vec!["b".to_string()]));
}

#[test]
fn a_nack_is_reported_and_not_answered_with_the_same_resources() {
    let first = snapshot(1, None, BASE);
    let mut stream = ads();
    only(ask(&mut stream, &delta_request(Cluster, &[], &[], ""), &first));
    let bad = snapshot(2, Some(&first), &[(Cluster, "a", "bad"), (Cluster, "b", "b1")]);
    let rejected = only(drain(&mut stream, &bad));
    let outcome = stream.on_request(&delta_nack(Cluster, &rejected.nonce));
    assert_eq!(outcome.nacks.len(), 1);
    assert_eq!(outcome.nacks[0].resource_names, ["a"]);
    assert!(drain(&mut stream, &bad).is_empty());
    assert!(drain(&mut stream, &snapshot(3, Some(&bad), &[(Cluster, "a", "bad"), (Cluster, "b", "b1")])).is_empty());
}

#[test]
fn stale_nonces_are_counted_but_their_subscriptions_apply() {
    let snap = snapshot(1, None, &[(Secret, "s", "s1"), (Secret, "t", "t1")]);
    let mut stream = ads();
    only(ask(&mut stream, &delta_request(Secret, &["s"], &[], ""), &snap));
    let outcome = stream.on_request(&delta_request(Secret, &["t"], &[], "no-such-nonce"));
    assert_eq!(outcome.ignored, 1);
    assert_eq!(names(&only(drain(&mut stream, &snap))), ["t"]);
}

#[test]
fn a_reconnect_with_initial_versions_gets_only_what_changed_then_the_removals() {
    let snap = snapshot(1, None, BASE);
    let held_a = snap.of(Cluster).get("a").unwrap().version.to_string();
    let mut request = delta_request(Cluster, &[], &[], "");
    request.initial_resource_versions =
        [("a".to_string(), held_a), ("gone".to_string(), "old".to_string())].into_iter().collect();
    let responses = ask(&mut ads(), &request, &snap);
    let steps: Vec<(Vec<String>, Vec<String>)> = responses.iter().map(|r| (names(r), removed(r))).collect();
    assert_eq!(steps, [(vec!["b".to_string()], vec![]), (vec![], vec!["gone".to_string()])]);
}

#[test]
fn a_subscribed_name_that_does_not_exist_is_answered_at_once_and_once() {
    let snap = snapshot(1, None, &[(Secret, "s", "s1")]);
    let mut stream = ads();
    let response = only(ask(&mut stream, &delta_request(Secret, &["missing"], &[], ""), &snap));
    assert_eq!((names(&response), removed(&response)), (vec![], vec!["missing".to_string()]));
    assert!(drain(&mut stream, &snapshot(2, Some(&snap), &[(Secret, "s", "s2")])).is_empty());
    // When it appears, it is sent.
    let appeared = snapshot(3, Some(&snap), &[(Secret, "missing", "m1"), (Secret, "s", "s1")]);
    assert_eq!(names(&only(drain(&mut stream, &appeared))), ["missing"]);
}

#[test]
fn a_subscribed_resource_removed_later_is_said_to_be_gone() {
    let first = snapshot(1, None, &[(Secret, "s", "s1")]);
    let mut stream = ads();
    only(ask(&mut stream, &delta_request(Secret, &["s"], &[], ""), &first));
    let gone = snapshot(2, Some(&first), &[]);
    assert_eq!(removed(&only(drain(&mut stream, &gone))), ["s"]);
    assert!(drain(&mut stream, &snapshot(3, Some(&gone), &[])).is_empty(), "and only once");
}

#[test]
fn a_rotated_secret_changes_only_the_secret() {
    let first = snapshot(1, None, BASE);
    let mut stream = synced(&first);
    let rotated: Vec<Item<'_>> =
        BASE.iter().map(|&(t, n, b)| if t == Secret { (t, n, "s2") } else { (t, n, b) }).collect();
    let update = only(drain(&mut stream, &snapshot(2, Some(&first), &rotated)));
    assert_eq!((update.xds_type, names(&update)), (Secret, vec!["s".to_string()]));
}

#[test]
fn ads_removes_vanished_resources_after_everything_that_named_them_in_removal_order() {
    let first = snapshot(1, None, BASE);
    let mut stream = synced(&first);
    // Cluster `a` and secret `s` go; the route moves off `a`; the listener is replaced.
    let second = snapshot(
        2,
        Some(&first),
        &[(Cluster, "b", "b1"), (Cluster, "c", "c1"), (Listener, "m", "m1"), (Route, "r", "r2")],
    );
    let steps: Vec<(XdsType, Vec<String>, Vec<String>)> =
        drain(&mut stream, &second).iter().map(|r| (r.xds_type, names(r), removed(r))).collect();
    assert_eq!(
        steps,
        [
            (Cluster, vec!["c".to_string()], vec![]),
            (Listener, vec!["m".to_string()], vec!["l".to_string()]),
            (Route, vec!["r".to_string()], vec![]),
            (Cluster, vec![], vec!["a".to_string()]),
            (Secret, vec![], vec!["s".to_string()]),
        ]
    );
}

#[test]
fn a_per_type_service_serves_named_resources_and_removes_in_one_step() {
    let first = snapshot(1, None, &[(Secret, "s", "s1"), (Secret, "t", "t1")]);
    let mut stream = DeltaStream::new(Some(Secret));
    let mut untyped = delta_request(Secret, &["s", "t"], &[], "");
    untyped.type_url.clear();
    assert_eq!(names(&only(ask(&mut stream, &untyped, &first))), ["s", "t"]);
    let second = snapshot(2, Some(&first), &[(Secret, "s", "s2")]);
    let update = only(drain(&mut stream, &second));
    assert_eq!((names(&update), removed(&update)), (vec!["s".to_string()], vec!["t".to_string()]));
}

#[test]
fn unsubscribing_stops_updates_for_that_name() {
    let first = snapshot(1, None, &[(Secret, "s", "s1"), (Secret, "t", "t1")]);
    let mut stream = ads();
    let response = only(ask(&mut stream, &delta_request(Secret, &["s", "t"], &[], ""), &first));
    assert!(ask(&mut stream, &delta_request(Secret, &[], &["t"], &response.nonce), &first).is_empty());
    let second = snapshot(2, Some(&first), &[(Secret, "s", "s1"), (Secret, "t", "t2")]);
    assert!(drain(&mut stream, &second).is_empty());
}

#[test]
fn first_answers_follow_push_order_whichever_type_is_asked_first() {
    let snap = snapshot(1, None, BASE);
    let mut stream = ads();
    for (xds_type, names) in [(Route, vec!["r"]), (Listener, vec![]), (Secret, vec!["s"]), (Cluster, vec![])] {
        stream.on_request(&delta_request(xds_type, &names, &[], ""));
    }
    let types: Vec<XdsType> = drain(&mut stream, &snap).iter().map(|r| r.xds_type).collect();
    assert_eq!(types, [Secret, Cluster, Listener, Route]);
}

#[test]
fn a_per_type_service_refuses_other_types() {
    let outcome = DeltaStream::new(Some(Secret)).on_request(&delta_request(Cluster, &[], &[], ""));
    assert!(outcome.error.unwrap().contains("SecretDiscoveryService"));
}
