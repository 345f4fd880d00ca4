//! The state-of-the-world machine, request in, responses out: one test per protocol rule.

use super::vanishing::vanished;
use super::*;
use crate::server::fixture::{nack, request, snapshot, Item};
use XdsType::{Cluster, Listener, Route, Secret};

const BASE: &[Item<'static>] =
    &[(Cluster, "a", "a1"), (Cluster, "b", "b1"), (Listener, "l", "l1"), (Route, "r", "r1"), (Secret, "s", "s1")];

fn names(response: &SotwResponse) -> Vec<String> {
    response.resources.names()
}

/// Every response the stream has for `snap`, in order.
fn drain(stream: &mut SotwStream, snap: &Snapshot) -> Vec<SotwResponse> {
    std::iter::from_fn(|| stream.next_response(snap)).take(100).collect()
}

fn only(responses: Vec<SotwResponse>) -> SotwResponse {
    let [response]: [SotwResponse; 1] = responses.try_into().expect("exactly one response");
    response
}

/// Sends `request` and returns what the stream answers.
fn ask(stream: &mut SotwStream, request: &DiscoveryRequest, snap: &Snapshot) -> Vec<SotwResponse> {
    let outcome = stream.on_request(request);
    // Taken: no NACK, nothing ignored, no error (ACKs are fine).
    assert_eq!(RequestOutcome { acks: Vec::new(), ..outcome }, RequestOutcome::default(), "the request was taken");
    drain(stream, snap)
}

fn ads() -> SotwStream {
    SotwStream::new(None)
}

/// A stream that holds every type of `snap` (subscribed, answered and ACKed).
fn synced(snap: &Snapshot) -> SotwStream {
    let mut stream = ads();
    for (xds_type, names) in [(Cluster, vec![]), (Listener, vec![]), (Route, vec!["r"]), (Secret, vec!["s"])] {
        let response = only(ask(&mut stream, &request(xds_type, &names, "", ""), snap));
        assert!(ask(&mut stream, &request(xds_type, &names, &response.version, &response.nonce), snap).is_empty());
    }
    stream
}

#[test]
fn wildcard_request_gets_every_resource_and_an_ack_gets_nothing() {
    let snap = snapshot(1, None, BASE);
    let mut stream = ads();
    let response = only(ask(&mut stream, &request(Cluster, &[], "", ""), &snap));
    assert_eq!((response.xds_type, names(&response)), (Cluster, vec!["a".into(), "b".into()]));
    assert!(!response.nonce.is_empty());
    assert_eq!(response.version, snap.of(Cluster).version);
    assert!(ask(&mut stream, &request(Cluster, &[], &response.version, &response.nonce), &snap).is_empty());
}

#[test]
fn nothing_is_sent_when_nothing_changed() {
    let first = snapshot(1, None, BASE);
    let mut stream = synced(&first);
    assert!(drain(&mut stream, &snapshot(2, Some(&first), BASE)).is_empty());
}

#[test]
fn every_response_has_a_fresh_nonce() {
    let mut stream = ads();
    let first = snapshot(1, None, BASE);
    let one = only(ask(&mut stream, &request(Cluster, &[], "", ""), &first));
    let second = snapshot(2, Some(&first), &[(Cluster, "a", "a2"), (Cluster, "b", "b1")]);
    let two = only(drain(&mut stream, &second));
    assert_ne!(one.nonce, two.nonce);
    assert_ne!(one.version, two.version);
}

#[test]
fn a_nack_is_reported_and_the_rejected_version_is_never_resent() {
    let first = snapshot(1, None, BASE);
    let mut stream = ads();
    let accepted = only(ask(&mut stream, &request(Cluster, &[], "", ""), &first));
    ask(&mut stream, &request(Cluster, &[], &accepted.version, &accepted.nonce), &first);
    let bad = snapshot(2, Some(&first), &[(Cluster, "a", "bad"), (Cluster, "b", "b1")]);
    let rejected = only(drain(&mut stream, &bad));

    let outcome = stream.on_request(&nack(Cluster, &[], &accepted.version, &rejected.nonce));
    assert_eq!(outcome.nacks.len(), 1);
    assert_eq!(outcome.nacks[0].version, rejected.version);
    assert_eq!(outcome.nacks[0].resource_names, ["a", "b"]);
    assert!(drain(&mut stream, &bad).is_empty());

    // Envoy asks again with its last good version: still not re-sent.
    assert!(ask(&mut stream, &request(Cluster, &[], &accepted.version, &rejected.nonce), &bad).is_empty());
    // A different version is.
    let fixed = snapshot(3, Some(&bad), &[(Cluster, "a", "a3"), (Cluster, "b", "b1")]);
    assert_eq!(only(drain(&mut stream, &fixed)).resources.names(), ["a", "b"]);
}

#[test]
fn a_request_answering_an_older_nonce_is_stale_and_ignored() {
    let first = snapshot(1, None, BASE);
    let mut stream = ads();
    let old = only(ask(&mut stream, &request(Cluster, &[], "", ""), &first));
    let second = snapshot(2, Some(&first), &[(Cluster, "a", "a2"), (Cluster, "b", "b1")]);
    only(drain(&mut stream, &second));
    let late_ack = stream.on_request(&request(Cluster, &["a"], &old.version, &old.nonce));
    assert_eq!(late_ack.ignored, 1);
    assert!(drain(&mut stream, &second).is_empty(), "its subscription change did not apply");
}

#[test]
fn while_nothing_was_sent_every_request_of_a_type_counts() {
    let empty = snapshot(1, None, &[(Secret, "s", "s1")]);
    let mut stream = ads();
    // A name that does not exist: no answer, and so no nonce yet.
    assert!(ask(&mut stream, &request(Secret, &["missing"], "", ""), &empty).is_empty());
    // The client changes its mind before any answer: its (empty) nonce is not stale.
    let response = only(ask(&mut stream, &request(Secret, &["s"], "", ""), &empty));
    assert_eq!(names(&response), ["s"]);
}

#[test]
fn named_subscriptions_wait_for_names_that_appear_later() {
    let empty = snapshot(1, None, &[(Cluster, "a", "a1")]);
    let mut stream = ads();
    assert!(ask(&mut stream, &request(Secret, &["s"], "", ""), &empty).is_empty(), "no answer for a missing name");
    let with_secret = snapshot(2, Some(&empty), &[(Cluster, "a", "a1"), (Secret, "s", "s1")]);
    let response = only(drain(&mut stream, &with_secret));
    assert_eq!((response.xds_type, names(&response)), (Secret, vec!["s".to_string()]));
}

#[test]
fn named_subscriptions_get_only_their_names() {
    let snap = snapshot(1, None, &[(Secret, "s", "s1"), (Secret, "t", "t1")]);
    let mut stream = ads();
    let response = only(ask(&mut stream, &request(Secret, &["t"], "", ""), &snap));
    assert_eq!(names(&response), ["t"]);
    // Changing the subscription (in the ACK) answers with the new set.
    let both = only(ask(&mut stream, &request(Secret, &["s", "t"], &response.version, &response.nonce), &snap));
    assert_eq!(names(&both), ["s", "t"]);
}

#[test]
fn a_named_resource_that_vanishes_is_kept_while_the_client_asks_for_it() {
    let first = snapshot(1, None, &[(Secret, "s", "s1"), (Secret, "t", "t1")]);
    let mut stream = ads();
    let response = only(ask(&mut stream, &request(Secret, &["s", "t"], "", ""), &first));
    ask(&mut stream, &request(Secret, &["s", "t"], &response.version, &response.nonce), &first);
    // `t` is gone and `s` rotates: `t` stays in the response (leaving it out is a NACK).
    let second = snapshot(2, Some(&first), &[(Secret, "s", "s2")]);
    let update = only(drain(&mut stream, &second));
    assert_eq!(names(&update), ["s", "t"]);
    // Once the client lets go of `t`, it is not sent again.
    let only_s = only(ask(&mut stream, &request(Secret, &["s"], &update.version, &update.nonce), &second));
    assert_eq!(names(&only_s), ["s"]);
}

#[test]
fn named_cds_and_lds_requests_get_those_resources() {
    let snap = snapshot(1, None, BASE);
    let mut stream = ads();
    assert_eq!(names(&only(ask(&mut stream, &request(Cluster, &["b"], "", ""), &snap))), ["b"]);
    assert_eq!(names(&only(ask(&mut stream, &request(Listener, &["l"], "", ""), &snap))), ["l"]);
}

#[test]
fn ads_pushes_in_make_before_break_order_and_removes_clusters_last() {
    let first = snapshot(1, None, BASE);
    let mut stream = synced(&first);
    // Cluster `a` is replaced by `c`; the route moves to `c` and the secret rotates.
    let second = snapshot(
        2,
        Some(&first),
        &[(Cluster, "b", "b1"), (Cluster, "c", "c1"), (Listener, "l", "l1"), (Route, "r", "r2"), (Secret, "s", "s2")],
    );
    let order: Vec<(XdsType, Vec<String>)> =
        drain(&mut stream, &second).iter().map(|r| (r.xds_type, names(r))).collect();
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
fn a_request_while_a_snapshot_is_pending_brings_every_type_up_to_date() {
    let first = snapshot(1, None, BASE);
    let mut stream = synced(&first);
    let rotated: Vec<Item<'_>> =
        BASE.iter().map(|&(t, n, b)| if t == Secret || t == Route { (t, n, "new") } else { (t, n, b) }).collect();
    let second = snapshot(2, Some(&first), &rotated);
    // A request for another type arrives with the new snapshot: the secret and the routes still go.
    stream.on_request(&request(Listener, &[], &first.of(Listener).version, "2"));
    let types: Vec<XdsType> = drain(&mut stream, &second).iter().map(|r| r.xds_type).collect();
    assert_eq!(types, [Secret, Route]);
}

#[test]
fn first_answers_follow_push_order_whichever_type_is_asked_first() {
    let snap = snapshot(1, None, BASE);
    let mut stream = ads();
    for (xds_type, names) in [(Route, vec!["r"]), (Listener, vec![]), (Secret, vec!["s"]), (Cluster, vec![])] {
        assert_eq!(stream.on_request(&request(xds_type, &names, "", "")), RequestOutcome::default());
    }
    let types: Vec<XdsType> = drain(&mut stream, &snap).iter().map(|r| r.xds_type).collect();
    assert_eq!(types, XdsType::PUSH_ORDER.into_iter().filter(|t| *t != XdsType::Endpoint).collect::<Vec<_>>());
}

#[test]
fn a_per_type_service_answers_requests_without_a_type_url_and_refuses_other_types() {
    let snap = snapshot(1, None, BASE);
    let mut stream = SotwStream::new(Some(Cluster));
    let mut untyped = request(Cluster, &[], "", "");
    untyped.type_url.clear();
    assert_eq!(only(ask(&mut stream, &untyped, &snap)).xds_type, Cluster);
    let outcome = stream.on_request(&request(Listener, &[], "", ""));
    assert!(outcome.error.unwrap().contains("ClusterDiscoveryService"));
}

#[test]
fn unknown_types_on_ads_are_ignored() {
    let mut stream = ads();
    let mut unknown = request(Cluster, &[], "", "");
    unknown.type_url = "type.googleapis.com/envoy.service.runtime.v3.Runtime".into();
    let outcome = stream.on_request(&unknown);
    assert_eq!((outcome.ignored, outcome.error), (1, None));
}

#[test]
fn a_client_back_with_a_known_version_gets_nothing_it_already_holds() {
    let snap = snapshot(1, None, BASE);
    let version = snap.of(Cluster).version.clone();
    let mut stream = ads();
    assert!(ask(&mut stream, &request(Cluster, &[], &version, ""), &snap).is_empty());
    // Not so for named types: Envoy keeps their version after dropping what nothing names.
    let secrets = only(ask(&mut ads(), &request(Secret, &["s"], "", ""), &snap)).version;
    assert_eq!(names(&only(ask(&mut stream, &request(Secret, &["s"], &secrets, ""), &snap))), ["s"]);
}

#[test]
fn a_client_back_with_a_recent_version_keeps_its_clusters_until_the_routes_moved() {
    let first = snapshot(1, None, BASE);
    let held = first.of(Cluster).version.clone();
    let second = snapshot(2, Some(&first), &[(Cluster, "b", "b1"), (Cluster, "c", "c1"), (Route, "r", "r2")]);
    let mut stream = ads();
    stream.on_request(&request(Cluster, &[], &held, ""));
    stream.on_request(&request(Route, &["r"], "", ""));
    let steps: Vec<(XdsType, Vec<String>)> =
        drain(&mut stream, &second).iter().map(|r| (r.xds_type, names(r))).collect();
    assert_eq!(
        steps,
        [
            (Cluster, vec!["a".to_string(), "b".into(), "c".into()]),
            (Route, vec!["r".into()]),
            (Cluster, vec!["b".into(), "c".into()]),
        ]
    );
}

#[test]
fn a_first_named_answer_waits_while_a_name_the_client_may_hold_is_missing() {
    let snap = snapshot(1, None, &[(Secret, "s", "s1")]);
    let mut stream = ads();
    // It may hold `gone` from elsewhere: answering only `s` would be a NACK.
    assert!(ask(&mut stream, &request(Secret, &["gone", "s"], "v-from-elsewhere", ""), &snap).is_empty());
    // Once it lets go of `gone`, `s` is answered.
    assert_eq!(names(&only(ask(&mut stream, &request(Secret, &["s"], "v-from-elsewhere", ""), &snap))), ["s"]);
}

proptest::proptest! {
    // A fixed seed: CI runs the same cases every time.
    #![proptest_config(proptest::test_runner::Config {
        rng_seed: proptest::test_runner::RngSeed::Fixed(16),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })]

    /// The side-by-side walk finds exactly the names sent and no longer held, whatever the two
    /// sets are (it replaced a set of every name, built on each ask).
    #[test]
    fn what_vanishes_is_what_was_sent_and_is_held_no_longer(
        now in proptest::collection::btree_set("[a-d]{1,3}", 0..16),
        then in proptest::collection::btree_set("[a-d]{1,3}", 0..16),
    ) {
        let of = |names: &BTreeSet<String>| {
            let items: Vec<Item<'_>> = names.iter().map(|name| (Cluster, name.as_str(), "body")).collect();
            snapshot(1, None, &items).of(Cluster).clone()
        };
        let (held, sent) = (of(&now), of(&then));
        let found: Vec<String> =
            vanished(held.entries.values(), sent.entries.values()).iter().map(|e| e.name.to_string()).collect();
        let expected: Vec<String> = then.difference(&now).cloned().collect();
        proptest::prop_assert_eq!(found, expected);
    }
}
