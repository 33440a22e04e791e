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
