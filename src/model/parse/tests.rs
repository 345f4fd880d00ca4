//! Parsing tests: one case per form, kind and failure.

use super::*;
use crate::diagnostic::ResourceId;

fn parse(text: &str) -> (Model, Vec<String>) {
    let (model, diagnostics) = parse_documents("test.yaml", text);
    (model, diagnostics.iter().map(ToString::to_string).collect())
}

#[test]
fn crd_form_defaults_namespace() {
    let (model, diags) =
        parse("apiVersion: getambassador.io/v2\nkind: Mapping\nmetadata: {name: m}\nspec: {prefix: /a/, service: s}\n");
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(model.mappings[0].meta.id, ResourceId::new("Mapping", "default", "m"));
    assert_eq!(model.mappings[0].spec.prefix.as_deref(), Some("/a/"));
}

#[test]
fn flat_form_without_api_version() {
    let (model, diags) = parse("kind: TLSContext\nname: upstream-context\nhosts: []\nsecret: upstream-certs\n");
    assert!(diags.is_empty(), "{diags:?}");
    let ctx = &model.tls_contexts[0];
    assert_eq!(ctx.meta.name(), "upstream-context");
    assert_eq!(ctx.spec.secret.as_deref(), Some("upstream-certs"));
    assert_eq!(ctx.spec.hosts, Some(vec![]));
}

#[test]
fn service_annotation_takes_service_namespace() {
    let text = r#"
apiVersion: v1
kind: Service
metadata:
  name: qotm
  namespace: shop
  annotations:
    getambassador.io/config: |
      ---
      apiVersion: ambassador/v1
      kind: Mapping
      name: qotm
      prefix: /qotm/
      service: qotm
"#;
    let (model, diags) = parse(text);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(model.mappings[0].meta.id, ResourceId::new("Mapping", "shop", "qotm"));
}

#[test]
fn secret_data_and_string_data() {
    let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: aGVsbG8=\nstringData:\n  tls.key: world\n";
    let (model, diags) = parse(text);
    assert!(diags.is_empty(), "{diags:?}");
    let secret = &model.secrets[0].spec;
    assert_eq!(secret.cert_chain(), Some(("tls.crt", &b"hello"[..])));
    assert_eq!(secret.private_key(), Some(("tls.key", &b"world"[..])));
    assert!(!format!("{secret:?}").contains("world"), "Debug must not print secret values");
}

#[test]
fn bad_base64_is_a_diagnostic() {
    let (model, diags) = parse("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {tls.crt: '!!!'}\n");
    assert!(model.secrets.is_empty());
    assert_eq!(diags.len(), 1);
    assert!(diags[0].contains("Secret default/s") && diags[0].contains("not valid base64"), "{diags:?}");
}

#[test]
fn unknown_fields_warn_and_keep_the_resource() {
    let (model, diags) = parse("apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: m}\nspec: {prefix: /, service: s, hosname: x, cors: {origins: '*', colour: blue}}\n");
    assert_eq!(model.mappings.len(), 1);
    assert_eq!(
        diags,
        vec![
            "warning: test.yaml (document 0): Mapping default/m: field `spec.hosname` is not supported by ambassador-xds; ignored",
            "warning: test.yaml (document 0): Mapping default/m: field `spec.cors.colour` is not supported by ambassador-xds; ignored",
        ]
    );
}

#[test]
fn fields_are_looked_up_in_the_field_table() {
    use crate::model::fields::Support;
    let (model, diags) = parse("kind: Mapping\nname: m\nprefix: /\nservice: s\ndocs: {path: /x}\nload_balancer: {policy: round_robin}\nlabels: {a: []}\n");
    assert_eq!(diags, vec!["warning: test.yaml (document 0): Mapping default/m: field `docs` has no effect in ambassador-xds (developer-portal metadata); ignored"]);
    let mut decided: Vec<(&str, Support)> =
        model.mappings[0].spec.unimplemented.iter().map(|f| (f.field.as_str(), f.support)).collect();
    decided.sort_by_key(|(field, _)| *field);
    assert_eq!(decided, [("labels", Support::IgnoredUnless("RateLimitService"))]);
    assert_eq!(model.mappings[0].spec.load_balancer.as_ref().and_then(|lb| lb.policy.as_deref()), Some("round_robin"));
}

#[test]
fn modules_tcp_mappings_and_skipped_kinds() {
    let text = "---\nkind: Module\nname: ambassador\nconfig: {use_remote_address: false, lua_scripts: x, gzip: {}}\n---\nkind: Module\nname: tls\nconfig: {}\n---\napiVersion: getambassador.io/v3alpha1\nkind: TCPMapping\nmetadata: {name: t}\nspec: {port: 2222, service: db:5432}\n---\napiVersion: getambassador.io/v3alpha1\nkind: AuthService\nmetadata: {name: auth}\nspec: {auth_service: a, ambassador_id: [other]}\n";
    let (model, diags) = parse(text);
    assert_eq!(model.modules.len(), 1);
    assert_eq!(model.modules[0].spec.config.use_remote_address, Some(false));
    assert_eq!(model.modules[0].spec.config.unimplemented[0].field, "lua_scripts");
    assert!(diags[0].contains("`config.gzip` has no effect"), "{diags:?}");
    assert!(diags[1].contains("only the `ambassador` Module is read"), "{diags:?}");
    assert_eq!(model.tcp_mappings[0].spec.port, Some(2222));
    assert_eq!(model.skipped.len(), 2, "the tls Module and the AuthService");
    assert_eq!(model.skipped[1].ambassador_id, Some(vec!["other".to_string()]));
}

#[test]
fn wrong_types_drop_the_resource_with_its_name() {
    let (model, diags) =
        parse("apiVersion: getambassador.io/v2\nkind: Mapping\nmetadata: {name: m}\nspec: {prefix: [1], service: s}\n");
    assert!(model.mappings.is_empty());
    assert!(diags[0].starts_with("error: test.yaml (document 0): Mapping default/m: invalid spec"), "{diags:?}");
}

#[test]
fn syntax_error_costs_only_its_document_and_names_the_file_line() {
    let text = "kind: Mapping\nname: a\nprefix: /a/\nservice: a\n---\nkind: [\n---\nkind: Mapping\nname: b\nprefix: /b/\nservice: b\n";
    let (model, diags) = parse(text);
    assert_eq!(model.mappings.len(), 2);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(diags[0].starts_with("error: test.yaml (document 1): unparseable YAML"), "{diags:?}");
    assert!(diags[0].contains("line 7"), "line numbers count from the top of the file: {diags:?}");
}

#[test]
fn large_files_parse_in_parallel_with_stable_document_numbers() {
    let doc =
        |i: usize| format!("---\nkind: Mapping\nname: m{i}\nprefix: /m{i}/\nservice: s{i}\n# {}\n", "x".repeat(200));
    let text: String = (0..2000).map(doc).collect::<String>() + "---\nkind: [\n";
    assert!(text.len() > yaml::PARALLEL_THRESHOLD);
    let (model, diags) = parse_documents("big.yaml", &text);
    assert_eq!(model.mappings.len(), 2000);
    assert!(model
        .mappings
        .iter()
        .enumerate()
        .all(|(i, m)| m.meta.origin.document == i && m.meta.name() == format!("m{i}")));
    assert_eq!(diags[0].origin.as_ref().unwrap().document, 2000);
}

#[test]
fn other_api_groups_are_skipped_quietly() {
    let (model, diags) = parse("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n");
    assert_eq!(model, Model::default());
    assert!(diags.is_empty());
}

#[test]
fn unknown_ambassador_version_is_an_error() {
    let (_, diags) = parse("apiVersion: getambassador.io/v9\nkind: Mapping\nmetadata: {name: m}\n");
    assert!(diags[0].contains("unsupported apiVersion `getambassador.io/v9`"), "{diags:?}");
}

#[test]
fn the_inventory_lists_every_kind_read() {
    let text = "---\nkind: Mapping\nname: m\nprefix: /\nservice: s\nresolver: consul-dc1\n---\napiVersion: getambassador.io/v3alpha1\nkind: ConsulResolver\nmetadata: {name: consul-dc1}\nspec: {datacenter: dc1}\n---\nkind: KubernetesEndpointResolver\nname: endpoint\n---\nkind: Module\nname: ambassador\nconfig: {}\n---\nkind: TCPMapping\nname: t\nport: 2222\nservice: db\n---\nkind: AuthService\nname: auth\nauth_service: a\n";
    let (model, _) = parse(text);
    let kinds: Vec<String> = model.inventory().into_iter().map(|p| p.resource.kind.to_string()).collect();
    assert_eq!(
        kinds,
        ["Mapping", "Module", "TCPMapping", "ConsulResolver", "KubernetesEndpointResolver", "AuthService"]
    );
}
