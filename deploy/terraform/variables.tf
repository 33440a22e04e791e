variable "project_id" {
  description = "The project of the GKE cluster: the operator's Google service account lives here, and its Workload Identity pool is PROJECT_ID.svc.id.goog."
  type        = string
}

variable "scope_type" {
  description = "Where the operator may change IAM policies, as in Google's JIT Access: project, folder or organization."
  type        = string
  validation {
    condition     = contains(["project", "folder", "organization"], var.scope_type)
    error_message = "scope_type must be project, folder or organization."
  }
}

variable "scope_id" {
  description = "The project ID, folder number or organization number of that scope."
  type        = string
}

variable "organization_id" {
  description = "The organization number; needed for folder and organization scopes, where the custom role is defined (folders cannot hold custom roles)."
  type        = string
  default     = null
}

variable "kubernetes_namespace" {
  description = "The namespace the operator runs in (manifests/: jitaccess-system)."
  type        = string
  default     = "jitaccess-system"
}

variable "kubernetes_service_account" {
  description = "The operator's Kubernetes service account (manifests/rbac.yaml: jitaccess)."
  type        = string
  default     = "jitaccess"
}

variable "service_account_id" {
  description = "The account ID of the operator's Google service account."
  type        = string
  default     = "jitaccess-operator"
}

variable "private_cluster_network" {
  description = "Private GKE clusters only: the VPC network of the cluster. With control_plane_cidr, a firewall rule lets the control plane call the admission webhooks on port 9443 (GKE opens only 443 and 10250 to nodes); without it every request is refused (failurePolicy Fail)."
  type        = string
  default     = null
}

variable "control_plane_cidr" {
  description = "Private GKE clusters only: the control plane's range (the cluster's master_ipv4_cidr_block, e.g. 172.16.0.0/28)."
  type        = string
  default     = null
}

variable "node_network_tags" {
  description = "Private GKE clusters only: the network tags of the cluster's nodes, to aim the webhook firewall rule at them (empty: every instance of the network)."
  type        = list(string)
  default     = []
}

variable "enable_console" {
  description = "Create what the web console behind IAP needs (console.tf; manifests/console): its service account, a static address, and IAP access for console_members."
  type        = bool
  default     = false
}

variable "console_members" {
  description = "Who may pass IAP to the console, as IAM members (user:, group:, domain:). With Google's managed OAuth client, only accounts of your organization can sign in. What each may do there is still what their EligibleGrants allow."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.console_members : can(regex("^(user|group|domain|serviceAccount):.+", m))])
    error_message = "console_members must be IAM members: user:EMAIL, group:EMAIL, domain:DOMAIN or serviceAccount:EMAIL."
  }
}

variable "console_service_account_id" {
  description = "The account ID of the console's Google service account."
  type        = string
  default     = "jitaccess-console"
}

variable "console_kubernetes_service_account" {
  description = "The console's Kubernetes service account, in kubernetes_namespace (manifests/console/rbac.yaml: jitaccess-console)."
  type        = string
  default     = "jitaccess-console"
}

variable "console_address_name" {
  description = "The name of the console's static global address (manifests/console/ingress.yaml names it: jitaccess-console)."
  type        = string
  default     = "jitaccess-console"
}
