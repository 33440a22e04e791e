output "service_account_email" {
  description = "Put it in the iam.gke.io/gcp-service-account annotation of the operator's Kubernetes service account."
  value       = google_service_account.operator.email
}

output "custom_role" {
  description = "The custom role granted at the scope."
  value       = local.role
}
