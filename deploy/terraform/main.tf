# The Google side of jitaccess: a service account for the operator, Workload Identity from its
# Kubernetes service account, and a custom role holding only the get/setIamPolicy permissions of
# the scope, granted at that scope. Nothing else: the operator never needs more.

locals {
  # Grants may point at the scope itself and at anything below it.
  permissions = {
    project = [
      "resourcemanager.projects.getIamPolicy",
      "resourcemanager.projects.setIamPolicy",
    ]
    folder = [
      "resourcemanager.folders.getIamPolicy",
      "resourcemanager.folders.setIamPolicy",
      "resourcemanager.projects.getIamPolicy",
      "resourcemanager.projects.setIamPolicy",
    ]
    organization = [
      "resourcemanager.folders.getIamPolicy",
      "resourcemanager.folders.setIamPolicy",
      "resourcemanager.organizations.getIamPolicy",
      "resourcemanager.organizations.setIamPolicy",
      "resourcemanager.projects.getIamPolicy",
      "resourcemanager.projects.setIamPolicy",
    ]
  }
  role_id = "jitaccessOperator"
  member  = "serviceAccount:${google_service_account.operator.email}"
  role = (
    var.scope_type == "project"
    ? google_project_iam_custom_role.operator[0].name
    : google_organization_iam_custom_role.operator[0].name
  )
}

resource "google_service_account" "operator" {
  project      = var.project_id
  account_id   = var.service_account_id
  display_name = "jitaccess operator"
  description  = "Writes and removes time-bound IAM bindings for approved jitaccess ActivationRequests"
}

resource "google_service_account_iam_member" "workload_identity" {
  service_account_id = google_service_account.operator.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.kubernetes_namespace}/${var.kubernetes_service_account}]"
}

resource "google_project_iam_custom_role" "operator" {
  count       = var.scope_type == "project" ? 1 : 0
  project     = var.scope_id
  role_id     = local.role_id
  title       = "jitaccess operator"
  description = "Get and set IAM policies, and nothing else"
  permissions = local.permissions.project
}

resource "google_organization_iam_custom_role" "operator" {
  count       = var.scope_type == "project" ? 0 : 1
  org_id      = var.organization_id
  role_id     = local.role_id
  title       = "jitaccess operator"
  description = "Get and set IAM policies, and nothing else"
  permissions = local.permissions[var.scope_type]
}

resource "google_project_iam_member" "operator" {
  count   = var.scope_type == "project" ? 1 : 0
  project = var.scope_id
  role    = local.role
  member  = local.member
}

resource "google_folder_iam_member" "operator" {
  count  = var.scope_type == "folder" ? 1 : 0
  folder = "folders/${var.scope_id}"
  role   = local.role
  member = local.member
}

resource "google_organization_iam_member" "operator" {
  count  = var.scope_type == "organization" ? 1 : 0
  org_id = var.scope_id
  role   = local.role
  member = local.member
}

# A private cluster's control plane reaches nodes only on 443 and 10250 unless told otherwise; the
# admission webhooks listen on 9443 (manifests/deployment.yaml), and with failurePolicy Fail an
# unreachable webhook refuses every ActivationRequest and ActivationApproval.
resource "google_compute_firewall" "webhook" {
  count       = var.private_cluster_network != null && var.control_plane_cidr != null ? 1 : 0
  project     = var.project_id
  name        = "jitaccess-webhook-from-control-plane"
  network     = var.private_cluster_network
  description = "GKE control plane to the jitaccess admission webhooks (TCP 9443)"
  direction   = "INGRESS"
  allow {
    protocol = "tcp"
    ports    = ["9443"]
  }
  source_ranges = [var.control_plane_cidr]
  target_tags   = length(var.node_network_tags) > 0 ? var.node_network_tags : null
}
