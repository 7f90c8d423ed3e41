variable "region" {
  type        = string
  description = "AWS region, e.g. eu-central-1."
  default     = "eu-central-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$", var.region))
    error_message = "region must be an AWS region name such as eu-central-1 or us-east-1."
  }
}

variable "name" {
  type        = string
  description = "Environment name: prefix of every resource name and the Environment tag."
  default     = "monitoring-example"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.name))
    error_message = "name must be 1-31 characters: lower-case letters, digits and '-', starting with a letter."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "IPv4 CIDR block of the VPC."
  default     = "10.42.0.0/16"
}

variable "subnets" {
  type = map(object({
    cidr              = string
    availability_zone = optional(string)
  }))
  description = "Public subnets by name, inside vpc_cidr. Servers go into the first by name unless they say otherwise."
  default     = { a = { cidr = "10.42.1.0/24" } }
}

# operator_cidrs and grafana_allowed_cidrs are validated where they are used,
# in modules/monitoring_firewall (refusing 0.0.0.0/0 for operators, and any
# value that is not an IPv4 network); the error names the variable and rule.
variable "operator_cidrs" {
  type        = list(string)
  description = "The technicians' public addresses (IPv4 CIDR, e.g. 203.0.113.7/32): SSH everywhere, and every exporter and monitoring port. 0.0.0.0/0 is refused."
}

variable "grafana_allowed_cidrs" {
  type        = list(string)
  description = "Who besides the operators may open Grafana (IPv4 CIDR); [\"0.0.0.0/0\"] for everyone. Empty: operators only."
  default     = []
}

variable "ssh_public_key" {
  type        = string
  description = "OpenSSH public key installed on every server (the contents of e.g. ~/.ssh/id_ed25519.pub)."

  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh.com) [A-Za-z0-9+/]+={0,3}( [^\\n]*)?$", trimspace(var.ssh_public_key)))
    error_message = "ssh_public_key must be one OpenSSH public key line, e.g. \"ssh-ed25519 AAAAC3... you@laptop\"."
  }
}

variable "ssh_user" {
  type        = string
  description = "Login user of the AMI (\"admin\" on Debian's images), written to the Ansible inventory as ansible_user."
  default     = "admin"
}

variable "ami_id" {
  type        = string
  description = "AMI for every server. null: the newest official Debian 12 (bookworm) amd64 image."
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must look like ami-0123456789abcdef0 (or be null for the newest Debian 12)."
  }
}

variable "app_servers" {
  type = map(object({
    instance_type       = optional(string, "t3.micro")
    subnet              = optional(string)
    root_volume_size_gb = optional(number, 20)
    public_tcp_ports    = optional(list(number), [])
    public_cidrs        = optional(list(string), ["0.0.0.0/0"])
  }))
  description = "Application servers by name (the hostname in the Ansible inventory). Add or remove one entry to add or remove exactly that server. public_tcp_ports: the app's own ports (e.g. [80, 443]) open to public_cidrs."
  default     = {}

  validation {
    condition     = alltrue([for name in keys(var.app_servers) : can(regex("^[a-z][a-z0-9-]{0,62}$", name))])
    error_message = "app_servers names must be hostnames: lower-case letters, digits and '-', starting with a letter (got ${jsonencode(keys(var.app_servers))})."
  }
  validation {
    condition     = length(setintersection(keys(var.app_servers), ["app_servers", "monitoring", "prometheus", "alertmanager", "grafana", "loki"])) == 0
    error_message = "app_servers names must differ from the Ansible group names (app_servers, monitoring, prometheus, alertmanager, grafana, loki): a host and a group of one name make Ansible patterns ambiguous."
  }
  validation {
    condition     = alltrue([for s in values(var.app_servers) : s.subnet == null || contains(keys(var.subnets), coalesce(s.subnet, "-"))])
    error_message = "app_servers[*].subnet must name one of the subnets (${join(", ", keys(var.subnets))})."
  }
  validation {
    # The application's public ports must never open a monitoring port to the world.
    condition     = alltrue([for s in values(var.app_servers) : length(setintersection(s.public_tcp_ports, values(var.ports))) == 0])
    error_message = "app_servers[*].public_tcp_ports must not include SSH or a monitoring port (${join(", ", [for p in values(var.ports) : tostring(p)])}): those are reachable only as the firewall policy says."
  }
}

variable "monitoring_servers" {
  type = map(object({
    components          = list(string)
    instance_type       = optional(string, "t3.medium")
    subnet              = optional(string)
    root_volume_size_gb = optional(number, 40)
  }))
  description = "Monitoring servers by name and the components each runs (prometheus, alertmanager, grafana, loki, victoriametrics). Default: one server, monitoring-1, running the first four; give each its own entry to split them. prometheus (replicas) and alertmanager (cluster peers) may run on several servers, grafana and loki on exactly one, victoriametrics (long-term storage) on at most one. Names must differ from the group names."
  default = {
    monitoring-1 = { components = ["prometheus", "alertmanager", "grafana", "loki"] }
  }

  validation {
    condition     = alltrue([for name in keys(var.monitoring_servers) : can(regex("^[a-z][a-z0-9-]{0,62}$", name))])
    error_message = "monitoring_servers names must be hostnames: lower-case letters, digits and '-', starting with a letter."
  }
  validation {
    condition     = length(setintersection(keys(var.monitoring_servers), ["app_servers", "monitoring", "prometheus", "alertmanager", "grafana", "loki", "victoriametrics"])) == 0
    error_message = "monitoring_servers names must differ from the Ansible group names (monitoring, prometheus, alertmanager, grafana, loki, victoriametrics): name them e.g. prometheus-1."
  }
  validation {
    condition     = alltrue(flatten([for s in values(var.monitoring_servers) : [for c in s.components : contains(["prometheus", "alertmanager", "grafana", "loki", "victoriametrics"], c)]]))
    error_message = "monitoring_servers[*].components may only hold prometheus, alertmanager, grafana, loki and victoriametrics."
  }
  validation {
    condition = alltrue([
      for c in ["grafana", "loki"] :
      length([for s in values(var.monitoring_servers) : s if contains(s.components, c)]) == 1
    ])
    error_message = "each of grafana and loki must run on exactly one of monitoring_servers."
  }
  validation {
    # Replicas and cluster peers: one or more (three Alertmanagers survive losing one).
    condition = alltrue([
      for c in ["prometheus", "alertmanager"] :
      length([for s in values(var.monitoring_servers) : s if contains(s.components, c)]) >= 1
    ])
    error_message = "prometheus and alertmanager must each run on at least one of monitoring_servers (several: replicas and cluster peers)."
  }
  validation {
    condition     = length([for s in values(var.monitoring_servers) : s if contains(s.components, "victoriametrics")]) <= 1
    error_message = "victoriametrics runs on at most one of monitoring_servers (the single-node store; see ansible/roles/victoriametrics for its cluster form)."
  }
  validation {
    condition     = length(setintersection(keys(var.monitoring_servers), keys(var.app_servers))) == 0
    error_message = "a name is used in both monitoring_servers and app_servers: ${join(", ", setintersection(keys(var.monitoring_servers), keys(var.app_servers)))}."
  }
  validation {
    condition     = alltrue([for s in values(var.monitoring_servers) : s.subnet == null || contains(keys(var.subnets), coalesce(s.subnet, "-"))])
    error_message = "monitoring_servers[*].subnet must name one of the subnets (${join(", ", keys(var.subnets))})."
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
    # Alertmanager's cluster gossip (TCP and UDP), between its peers only.
    alertmanager_cluster = optional(number, 9094)
    # VictoriaMetrics (long-term storage), written by Prometheus.
    victoriametrics = optional(number, 8428)
  })
  description = "TCP ports of the services (the upstream defaults). Change them only together with the Ansible variables."
  default     = {}
}

variable "internet_egress_tcp_ports" {
  type        = list(number)
  description = "TCP ports every server may reach on the internet (packages, Slack webhook, Grafana plugins)."
  default     = [80, 443]
}

variable "flow_log_retention_days" {
  type        = number
  description = "Days the VPC flow logs are kept in CloudWatch Logs."
  default     = 365
}
