#!/bin/sh
# Makes a self-signed ECDSA P-256 certificate for local TLS runs.
#   make-cert.sh DIR [HOST]   writes DIR/avatar.crt and DIR/avatar.key
# HOST (default localhost) goes in the subject and, with 127.0.0.1 and ::1,
# in subjectAltName. Use a real certificate in production.
set -eu
[ $# -ge 1 ] || { echo "usage: make-cert.sh DIR [HOST]" >&2; exit 2; }
dir=$1
host=${2:-localhost}
command -v openssl >/dev/null || { echo "make-cert.sh: openssl is missing (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
    -days 825 -subj "/CN=$host" \
    -addext "subjectAltName=DNS:$host,IP:127.0.0.1,IP:::1" \
    -addext "keyUsage=digitalSignature" -addext "extendedKeyUsage=serverAuth" \
    -keyout "$dir/avatar.key" -out "$dir/avatar.crt" 2>/dev/null
chmod 0644 "$dir/avatar.crt"
echo "$dir/avatar.crt $dir/avatar.key"
