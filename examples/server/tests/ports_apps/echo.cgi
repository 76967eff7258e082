#!/bin/sh
# busybox httpd CGI: the method, query and body back, and what the app
# saw of the viewer's credentials.
printf 'Content-Type: text/plain\r\nX-App: echo\r\n\r\n'
printf '%s %s cookie=[%s]\n' "$REQUEST_METHOD" "$QUERY_STRING" "$HTTP_COOKIE"
if [ -n "$CONTENT_LENGTH" ]; then head -c "$CONTENT_LENGTH"; fi
