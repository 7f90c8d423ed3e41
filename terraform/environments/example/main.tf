# The example environment: a VPC, the application servers of var.app_servers,
# the monitoring server(s) of var.monitoring_servers, one SSH key pair, and the
# security groups of the monitoring policy (modules/monitoring_firewall).

locals {
  components = ["prometheus", "alertmanager", "grafana", "loki", "victoriametrics"]
  ami_id     = coalesce(var.ami_id, try(data.aws_ami.debian[0].id, null))
  subnet     = sort(keys(var.subnets))[0]

  # Every server, app and monitoring, with its Ansible groups and security groups.
  servers = merge(
    {
      for name, s in var.app_servers : name => {
        role                = "app"
        groups              = ["app_servers"]
        instance_type       = s.instance_type
        subnet              = coalesce(s.subnet, local.subnet)
        root_volume_size_gb = s.root_volume_size_gb
        public_tcp_ports    = s.public_tcp_ports
        public_cidrs        = s.public_cidrs
      }
    },
    {
      for name, s in var.monitoring_servers : name => {
        role                = "monitoring"
        groups              = concat(["monitoring"], [for c in local.components : c if contains(s.components, c)])
        instance_type       = s.instance_type
        subnet              = coalesce(s.subnet, local.subnet)
        root_volume_size_gb = s.root_volume_size_gb
        public_tcp_ports    = []
        public_cidrs        = []
      }
    },
  )
}

# The newest official Debian 12 image (Debian's AWS account), unless ami_id is set.
data "aws_ami" "debian" {
  count = var.ami_id == null ? 1 : 0

  most_recent = true
  owners      = ["136693071363"]

  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }
  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

module "network" {
  source = "../../modules/network"

  name                    = var.name
  vpc_cidr                = var.vpc_cidr
  subnets                 = var.subnets
  flow_log_retention_days = var.flow_log_retention_days
}

module "firewall" {
  source = "../../modules/monitoring_firewall"

  name                      = var.name
  vpc_id                    = module.network.vpc_id
  vpc_cidr                  = module.network.vpc_cidr
  operator_cidrs            = var.operator_cidrs
  grafana_allowed_cidrs     = var.grafana_allowed_cidrs
  ports                     = var.ports
  internet_egress_tcp_ports = var.internet_egress_tcp_ports
}

resource "aws_key_pair" "operators" {
  key_name_prefix = "${var.name}-"
  public_key      = trimspace(var.ssh_public_key)
}

module "server" {
  source   = "../../modules/server"
  for_each = local.servers

  name                = each.key
  role                = each.value.role
  ansible_groups      = each.value.groups
  ami_id              = local.ami_id
  instance_type       = each.value.instance_type
  vpc_id              = module.network.vpc_id
  subnet_id           = module.network.subnet_ids[each.value.subnet]
  key_name            = aws_key_pair.operators.key_name
  root_volume_size_gb = each.value.root_volume_size_gb
  public_tcp_ports    = each.value.public_tcp_ports
  public_cidrs        = each.value.public_cidrs
  # Every server runs node exporter and the log shipper (fleet); a monitoring
  # server also carries the group of each component it runs.
  security_group_ids = concat(
    [module.firewall.security_group_ids["fleet"]],
    [for c in local.components : module.firewall.security_group_ids[c] if contains(each.value.groups, c)],
  )
}
