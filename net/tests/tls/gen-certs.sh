#!/usr/bin/env bash
# Makes the certificates the TLS tests use, with the openssl CLI (3.0).
#
#   net/tests/tls/gen-certs.sh DIR
#
# All keys are EC P-256 in PKCS#8 ("BEGIN PRIVATE KEY"): Apache ZooKeeper's
# PEM key store (org.apache.zookeeper.util.PemReader) and rustls both read
# them. Every certificate is X.509 v3 with explicit extensions, because
# webpki (rustls) refuses v1 certificates and CA certificates without
# basicConstraints CA:TRUE.
#
# DIR gets:
#   ca.pem, ca.key                 the good CA (ssl.trustStore.location of the server,
#                                  and the CA the clients verify the server with)
#   server.pem                     PKCS#8 key + server certificate (ssl.keyStore.location);
#                                  SAN IP:127.0.0.1, DNS:localhost (clients verify hostnames)
#   server.key, server.crt         the same two, apart
#   client.key, client.crt         a client certificate signed by the good CA (kazoo)
#   client.pem                     client.key + client.crt (Java's PEM key store)
#   rogue-ca.pem, rogue-ca.key     a second CA the server does not trust
#   rogue-client.{key,crt,pem}     a client certificate signed by the rogue CA
#   expired-client.{key,crt,pem}   a client certificate signed by the good CA that
#                                  expired in 2021 (valid 2020-01-01 .. 2021-01-01)
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
DIR=$1
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
OPENSSL=${OPENSSL:-openssl}
DAYS=3650

# key NAME: a fresh EC P-256 key in PKCS#8 PEM.
key() {
    "$OPENSSL" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$DIR/$1.key" 2>/dev/null
}

# ca NAME CN: a self-signed CA certificate.
ca() {
    key "$1"
    "$OPENSSL" req -x509 -new -key "$DIR/$1.key" -sha256 -days "$DAYS" -subj "/O=corral tests/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$DIR/$1.pem"
}

# leaf NAME CA CN EXTFILE [START END]: a certificate for NAME signed by CA.
# With START and END (YYYYMMDDHHMMSSZ) it is issued through `openssl ca`,
# which, unlike `openssl x509 -req` in 3.0, can set a validity in the past.
leaf() {
    local name=$1 ca=$2 cn=$3 ext=$4
    key "$name"
    "$OPENSSL" req -new -key "$DIR/$name.key" -subj "/O=corral tests/CN=$cn" -out "$DIR/$name.csr"
    if [[ $# -ge 6 ]]; then
        local cadir="$DIR/.ca-$name"
        mkdir -p "$cadir/new"
        : >"$cadir/index.txt"
        "$OPENSSL" rand -hex 16 >"$cadir/serial"
        cat >"$cadir/ca.cnf" <<EOF
[ca]
default_ca = the_ca
[the_ca]
dir = $cadir
database = $cadir/index.txt
new_certs_dir = $cadir/new
serial = $cadir/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[policy_any]
organizationName = optional
commonName = supplied
EOF
        "$OPENSSL" ca -batch -notext -config "$cadir/ca.cnf" -cert "$DIR/$ca.pem" -keyfile "$DIR/$ca.key" \
            -startdate "$5" -enddate "$6" -extfile "$ext" -in "$DIR/$name.csr" -out "$DIR/$name.crt" 2>/dev/null
        rm -rf "$cadir"
    else
        "$OPENSSL" x509 -req -in "$DIR/$name.csr" -CA "$DIR/$ca.pem" -CAkey "$DIR/$ca.key" -CAcreateserial \
            -sha256 -days "$DAYS" -extfile "$ext" -out "$DIR/$name.crt" 2>/dev/null
    fi
    rm -f "$DIR/$name.csr" "$DIR/$ca.srl"
    cat "$DIR/$name.key" "$DIR/$name.crt" >"$DIR/$name.pem"
}

EXT=$(mktemp -d)
trap 'rm -rf "$EXT"' EXIT
cat >"$EXT/server.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
# Client certificates carry no subjectAltName: ZooKeeper does not verify
# a client's host name against its certificate (ssl.hostnameVerification
# applies to the server's certificate on the client side), and neither
# does rustls.
cat >"$EXT/client.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

ca ca "corral test CA"
ca rogue-ca "rogue test CA"
leaf server ca localhost "$EXT/server.ext"
leaf client ca client "$EXT/client.ext"
leaf rogue-client rogue-ca rogue-client "$EXT/client.ext"
leaf expired-client ca expired-client "$EXT/client.ext" 20200101000000Z 20210101000000Z

# Pair checks: each certificate chains to the CA it should and only that one,
# and the expired one is expired, so a broken openssl invocation fails here
# rather than as a puzzling test result.
"$OPENSSL" verify -CAfile "$DIR/ca.pem" "$DIR/server.crt" "$DIR/client.crt" >/dev/null
"$OPENSSL" verify -CAfile "$DIR/rogue-ca.pem" "$DIR/rogue-client.crt" >/dev/null
if "$OPENSSL" verify -CAfile "$DIR/ca.pem" "$DIR/rogue-client.crt" >/dev/null 2>&1; then
    echo "$0: rogue-client.crt verifies against ca.pem" >&2
    exit 1
fi
if "$OPENSSL" x509 -in "$DIR/expired-client.crt" -noout -checkend 0 >/dev/null; then
    echo "$0: expired-client.crt is not expired" >&2
    exit 1
fi
"$OPENSSL" verify -CAfile "$DIR/ca.pem" -no_check_time "$DIR/expired-client.crt" >/dev/null
chmod 600 "$DIR"/*.key "$DIR"/*.pem
chmod 644 "$DIR"/ca.pem "$DIR"/rogue-ca.pem
