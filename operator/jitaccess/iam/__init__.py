"""Everything that touches Google Cloud IAM.

`bindings` is the one place that knows the format of what jitaccess writes (and so what is
ours); `store` is the only caller of google-cloud-resource-manager; `writer` applies changes to
one resource's policy with read-modify-write, etag retries and backoff. Nothing here edits a
binding that it did not write.
"""
