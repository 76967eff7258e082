#!/bin/sh
# A WebSocket echo server for one connection (stdin/stdout): the opening
# handshake, then every frame (payload < 126 bytes) echoed unmasked; a
# close frame is echoed with its code and the connection ends.
key=""
proto=""
while IFS= read -r line; do
  line=$(printf '%s' "$line" | tr -d '\r')
  [ -z "$line" ] && break
  name=$(printf '%s' "${line%%:*}" | tr 'A-Z' 'a-z')
  value=$(printf '%s' "${line#*:}" | tr -d ' ')
  case "$name" in
    sec-websocket-key) key=$value ;;
    sec-websocket-protocol) proto=${value%%,*} ;;
  esac
done
accept=$(printf '%s' "${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11" | sha1sum | cut -d' ' -f1 | xxd -r -p | base64)
printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n' "$accept"
[ -n "$proto" ] && printf 'Sec-WebSocket-Protocol: %s\r\n' "$proto"
printf '\r\n'
byte() { dd bs=1 count=1 2>/dev/null | od -An -tu1 | tr -d ' \n'; }
while :; do
  b0=$(byte)
  [ -z "$b0" ] && exit 0
  b1=$(byte)
  op=$((b0 & 15))
  len=$((b1 & 127))
  m0=$(byte); m1=$(byte); m2=$(byte); m3=$(byte)
  out=""
  i=0
  while [ "$i" -lt "$len" ]; do
    c=$(byte)
    case $((i % 4)) in 0) m=$m0 ;; 1) m=$m1 ;; 2) m=$m2 ;; *) m=$m3 ;; esac
    out="$out\\$(printf '%03o' $((c ^ m)))"
    i=$((i + 1))
  done
  printf "\\$(printf '%03o' $((128 | op)))\\$(printf '%03o' "$len")$out"
  [ "$op" -eq 8 ] && exit 0
done
