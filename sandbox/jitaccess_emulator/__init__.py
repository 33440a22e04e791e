"""A Cloud Resource Manager v3 IAM emulator, faithful to what Google's API does (../shared/design/GCP-IAM.md).

It exists so that the operator's real client (google-cloud-resource-manager over REST) can be
tested, demonstrated and benchmarked on one machine with no Google account. It must never
answer something Google would not: when in doubt it is stricter than the real API.
"""
