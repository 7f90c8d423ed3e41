variable "name" {
  type        = string
  description = "Prefix for the Name tag of every resource (e.g. the environment name)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.name))
    error_message = "name must be 1-31 characters: lower-case letters, digits and '-', starting with a letter."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "IPv4 CIDR block of the VPC, e.g. 10.42.0.0/16."

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+/[0-9]+$", var.vpc_cidr)) && try(cidrhost(var.vpc_cidr, 0) == split("/", var.vpc_cidr)[0], false)
    error_message = "vpc_cidr must be an IPv4 network in CIDR notation with no host bits set, such as 10.42.0.0/16 (got \"${var.vpc_cidr}\")."
  }
  validation {
    condition     = try(tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 28, false)
    error_message = "vpc_cidr prefix length must be between /16 and /28 (the sizes AWS accepts for a VPC)."
  }
}

variable "subnets" {
  type = map(object({
    cidr              = string
    availability_zone = optional(string)
  }))
  description = "Public subnets by name. Each cidr must lie inside vpc_cidr; availability_zone null lets AWS choose."

  validation {
    condition     = length(var.subnets) > 0
    error_message = "subnets must name at least one subnet."
  }
  validation {
    condition     = alltrue([for s in values(var.subnets) : can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+/[0-9]+$", s.cidr)) && try(cidrhost(s.cidr, 0) == split("/", s.cidr)[0], false)])
    error_message = "every subnets[*].cidr must be an IPv4 network in CIDR notation with no host bits set, such as 10.42.1.0/24."
  }
  validation {
    # Inside the VPC: at least as long a prefix, and the same network once masked with the VPC's prefix.
    condition = alltrue([
      for s in values(var.subnets) : try(
        tonumber(split("/", s.cidr)[1]) >= tonumber(split("/", var.vpc_cidr)[1]) &&
        cidrhost("${cidrhost(s.cidr, 0)}/${split("/", var.vpc_cidr)[1]}", 0) == cidrhost(var.vpc_cidr, 0),
      false)
    ])
    error_message = "every subnets[*].cidr must lie inside vpc_cidr (${var.vpc_cidr})."
  }
}

variable "flow_log_retention_days" {
  type        = number
  description = "Days CloudWatch Logs keeps the VPC flow logs (rejected and accepted traffic)."
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_log_retention_days)
    error_message = "flow_log_retention_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}
