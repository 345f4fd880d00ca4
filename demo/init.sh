#!/usr/bin/env bash
# The demo's one-shot setup, shared by docker-compose.yml (the `demo-init` service) and scripts/demo:
#
#   demo/init.sh CONFIG_DIR STATE_DIR
#
# STATE_DIR/certs/  a demo CA, the upstream's server certificate, Envoy's client certificate and
#                   Envoy's own server certificate for its HTTPS front door (localhost)
#                   (EC P-256, made once; kept while the files exist)
# STATE_DIR/upstream-envoy.yaml
#                   the upstream's Envoy config, rendered from upstream-envoy.yaml.in beside this
#                   script: TLS on DEMO_UPSTREAM_ADDRESS:DEMO_UPSTREAM_PORT, client certificate
#                   required (signed by the demo CA), answers with the client certificate's subject
# CONFIG_DIR/       what ambassador-xds serves, the seed example of the Ambassador mTLS docs:
#   secret.yaml       kubernetes.io/tls Secret `upstream-certs` holding Envoy's client certificate
#                     (rewritten on every run, so it always matches STATE_DIR/certs)
#   tls-context.yaml  TLSContext `upstream-context`: hosts: [], secret: upstream-certs
#   mapping.yaml      Mapping `upstream-mapping`: prefix /upstream/ -> DEMO_UPSTREAM_SERVICE with
#                     tls: upstream-context (written only when missing, so your edits survive)
#   listeners.yaml    the HTTPS front door: Listeners for cleartext HTTP on DEMO_LISTENER_PORT and
#                     HTTPS on DEMO_HTTPS_PORT (rewritten on every run, from the environment)
#   front-door-secret.yaml
#                     kubernetes.io/tls Secret `front-door-cert`: Envoy's server certificate
#                     (rewritten on every run)
#   host.yaml         Host `front-door`: every host name, the certificate front-door-cert, cleartext
#                     requests routed too (written only when missing)
#
# Every file is world-readable: the control plane and the upstream run as other users (in Docker,
# non-root users of their images). These are throwaway demo keys; never use them for anything real.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 CONFIG_DIR STATE_DIR" >&2
  exit 2
fi
config_dir=$1
state_dir=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

upstream_service=${DEMO_UPSTREAM_SERVICE:-upstream:8443}
upstream_address=${DEMO_UPSTREAM_ADDRESS:-0.0.0.0}
upstream_port=${DEMO_UPSTREAM_PORT:-8443}
upstream_admin_port=${DEMO_UPSTREAM_ADMIN_PORT:-9901}
listener_port=${DEMO_LISTENER_PORT:-8080}
https_port=${DEMO_HTTPS_PORT:-8443}
days=825

umask 022
certs=$state_dir/certs
mkdir -p "$config_dir" "$certs"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

leaf() { # name subject subjectAltName extendedKeyUsage
  key "$certs/$1.key"
  openssl req -new -key "$certs/$1.key" -subj "$2" -out "$certs/$1.csr"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
    "$4" "$3" >"$certs/$1.ext"
  openssl x509 -req -in "$certs/$1.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" -CAcreateserial \
    -days $days -extfile "$certs/$1.ext" -out "$certs/$1.crt" 2>/dev/null
  rm -f "$certs/$1.csr" "$certs/$1.ext" "$certs/ca.srl"
}

if [ -s "$certs/ca.crt" ] && [ -s "$certs/upstream.crt" ] && [ -s "$certs/client.crt" ]; then
  echo "demo-init: keeping the certificates in $certs"
else
  echo "demo-init: making a demo CA, the upstream's server certificate and Envoy's client certificate in $certs"
  rm -f "$certs/front-door.crt"
  key "$certs/ca.key"
  openssl req -x509 -new -key "$certs/ca.key" -subj "/CN=ambassador-xds demo CA" -days $days \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$certs/ca.crt"
  leaf upstream "/CN=upstream" "DNS:upstream,DNS:localhost,IP:127.0.0.1" serverAuth
  leaf client "/O=ambassador-xds demo/CN=envoy-client" "DNS:envoy-client" clientAuth
fi
if [ ! -s "$certs/front-door.crt" ]; then
  echo "demo-init: making Envoy's server certificate for the HTTPS front door in $certs"
  leaf front-door "/CN=localhost" "DNS:localhost,DNS:envoy,IP:127.0.0.1" serverAuth
fi
chmod 0644 "$certs"/*

sed -e "s|@UPSTREAM_ADDRESS@|$upstream_address|g" \
  -e "s|@UPSTREAM_PORT@|$upstream_port|g" \
  -e "s|@UPSTREAM_ADMIN_PORT@|$upstream_admin_port|g" \
  "$here/upstream-envoy.yaml.in" >"$state_dir/upstream-envoy.yaml"

# Writes stdin to a file in CONFIG_DIR through a temporary file and a rename, so the watching
# control plane never reads half a file.
write_config() {
  cat >"$config_dir/.$1.tmp"
  chmod 0644 "$config_dir/.$1.tmp"
  # Under Docker this runs as root in a directory bind-mounted from the host: give the files to the
  # directory's owner, so that you can edit them on the host (Docker Desktop's file sharing may
  # refuse; ownership there is the host user's anyway).
  if [ "$(id -u)" = 0 ]; then
    chown "$(stat -c %u:%g "$config_dir")" "$config_dir/.$1.tmp" 2>/dev/null || true
  fi
  mv -f "$config_dir/.$1.tmp" "$config_dir/$1"
}

b64() { base64 <"$1" | tr -d '\n'; }

write_config secret.yaml <<YAML
# Envoy's client certificate (made by demo/init.sh; rewritten on every run).
apiVersion: v1
kind: Secret
metadata:
  name: upstream-certs
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$certs/client.crt")
  tls.key: $(b64 "$certs/client.key")
YAML

write_config front-door-secret.yaml <<YAML
# Envoy's server certificate for the HTTPS front door (made by demo/init.sh; rewritten on every run).
apiVersion: v1
kind: Secret
metadata:
  name: front-door-cert
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$certs/front-door.crt")
  tls.key: $(b64 "$certs/front-door.key")
YAML

write_config listeners.yaml <<YAML
# Envoy's front door, as Emissary's quick start writes it: cleartext HTTP and HTTPS (rewritten on
# every run from DEMO_LISTENER_PORT and DEMO_HTTPS_PORT).
---
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata:
  name: front-door-http
spec:
  port: $listener_port
  protocol: HTTP
  securityModel: XFP
  hostBinding:
    namespace:
      from: ALL
---
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata:
  name: front-door-https
spec:
  port: $https_port
  protocol: HTTPS
  securityModel: XFP
  hostBinding:
    namespace:
      from: ALL
YAML

if [ ! -e "$config_dir/host.yaml" ]; then
  write_config host.yaml <<'YAML'
# Every host name, over HTTPS with the certificate in Secret front-door-cert; cleartext requests
# are routed too (set `action: Redirect` to send them to https:// instead).
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata:
  name: front-door
spec:
  hostname: "*"
  tlsSecret:
    name: front-door-cert
  requestPolicy:
    insecure:
      action: Route
YAML
fi

if [ ! -e "$config_dir/tls-context.yaml" ]; then
  write_config tls-context.yaml <<'YAML'
# Origination context: Envoy presents the certificate in Secret upstream-certs to upstreams of
# every Mapping that says `tls: upstream-context`.
apiVersion: getambassador.io/v2
kind: TLSContext
metadata:
  name: upstream-context
spec:
  hosts: []
  secret: upstream-certs
YAML
fi

if [ ! -e "$config_dir/mapping.yaml" ]; then
  write_config mapping.yaml <<YAML
# Edit me: ambassador-xds sees the change and Envoy picks it up within a second.
apiVersion: getambassador.io/v2
kind: Mapping
metadata:
  name: upstream-mapping
spec:
  prefix: /upstream/
  service: $upstream_service
  tls: upstream-context
YAML
fi

if ! grep -q "service: $upstream_service\$" "$config_dir/mapping.yaml"; then
  echo "demo-init: note: $config_dir/mapping.yaml (yours, kept) does not send to $upstream_service;" \
    "delete it to get the default Mapping back" >&2
fi
echo "demo-init: Ambassador config in $config_dir, upstream config in $state_dir/upstream-envoy.yaml"
