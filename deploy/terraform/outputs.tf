output "service_account_email" {
  description = "Put it in the iam.gke.io/gcp-service-account annotation of the operator's Kubernetes service account."
  value       = google_service_account.operator.email
}

output "custom_role" {
  description = "The custom role granted at the scope."
  value       = local.role
}

output "console_service_account_email" {
  description = "With enable_console: put it in the iam.gke.io/gcp-service-account annotation of the console's Kubernetes service account (jitaccess-console)."
  value       = one(google_service_account.console[*].email)
}

output "console_project_number" {
  description = "With enable_console: the project's number, the console's IAP_PROJECT_NUMBER (the IAP audience is /projects/NUMBER/global/backendServices/ID)."
  value       = one(data.google_project.console[*].number)
}

output "console_address" {
  description = "With enable_console: the console's static IP address; point your domain's A record at it."
  value       = one(google_compute_global_address.console[*].address)
}
