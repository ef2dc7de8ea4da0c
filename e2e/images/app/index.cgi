#!/bin/sh
# The test app's only page: which pod and node answered, and the client address the pod saw
# (with externalTrafficPolicy: Local it is the client's own).
printf 'Content-Type: text/plain\r\n\r\n'
printf 'pod=%s node=%s client=%s\n' "$POD_NAME" "$NODE_NAME" "$REMOTE_ADDR"
