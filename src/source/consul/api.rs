//! The answers of the agent endpoints used here, in Consul's own (PascalCase) JSON shape. Only
//! the fields read are declared; everything else Consul sends is ignored.

use serde::Deserialize;

/// `GET /v1/agent/connect/ca/roots`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CaRoots {
    #[serde(rename = "ActiveRootID")]
    pub active_root_id: String,
    pub trust_domain: String,
    #[serde(default)]
    pub roots: Vec<CaRoot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CaRoot {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub root_cert: String,
    #[serde(default)]
    pub active: bool,
}

/// `GET /v1/agent/connect/ca/leaf/<service>`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LeafCert {
    #[serde(default)]
    pub serial_number: String,
    #[serde(rename = "CertPEM")]
    pub cert_pem: String,
    #[serde(rename = "PrivateKeyPEM")]
    pub private_key_pem: String,
    #[serde(default)]
    pub service: String,
    #[serde(rename = "ServiceURI", default)]
    pub service_uri: String,
    #[serde(default)]
    pub valid_before: String,
}

impl std::fmt::Debug for LeafCert {
    // The private key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafCert")
            .field("serial_number", &self.serial_number)
            .field("service", &self.service)
            .field("service_uri", &self.service_uri)
            .field("valid_before", &self.valid_before)
            .finish_non_exhaustive()
    }
}

/// One entry of `GET /v1/health/service/<service>` and `/v1/health/connect/<service>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthEntry {
    pub node: Node,
    pub service: AgentService,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Node {
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentService {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(default)]
    pub service: String,
    /// Empty when the instance registered none: the node's address is used (as Consul's docs and
    /// Emissary do).
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub port: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consul_documented_shapes_parse() {
        let roots: CaRoots = serde_json::from_str(
            r#"{"ActiveRootID":"c7:bd","TrustDomain":"7f42f496.consul","Roots":[{"ID":"c7:bd","Name":"Consul CA Root Cert","SerialNumber":7,"SigningKeyID":"2d:09","NotBefore":"2018-05-25T21:39:23Z","NotAfter":"2028-05-22T21:39:23Z","RootCert":"-----BEGIN CERTIFICATE-----\n","IntermediateCerts":null,"Active":true,"CreateIndex":8,"ModifyIndex":8}]}"#,
        )
        .unwrap();
        assert_eq!((roots.roots[0].id.as_str(), roots.roots[0].active), ("c7:bd", true));
        let leaf: LeafCert = serde_json::from_str(
            r#"{"SerialNumber":"60:26","CertPEM":"-----BEGIN CERTIFICATE-----","PrivateKeyPEM":"-----BEGIN EC PRIVATE KEY-----","Service":"web","ServiceURI":"spiffe://7f42f496.consul/ns/default/dc/dc1/svc/web","ValidAfter":"2018-05-25T21:39:23Z","ValidBefore":"2018-05-28T21:39:23Z","CreateIndex":5,"ModifyIndex":5}"#,
        )
        .unwrap();
        assert!(!format!("{leaf:?}").contains("PRIVATE"));
        let health: Vec<HealthEntry> = serde_json::from_str(
            r#"[{"Node":{"ID":"40e4a748","Node":"foobar","Address":"10.1.10.12","Datacenter":"dc1"},"Service":{"ID":"redis","Service":"redis","Tags":[],"Address":"","Port":8000,"Weights":{"Passing":10,"Warning":1}},"Checks":[{"Status":"passing"}]}]"#,
        )
        .unwrap();
        assert_eq!((health[0].node.address.as_str(), health[0].service.port), ("10.1.10.12", 8000));
    }
}
