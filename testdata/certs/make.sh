#!/usr/bin/env bash
# Makes the long-lived, test-only certificates the golden cases and examples use.
# They are committed so golden files stay byte-identical; rerun only to replace them (then run
# UPDATE_GOLDEN=1 cargo test --test golden). Never use these anywhere but tests.
set -euo pipefail
cd "$(dirname "$0")"
days=36500

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name subject
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -out "$1.crt" -days $days -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}

leaf() { # name ca subject san usage
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "$3"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' "$5" "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -out "$1.crt" -days $days -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

ca ca "/CN=ambassador-xds test CA"
ca other-ca "/CN=ambassador-xds other test CA"
leaf client ca "/O=ambassador-xds tests/CN=envoy-client" "DNS:envoy-client" clientAuth
leaf client2 ca "/O=ambassador-xds tests/CN=envoy-client-rotated" "DNS:envoy-client-rotated" clientAuth
leaf upstream ca "/CN=upstream-service" "DNS:upstream-service,DNS:localhost,IP:127.0.0.1" serverAuth
leaf rogue-upstream other-ca "/CN=upstream-service" "DNS:upstream-service,DNS:localhost,IP:127.0.0.1" serverAuth
rm -f ./*.srl

# Consul Connect's shapes (testdata/consul-*): a CA whose URI SAN is its SPIFFE trust domain and
# the leaf Consul issues to the service `ambassador`, as `ambassador-xds consul-connect` stores
# them in the Secret `ambassador-consul-connect`.
td=11111111-2222-3333-4444-555555555555.consul
key consul-ca.key
openssl req -x509 -new -key consul-ca.key -out consul-ca.crt -days $days -subj "/CN=Consul CA 7" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectAltName=URI:spiffe://$td"
leaf consul-ambassador consul-ca "/CN=ambassador" "URI:spiffe://$td/ns/default/dc/dc1/svc/ambassador" clientAuth,serverAuth
rm -f ./*.srl
