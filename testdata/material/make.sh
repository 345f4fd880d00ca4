#!/usr/bin/env bash
# Makes the certificate/key/CA variants of the material differential test (tests/material_oracle.rs)
# into variants/<name>/: `tls.crt` + `tls.key` for a client certificate, `ca.crt` for a CA bundle.
# Each is a shape a user can hand a TLSContext; the test asks a real Envoy whether it loads it.
# The outputs are committed (RSA 8192 takes a while); rerun to regenerate: testdata/material/make.sh
set -euo pipefail
cd "$(dirname "$0")"
rm -rf variants work && mkdir -p variants work
W=work
q() { "$@" 2>/dev/null >/dev/null; }

# --- CAs -----------------------------------------------------------------------------------------
cat > $W/ca.ext <<'X'
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
X
cat > $W/leaf.ext <<'X'
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
X
cat > $W/critical.ext <<'X'
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
1.3.6.1.4.1.55555.1 = critical, ASN1:UTF8String:ambassador-xds test extension
X
cat > $W/ec-keyagreement.ext <<'X'
basicConstraints = CA:FALSE
keyUsage = critical, keyAgreement
X
q openssl req -x509 -newkey rsa:2048 -nodes -keyout $W/ca.key -out $W/ca.crt -days 36500 \
  -subj "/CN=material test CA" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
q openssl req -new -newkey rsa:2048 -nodes -keyout $W/int.key -out $W/int.csr -subj "/CN=material test intermediate"
q openssl x509 -req -in $W/int.csr -CA $W/ca.crt -CAkey $W/ca.key -set_serial 2 -days 36500 -extfile $W/ca.ext -out $W/int.crt
# A v1 CA: `openssl x509 -req` without extensions, as the common recipes make them.
q openssl req -new -newkey rsa:2048 -nodes -keyout $W/v1ca.key -out $W/v1ca.csr -subj "/CN=material test v1 CA"
q openssl x509 -req -in $W/v1ca.csr -signkey $W/v1ca.key -days 36500 -out $W/v1ca.crt

# leaf NAME KEYFILE [EXTFILE|-] [ISSUER] [x509 options...]: signs a client certificate for KEYFILE.
leaf() {
  local name=$1 key=$2 ext=$3 issuer=${4:-ca}; shift 4 || shift $#
  q openssl req -new -key "$key" -out $W/$name.csr -subj "/CN=$name"
  local extargs=()
  [ "$ext" != - ] && extargs=(-extfile "$ext")
  q openssl x509 -req -in $W/$name.csr -CA $W/$issuer.crt -CAkey $W/$issuer.key -set_serial "0x$(openssl rand -hex 8)" \
    -days 36500 "${extargs[@]}" "$@" -out $W/$name.crt
}
# put NAME CERT KEY: one certificate variant.
put() { mkdir -p variants/$1; cp "$2" variants/$1/tls.crt; cp "$3" variants/$1/tls.key; }
putca() { mkdir -p variants/$1; cp "$2" variants/$1/ca.crt; }

# --- keys --------------------------------------------------------------------------------------------
for bits in 1024 2048 4096 8192; do q openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:$bits -out $W/rsa$bits.key; done
q openssl genpkey -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048 -out $W/rsapss.key
for curve in P-256 P-384 P-521 secp256k1; do q openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:$curve -out $W/ec-$curve.key; done
q openssl genpkey -algorithm ED25519 -out $W/ed25519.key
q openssl genpkey -algorithm ED448 -out $W/ed448.key

# --- leaves ------------------------------------------------------------------------------------------
leaf rsa2048-v3 $W/rsa2048.key $W/leaf.ext ca
leaf rsa2048-v1 $W/rsa2048.key - ca
for bits in 1024 4096 8192; do leaf rsa$bits $W/rsa$bits.key $W/leaf.ext ca; done
leaf rsapss $W/rsapss.key $W/leaf.ext ca
for curve in P-256 P-384 P-521 secp256k1; do leaf ec-$curve $W/ec-$curve.key $W/leaf.ext ca; done
leaf ed25519 $W/ed25519.key $W/leaf.ext ca
leaf ed448 $W/ed448.key $W/leaf.ext ca
leaf critical-unknown-ext $W/rsa2048.key $W/critical.ext ca
leaf ec-keyagreement-only $W/ec-P-256.key $W/ec-keyagreement.ext ca
leaf from-intermediate $W/rsa2048.key $W/leaf.ext int
leaf signed-by-v1-ca $W/rsa2048.key - v1ca
# Validity in the past and in the future: `openssl ca` is the one tool here that takes both dates.
mkdir -p $W/ca-db && : > $W/ca-db/index.txt && echo 1000 > $W/ca-db/serial
cat > $W/ca.cnf <<X
[ca]
default_ca = test
[test]
database = $W/ca-db/index.txt
serial = $W/ca-db/serial
new_certs_dir = $W/ca-db
default_md = sha256
policy = anything
unique_subject = no
[anything]
commonName = supplied
X
q openssl ca -config $W/ca.cnf -batch -notext -cert $W/ca.crt -keyfile $W/ca.key -in $W/rsa2048-v3.csr \
  -startdate 20000101000000Z -enddate 20010101000000Z -out $W/expired.crt
q openssl ca -config $W/ca.cnf -batch -notext -cert $W/ca.crt -keyfile $W/ca.key -in $W/rsa2048-v3.csr \
  -startdate 21000101000000Z -enddate 21010101000000Z -out $W/not-yet-valid.crt

K=$W/rsa2048.key
C=$W/rsa2048-v3.crt
put rsa2048-v3-pkcs8 $C $K
put rsa2048-v1 $W/rsa2048-v1.crt $K
put rsa1024 $W/rsa1024.crt $W/rsa1024.key
put rsa4096 $W/rsa4096.crt $W/rsa4096.key
put rsa8192 $W/rsa8192.crt $W/rsa8192.key
put rsa-pss $W/rsapss.crt $W/rsapss.key
for curve in P-256 P-384 P-521 secp256k1; do put ec-$curve $W/ec-$curve.crt $W/ec-$curve.key; done
put ed25519-pkcs8-v1 $W/ed25519.crt $W/ed25519.key
put ed448 $W/ed448.crt $W/ed448.key
put critical-unknown-extension $W/critical-unknown-ext.crt $K
put ec-key-agreement-only $W/ec-keyagreement-only.crt $W/ec-P-256.key
put signed-by-v1-ca $W/signed-by-v1-ca.crt $K
put expired $W/expired.crt $K
put not-yet-valid $W/not-yet-valid.crt $K
# Soundness of the oracle: a key that is not the certificate's.
put mismatched-key $C $W/rsa4096.key

# Key encodings.
openssl rsa -in $K -traditional -out $W/rsa-pkcs1.key 2>/dev/null
put rsa-pkcs1 $C $W/rsa-pkcs1.key
openssl ec -in $W/ec-P-256.key -out $W/ec-sec1.key 2>/dev/null
put ec-sec1 $W/ec-P-256.crt $W/ec-sec1.key
openssl ec -in $W/ec-P-256.key -param_out -out $W/ec-params-sec1.key 2>/dev/null
{ openssl ecparam -name prime256v1; cat $W/ec-sec1.key; } > $W/ec-params-prefix.key
put ec-parameters-prefix $W/ec-P-256.crt $W/ec-params-prefix.key
openssl ec -in $W/ec-P-256.key -no_public -out $W/ec-nopub-sec1.key 2>/dev/null
put ec-sec1-without-public-key $W/ec-P-256.crt $W/ec-nopub-sec1.key
openssl pkcs8 -topk8 -nocrypt -in $W/ec-nopub-sec1.key -out $W/ec-nopub-pkcs8.key 2>/dev/null
put ec-pkcs8-without-public-key $W/ec-P-256.crt $W/ec-nopub-pkcs8.key
openssl pkcs8 -topk8 -in $K -v2 aes-256-cbc -passout pass:secret -out $W/enc-pkcs8.key 2>/dev/null
put encrypted-pkcs8 $C $W/enc-pkcs8.key
openssl rsa -in $K -traditional -aes128 -passout pass:secret -out $W/enc-legacy.key 2>/dev/null
put encrypted-legacy-pem $C $W/enc-legacy.key
# Ed25519 as PKCS#8 v2 (OneAsymmetricKey with the public key), which OpenSSL 3.0 does not write.
python3 - "$W/ed25519.key" "$W/ed25519-v2.key" <<'PY'
import base64, subprocess, sys
src, dst = sys.argv[1], sys.argv[2]
der = subprocess.run(["openssl", "pkey", "-in", src, "-outform", "DER"], capture_output=True, check=True).stdout
pub = subprocess.run(["openssl", "pkey", "-in", src, "-pubout", "-outform", "DER"], capture_output=True, check=True).stdout[-32:]
seed = der[-32:]
def tlv(tag, body):
    assert len(body) < 128
    return bytes([tag, len(body)]) + body
body = tlv(0x02, b"\x01") + tlv(0x30, tlv(0x06, bytes.fromhex("2b6570"))) + tlv(0x04, tlv(0x04, seed)) + tlv(0x81, b"\x00" + pub)
v2 = tlv(0x30, body)
text = base64.encodebytes(v2).decode().replace("\n", "")
with open(dst, "w") as f:
    f.write("-----BEGIN PRIVATE KEY-----\n" + "\n".join(text[i:i+64] for i in range(0, len(text), 64)) + "\n-----END PRIVATE KEY-----\n")
PY
put ed25519-pkcs8-v2 $W/ed25519.crt $W/ed25519-v2.key

# PEM shapes (python: exact bytes).
python3 - "$W" <<'PY'
import base64, os, re, subprocess, sys
w = sys.argv[1]
def read(p): return open(os.path.join(w, p), "rb").read()
def put(name, crt, key):
    d = os.path.join("variants", name); os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "tls.crt"), "wb").write(crt); open(os.path.join(d, "tls.key"), "wb").write(key)
def putca(name, ca):
    d = os.path.join("variants", name); os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "ca.crt"), "wb").write(ca)
crt, key, intc = read("rsa2048-v3.crt"), read("rsa2048.key"), read("int.crt")
leaf_int = read("from-intermediate.crt")
ca, v1ca = read("ca.crt"), read("v1ca.crt")
crlf = lambda b: b.replace(b"\n", b"\r\n")
put("crlf", crlf(crt), crlf(key))
put("tab-after-begin", crt.replace(b"CERTIFICATE-----\n", b"CERTIFICATE-----\t\n", 1), key)
put("spaces-after-begin", crt.replace(b"CERTIFICATE-----\n", b"CERTIFICATE-----   \n", 1), key)
put("key-tab-after-begin", crt, key.replace(b"KEY-----\n", b"KEY-----\t\n", 1))
put("comments-around-blocks", b"# client certificate\nsubject=CN=client\n" + crt + b"trailing words\n", b"# the key\n" + key + b"\n# end\n")
text = subprocess.run(["openssl", "x509", "-in", os.path.join(w, "rsa2048-v3.crt"), "-text"], capture_output=True, check=True).stdout
put("x509-text-output", text, key)
put("bom", b"\xef\xbb\xbf" + crt, key)
put("key-bom", crt, b"\xef\xbb\xbf" + key)
der = subprocess.run(["openssl", "x509", "-in", os.path.join(w, "rsa2048-v3.crt"), "-outform", "DER"], capture_output=True, check=True).stdout
keyder = subprocess.run(["openssl", "pkey", "-in", os.path.join(w, "rsa2048.key"), "-outform", "DER"], capture_output=True, check=True).stdout
put("der-certificate", der, key)
put("der-key", crt, keyder)
put("double-base64", base64.encodebytes(crt), key)
put("duplicated-begin-line", crt.replace(b"-----BEGIN CERTIFICATE-----\n", b"-----BEGIN CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n", 1), key)
put("x509-certificate-label", crt.replace(b"BEGIN CERTIFICATE", b"BEGIN X509 CERTIFICATE").replace(b"END CERTIFICATE", b"END X509 CERTIFICATE"), key)
trusted = subprocess.run(["openssl", "x509", "-in", os.path.join(w, "rsa2048-v3.crt"), "-trustout", "-addtrust", "clientAuth"], capture_output=True, check=True).stdout
put("trusted-certificate-leaf", trusted, key)
put("chain-in-order", leaf_int + intc, key)
put("chain-with-root", leaf_int + intc + ca, key)
put("chain-out-of-order", intc + leaf_int, key)
def corrupt(pem):
    # Break the outer DER SEQUENCE header: still base64, no longer a certificate.
    lines = pem.split(b"\n")
    lines[1] = b"AAAA" + lines[1][4:]
    return b"\n".join(lines)
def alter(pem):
    # Overwrite bytes in the middle of the body: still base64, maybe still DER (Envoy decides).
    lines = pem.split(b"\n"); mid = len(lines) // 2
    lines[mid] = lines[mid][:10] + (b"A" * 20) + lines[mid][30:]
    return b"\n".join(lines)
def truncate(pem):
    lines = pem.split(b"\n")
    return b"\n".join(lines[:5] + [l for l in lines if l.startswith(b"-----END")])
put("chain-corrupt-second", leaf_int + corrupt(intc), key)
put("chain-altered-second", leaf_int + alter(intc), key)
put("chain-truncated-second", leaf_int + truncate(intc), key)
put("chain-unterminated-second", leaf_int + intc[: len(intc) // 2], key)
put("corrupt-leaf", corrupt(crt), key)
put("key-in-chain-file", crt + key, key)
put("cert-and-key-in-both", crt + key, crt + key)
put("empty-chain", b"", key)
put("empty-key", crt, b"")
put("garbage-after-chain", crt + b"-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n", key)
put("no-final-newline", crt.rstrip(b"\n"), key.rstrip(b"\n"))
put("lowercase-label", crt.replace(b"CERTIFICATE", b"certificate"), key)
put("missing-end-line", crt.replace(b"-----END CERTIFICATE-----\n", b""), key)
put("leading-whitespace-lines", b"\n\n   \n" + crt, b"\n" + key)
put("indented-base64", b"\n".join((b"  " + l if l and not l.startswith(b"-----") else l) for l in crt.split(b"\n")), key)
# CA bundles.
putca("ca-v3", ca)
putca("ca-v1", v1ca)
putca("ca-bundle-two", ca + v1ca)
putca("ca-trusted-certificate", subprocess.run(["openssl", "x509", "-in", os.path.join(w, "ca.crt"), "-trustout", "-addtrust", "serverAuth"], capture_output=True, check=True).stdout)
putca("ca-x509-certificate-label", ca.replace(b"CERTIFICATE", b"X509 CERTIFICATE"))
putca("ca-corrupt-member", ca + corrupt(v1ca))
putca("ca-altered-member", ca + alter(v1ca))
putca("ca-corrupt-first", corrupt(ca) + v1ca)
putca("ca-empty", b"")
putca("ca-no-certificate", b"just some text\n")
putca("ca-crlf", crlf(ca + intc))
putca("ca-comments", b"# roots\n" + ca + b"# second\n" + intc)
putca("ca-text-output", subprocess.run(["openssl", "x509", "-in", os.path.join(w, "ca.crt"), "-text"], capture_output=True, check=True).stdout)
putca("ca-with-private-key", ca + key)
putca("ca-der", subprocess.run(["openssl", "x509", "-in", os.path.join(w, "ca.crt"), "-outform", "DER"], capture_output=True, check=True).stdout)
putca("ca-duplicated-begin-line", ca.replace(b"-----BEGIN CERTIFICATE-----\n", b"-----BEGIN CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n", 1))
putca("ca-tab-after-begin", ca.replace(b"CERTIFICATE-----\n", b"CERTIFICATE-----\t\n", 1))
putca("ca-bom", b"\xef\xbb\xbf" + ca)
putca("ca-leaf-certificate", crt)
PY
rm -rf work
echo "variants: $(ls variants | wc -l)"
