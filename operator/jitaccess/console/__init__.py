"""`jitaccess console`: a web page and a JSON API over the custom resources, for the people who
never run kubectl, behind Google's Identity-Aware Proxy.

It adds no second source of truth and holds no state: it mirrors grants, requests, approvals and
Events with watches, shows each person what is theirs, and files requests, approvals and revocations
with its own service account *in the name of the person IAP verified*, as the operator's
`--console-submitter`. Admission judges each of them exactly as it judges kubectl's, on that
person alone (IAP proves no groups), so the console can never do what the person could not.

It must never: act without a verified IAP assertion, accept a state-changing call without the CSRF
checks, let a body name who is asking, or put anyone's text into the page other than as text.

Layers: iap, csrf, kube, backend_services (talk to the outside); mirror (the cluster, watched);
views, detail, actions (pure: what a person sees and what is filed); api, server (HTTP); run (CLI).
The Kubernetes permissions it needs: get/list/watch eligiblegrants, activationrequests,
activationapprovals and events; create activationrequests and activationapprovals; patch
activationrequests (spec.revoke, which admission lets it set only for the requester).
"""
