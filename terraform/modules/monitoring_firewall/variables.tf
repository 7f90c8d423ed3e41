variable "name" {
  type        = string
  description = "Prefix for the security group names (e.g. the environment name)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.name))
    error_message = "name must be 1-31 characters: lower-case letters, digits and '-', starting with a letter."
  }
}

variable "vpc_id" {
  type        = string
  description = "ID of the VPC the security groups belong to."
}

variable "vpc_cidr" {
  type        = string
  description = "IPv4 CIDR block of the VPC: servers may send anything inside it (scrapes, log pushes, alerts, DNS); security groups on the receiving side decide what is admitted."

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+/[0-9]+$", var.vpc_cidr)) && try(cidrhost(var.vpc_cidr, 0) == split("/", var.vpc_cidr)[0], false)
    error_message = "vpc_cidr must be an IPv4 network in CIDR notation with no host bits set, such as 10.42.0.0/16."
  }
}

variable "operator_cidrs" {
  type        = list(string)
  description = "The technicians' addresses (IPv4 CIDR, e.g. 203.0.113.7/32): SSH to every server and every monitoring port. Never the whole internet."

  validation {
    condition     = length(var.operator_cidrs) > 0
    error_message = "operator_cidrs must hold at least one address, or nobody can reach the servers over SSH."
  }
  validation {
    condition     = alltrue([for c in var.operator_cidrs : can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+/[0-9]+$", c)) && try(cidrhost(c, 0) == split("/", c)[0], false)])
    error_message = "operator_cidrs must be IPv4 networks in CIDR notation with no host bits set, such as 203.0.113.7/32 or 198.51.100.0/24 (got ${jsonencode(var.operator_cidrs)})."
  }
  validation {
    condition     = alltrue([for c in var.operator_cidrs : !can(regex("/0$", c))])
    error_message = "operator_cidrs must not contain 0.0.0.0/0 (or any /0): the exporters and Prometheus would be open to the whole internet."
  }
}

variable "grafana_allowed_cidrs" {
  type        = list(string)
  description = "Who may open Grafana besides the operators (IPv4 CIDR). 0.0.0.0/0 is allowed here: Grafana has its own login. Empty: operators only."
  default     = []

  validation {
    condition     = alltrue([for c in var.grafana_allowed_cidrs : can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+/[0-9]+$", c)) && try(cidrhost(c, 0) == split("/", c)[0], false)])
    error_message = "grafana_allowed_cidrs must be IPv4 networks in CIDR notation with no host bits set, such as 0.0.0.0/0 or 198.51.100.0/24 (got ${jsonencode(var.grafana_allowed_cidrs)})."
  }
}

variable "ports" {
  type = object({
    ssh           = optional(number, 22)
    node_exporter = optional(number, 9100)
    log_shipper   = optional(number, 9080)
    prometheus    = optional(number, 9090)
    alertmanager  = optional(number, 9093)
    loki          = optional(number, 3100)
    grafana       = optional(number, 3000)
    # Alertmanager's cluster gossip (memberlist: TCP and UDP), between its peers only.
    alertmanager_cluster = optional(number, 9094)
    victoriametrics      = optional(number, 8428)
  })
  description = "Ports the services listen on (the upstream defaults; change them only together with the Ansible variables). All TCP, but alertmanager_cluster: TCP and UDP."
  default     = {}

  validation {
    condition     = alltrue([for p in values(var.ports) : p >= 1 && p <= 65535 && floor(p) == p])
    error_message = "every port must be a whole number between 1 and 65535."
  }
  validation {
    condition     = length(distinct(values(var.ports))) == length(values(var.ports))
    error_message = "every service needs its own port: two services in ports share one."
  }
}

variable "internet_egress_tcp_ports" {
  type        = list(number)
  description = "TCP ports servers may reach anywhere on the internet: 80/443 for packages, the Slack webhook and Grafana plugins. Everything inside the VPC is always allowed out."
  default     = [80, 443]

  validation {
    condition     = alltrue([for p in var.internet_egress_tcp_ports : p >= 1 && p <= 65535 && floor(p) == p])
    error_message = "internet_egress_tcp_ports must be whole numbers between 1 and 65535."
  }
}
