#!/usr/bin/env bash
# Makes the test-only certificates of TLS at the edge (Hosts, client certificates, a CRL), signed
# by ca / other-ca from make.sh (run that first only to replace everything). Committed so golden
# files stay byte-identical; rerun only to replace them (then UPDATE_GOLDEN=1 cargo test --test
# golden). Never use these anywhere but tests.
set -euo pipefail
cd "$(dirname "$0")"
days=36500

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

leaf() { # name ca subject san usage
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "$3"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' "$5" "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -out "$1.crt" -days $days -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

# Server certificates for Hosts; the CN says which one was presented (the SAN is what clients check).
leaf a-example ca "/CN=a.example.com" "DNS:a.example.com" serverAuth
leaf a-example-rotated ca "/CN=a.example.com rotated" "DNS:a.example.com" serverAuth
leaf b-example ca "/CN=b.example.com" "DNS:b.example.com" serverAuth
leaf wildcard-example ca "/CN=wildcard.example.com" "DNS:*.example.com" serverAuth
# Client certificates: one another CA signed, one this CA signed and then revoked.
leaf rogue-client other-ca "/O=ambassador-xds tests/CN=rogue-client" "DNS:rogue-client" clientAuth
leaf revoked-client ca "/O=ambassador-xds tests/CN=revoked-client" "DNS:revoked-client" clientAuth

# ca.crl: ca's revocation list, revoking revoked-client.
state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
touch "$state/index.txt"
echo 01 > "$state/crlnumber"
cat > "$state/ca.cnf" <<CNF
[ ca ]
default_ca = test_ca
[ test_ca ]
database = $state/index.txt
crlnumber = $state/crlnumber
default_md = sha256
default_crl_days = $days
CNF
openssl ca -config "$state/ca.cnf" -keyfile ca.key -cert ca.crt -revoke revoked-client.crt 2>/dev/null
openssl ca -config "$state/ca.cnf" -keyfile ca.key -cert ca.crt -gencrl -out ca.crl 2>/dev/null
rm -f ./*.srl
