//! The state-of-the-world machine, request in, responses out: one test per protocol rule.

use super::*;
use crate::server::fixture::{nack, request, snapshot, Item};
use XdsType::{Cluster, Listener, Route, Secret};

const BASE: &[Item<'static>] =
    &[(Cluster, "a", "a1"), (Cluster, "b", "b1"), (Listener, "l", "l1"), (Route, "r", "r1"), (Secret, "s", "s1")];

fn names(response: &SotwResponse) -> Vec<String> {
    response.resources.names()
}

fn only(output: Output) -> SotwResponse {
    assert!(output.nacks.is_empty(), "{:?}", output.nacks);
    let [response]: [SotwResponse; 1] = output.responses.try_into().expect("exactly one response");
    response
}

fn ads() -> SotwStream {
    SotwStream::new(None)
}

#[test]
fn wildcard_request_gets_every_resource_and_an_ack_gets_nothing() {
    let snap = snapshot(1, None, BASE);
    let mut stream = ads();
    let response = only(stream.on_request(&request(Cluster, &[], "", ""), &snap));
    assert_eq!((response.xds_type, names(&response)), (Cluster, vec!["a".into(), "b".into()]));
    assert!(!response.nonce.is_empty());
    assert_eq!(response.version, snap.of(Cluster).version);

    let ack = stream.on_request(&request(Cluster, &[], &response.version, &response.nonce), &snap);
    assert_eq!(ack, Output::default());
}

#[test]
fn nothing_is_sent_when_nothing_changed() {
    let first = snapshot(1, None, BASE);
    let mut stream = ads();
    let response = only(stream.on_request(&request(Cluster, &[], "", ""), &first));
    stream.on_request(&request(Cluster, &[], &response.version, &response.nonce), &first);
    let same = snapshot(2, Some(&first), BASE);
    assert_eq!(stream.on_snapshot(&same), Output::default());
}

#[test]
fn every_response_has_a_fresh_nonce() {
    let mut stream = ads();
    let first = snapshot(1, None, BASE);
    let one = only(stream.on_request(&request(Cluster, &[], "", ""), &first));
    let second = snapshot(2, Some(&first), &[(Cluster, "a", "a2"), (Cluster, "b", "b1")]);
    let two = only(stream.on_snapshot(&second));
    assert_ne!(one.nonce, two.nonce);
    assert_ne!(one.version, two.version);
}

#[test]
fn a_nack_is_reported_and_the_rejected_version_is_never_resent() {
    let first = snapshot(1, None, BASE);
    let mut stream = ads();
    let accepted = only(stream.on_request(&request(Cluster, &[], "", ""), &first));
    stream.on_request(&request(Cluster, &[], &accepted.version, &accepted.nonce), &first);
    let bad = snapshot(2, Some(&first), &[(Cluster, "a", "bad"), (Cluster, "b", "b1")]);
    let rejected = only(stream.on_snapshot(&bad));

    let output = stream.on_request(&nack(Cluster, &[], &accepted.version, &rejected.nonce), &bad);
    assert!(output.responses.is_empty());
    assert_eq!(output.nacks.len(), 1);
    assert_eq!(output.nacks[0].version, rejected.version);
    assert_eq!(output.nacks[0].resource_names, ["a", "b"]);

    // Envoy asks again with its last good version: still not re-sent.
    let again = stream.on_request(&request(Cluster, &[], &accepted.version, &rejected.nonce), &bad);
    assert!(again.responses.is_empty());
    // A different version is.
    let fixed = snapshot(3, Some(&bad), &[(Cluster, "a", "a3"), (Cluster, "b", "b1")]);
    assert_eq!(only(stream.on_snapshot(&fixed)).resources.names(), ["a", "b"]);
}

#[test]
fn a_request_answering_an_older_nonce_is_stale_and_ignored() {
    let first = snapshot(1, None, BASE);
    let mut stream = ads();
    let old = only(stream.on_request(&request(Cluster, &[], "", ""), &first));
    let second = snapshot(2, Some(&first), &[(Cluster, "a", "a2"), (Cluster, "b", "b1")]);
    only(stream.on_snapshot(&second));
    let late_ack = stream.on_request(&request(Cluster, &[], &old.version, &old.nonce), &second);
    assert_eq!((late_ack.responses.len(), late_ack.ignored), (0, 1));
}

#[test]
fn named_subscriptions_wait_for_names_that_appear_later() {
    let empty = snapshot(1, None, &[(Cluster, "a", "a1")]);
    let mut stream = ads();
    let waiting = stream.on_request(&request(Secret, &["s"], "", ""), &empty);
    assert!(waiting.responses.is_empty(), "no answer for a name that does not exist");
    let with_secret = snapshot(2, Some(&empty), &[(Cluster, "a", "a1"), (Secret, "s", "s1")]);
    let response = only(stream.on_snapshot(&with_secret));
    assert_eq!((response.xds_type, names(&response)), (Secret, vec!["s".to_string()]));
}

#[test]
fn named_subscriptions_get_only_their_names() {
    let snap = snapshot(1, None, &[(Secret, "s", "s1"), (Secret, "t", "t1")]);
    let mut stream = ads();
    let response = only(stream.on_request(&request(Secret, &["t"], "", ""), &snap));
    assert_eq!(names(&response), ["t"]);
    // Changing the subscription (in the ACK) answers with the new set.
    let both = only(stream.on_request(&request(Secret, &["s", "t"], &response.version, &response.nonce), &snap));
    assert_eq!(names(&both), ["s", "t"]);
}

#[test]
fn ads_pushes_in_make_before_break_order_and_removes_clusters_last() {
    let first = snapshot(1, None, BASE);
    let mut stream = ads();
    for (xds_type, names) in [(Cluster, vec![]), (Listener, vec![]), (Route, vec!["r"]), (Secret, vec!["s"])] {
        let response = only(stream.on_request(&request(xds_type, &names, "", ""), &first));
        stream.on_request(&request(xds_type, &names, &response.version, &response.nonce), &first);
    }
    // Cluster `a` is replaced by `c`; the route moves to `c` and the secret rotates.
    let second = snapshot(
        2,
        Some(&first),
        &[(Cluster, "b", "b1"), (Cluster, "c", "c1"), (Listener, "l", "l1"), (Route, "r", "r2"), (Secret, "s", "s2")],
    );
    let output = stream.on_snapshot(&second);
    let order: Vec<(XdsType, Vec<String>)> = output.responses.iter().map(|r| (r.xds_type, names(r))).collect();
    assert_eq!(
        order,
        [
            (Secret, vec!["s".to_string()]),
            (Cluster, vec!["a".into(), "b".into(), "c".into()]),
            (Route, vec!["r".into()]),
            (Cluster, vec!["b".into(), "c".into()]),
        ]
    );
}

#[test]
fn a_per_type_service_answers_requests_without_a_type_url() {
    let snap = snapshot(1, None, BASE);
    let mut stream = SotwStream::new(Some(Cluster));
    let mut untyped = request(Cluster, &[], "", "");
    untyped.type_url.clear();
    assert_eq!(only(stream.on_request(&untyped, &snap)).xds_type, Cluster);
    // Another type on that service is not for it.
    let output = stream.on_request(&request(Listener, &[], "", ""), &snap);
    assert_eq!((output.responses.len(), output.ignored), (0, 1));
}

#[test]
fn unknown_types_are_ignored() {
    let snap = snapshot(1, None, BASE);
    let mut stream = ads();
    let mut unknown = request(Cluster, &[], "", "");
    unknown.type_url = "type.googleapis.com/envoy.config.cluster.v3.Nope".into();
    let output = stream.on_request(&unknown, &snap);
    assert_eq!((output.responses.len(), output.ignored), (0, 1));
}
