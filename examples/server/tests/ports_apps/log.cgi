#!/bin/sh
# busybox httpd CGI: keeps the body in /tmp/exfil (what the hostile page
# managed to learn).
printf 'Content-Type: text/plain\r\n\r\n'
if [ -n "$CONTENT_LENGTH" ]; then head -c "$CONTENT_LENGTH" > /tmp/exfil; fi
echo kept
