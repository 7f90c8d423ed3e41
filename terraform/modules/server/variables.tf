variable "name" {
  type        = string
  description = "Server name: its Name tag and its Ansible inventory hostname."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,62}$", var.name))
    error_message = "name must be 1-63 characters: lower-case letters, digits and '-', starting with a letter (it becomes a hostname)."
  }
}

variable "role" {
  type        = string
  description = "What the server is for: \"app\" or \"monitoring\" (its Role tag)."

  validation {
    condition     = contains(["app", "monitoring"], var.role)
    error_message = "role must be \"app\" or \"monitoring\"."
  }
}

variable "ansible_groups" {
  type        = list(string)
  description = "Ansible inventory groups the server belongs to; also written to its AnsibleGroups tag for the amazon.aws.aws_ec2 inventory plugin."
}

variable "ami_id" {
  type        = string
  description = "AMI to boot (e.g. Debian 12)."

  validation {
    condition     = can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must look like ami-0123456789abcdef0."
  }
}

variable "instance_type" {
  type        = string
  description = "EC2 instance type, e.g. t3.small."
}

variable "subnet_id" {
  type        = string
  description = "Subnet to launch into."
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups the server carries (the fleet group and its components' groups)."
}

variable "key_name" {
  type        = string
  description = "Name of the EC2 key pair whose public key is installed for SSH."
}

variable "root_volume_size_gb" {
  type        = number
  description = "Size of the encrypted root volume in GiB."
  default     = 20

  validation {
    condition     = var.root_volume_size_gb >= 8 && var.root_volume_size_gb <= 16384 && floor(var.root_volume_size_gb) == var.root_volume_size_gb
    error_message = "root_volume_size_gb must be a whole number between 8 and 16384."
  }
}

variable "public_tcp_ports" {
  type        = list(number)
  description = "The server's own application ports open to public_cidrs (e.g. 80 and 443 of a web app). Empty: no group is made."
  default     = []

  validation {
    condition     = alltrue([for p in var.public_tcp_ports : p >= 1 && p <= 65535 && floor(p) == p])
    error_message = "public_tcp_ports must be whole numbers between 1 and 65535."
  }
}

variable "public_cidrs" {
  type        = list(string)
  description = "Who may reach public_tcp_ports (IPv4 CIDR)."
  default     = ["0.0.0.0/0"]

  validation {
    condition     = alltrue([for c in var.public_cidrs : can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+/[0-9]+$", c)) && try(cidrhost(c, 0) == split("/", c)[0], false)])
    error_message = "public_cidrs must be IPv4 networks in CIDR notation with no host bits set, such as 0.0.0.0/0."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC of the subnet (for the server's own application security group)."
}
