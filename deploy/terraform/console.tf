# The web console behind Identity-Aware Proxy (manifests/console, docs/console.md), with
# -var enable_console=true: the console's Google service account and its Workload Identity binding,
# a custom role with the one permission it needs (listing the project's backend services, to find
# the IAP audience of its own at start), the static address of its load balancer, and who may pass
# IAP. No OAuth brand or client: Google retired the API behind google_iap_brand and google_iap_client,
# and IAP now signs people in with a Google-managed OAuth client (the BackendConfig names none).
#
# Who may pass IAP is granted on the project's IAP-protected backend services as a whole (web type
# compute), not on the console's alone: that needs the backend service's name, which GKE chooses
# only after `kubectl apply`, and would take a second apply. Passing IAP gives no access by itself:
# the console shows and files only what the person's grants allow.

locals {
  console    = var.enable_console ? 1 : 0
  console_sa = "serviceAccount:${var.project_id}.svc.id.goog[${var.kubernetes_namespace}/${var.console_kubernetes_service_account}]"
}

resource "google_project_service" "iap" {
  count              = local.console
  project            = var.project_id
  service            = "iap.googleapis.com"
  disable_on_destroy = false
}

resource "google_service_account" "console" {
  count        = local.console
  project      = var.project_id
  account_id   = var.console_service_account_id
  display_name = "jitaccess console"
  description  = "Finds the IAP audience of the jitaccess web console: lists the project's backend services, nothing else"
}

resource "google_service_account_iam_member" "console_workload_identity" {
  count              = local.console
  service_account_id = google_service_account.console[0].name
  role               = "roles/iam.workloadIdentityUser"
  member             = local.console_sa
}

resource "google_project_iam_custom_role" "console" {
  count       = local.console
  project     = var.project_id
  role_id     = "jitaccessConsole"
  title       = "jitaccess console"
  description = "List backend services (to find the console's IAP audience), and nothing else"
  permissions = ["compute.backendServices.list"]
}

resource "google_project_iam_member" "console" {
  count   = local.console
  project = var.project_id
  role    = google_project_iam_custom_role.console[0].name
  member  = "serviceAccount:${google_service_account.console[0].email}"
}

# The Ingress names it (kubernetes.io/ingress.global-static-ip-name): the address is known before the
# load balancer exists, so DNS can point at it at once and the managed certificate can be issued.
resource "google_compute_global_address" "console" {
  count       = local.console
  project     = var.project_id
  name        = var.console_address_name
  description = "The jitaccess web console's HTTPS load balancer"
}

resource "google_iap_web_type_compute_iam_member" "console" {
  for_each   = var.enable_console ? toset(var.console_members) : toset([])
  project    = var.project_id
  role       = "roles/iap.httpsResourceAccessor"
  member     = each.value
  depends_on = [google_project_service.iap]
}

data "google_project" "console" {
  count      = local.console
  project_id = var.project_id
}
