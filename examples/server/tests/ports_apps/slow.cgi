#!/bin/sh
# busybox httpd CGI: an event stream with a pause of QUERY_STRING seconds
# (default 6) between its two events.
printf 'Content-Type: text/event-stream\r\n\r\n'
printf 'data: first\n\n'
sleep "${QUERY_STRING:-6}"
printf 'data: second\n\n'
