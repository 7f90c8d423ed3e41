locals {
  inventory_groups = ["app_servers", "monitoring", "prometheus", "alertmanager", "grafana", "loki", "victoriametrics"]

  hostvars = {
    for name, m in module.server : name => {
      ansible_host = m.public_ip
      ansible_user = var.ssh_user
      private_ip   = m.private_ip
      instance_id  = m.id
      server_role  = local.servers[name].role
    }
  }
  group_hosts = {
    for g in local.inventory_groups : g => sort([for name, s in local.servers : name if contains(s.groups, g)])
  }
}

output "servers" {
  description = "Every server by name: role, Ansible groups, instance ID, public and private IPv4 address."
  value = {
    for name, m in module.server : name => {
      role        = local.servers[name].role
      groups      = local.servers[name].groups
      instance_id = m.id
      public_ip   = m.public_ip
      private_ip  = m.private_ip
    }
  }
}

output "ansible_inventory" {
  description = "Ansible's JSON inventory format (what a dynamic inventory prints for --list): `terraform output -json ansible_inventory`. See terraform/inventory.sh."
  value = merge(
    {
      _meta = { hostvars = local.hostvars }
      all   = { children = local.inventory_groups }
    },
    { for g, hosts in local.group_hosts : g => { hosts = hosts } },
  )
}

output "ansible_inventory_yaml" {
  description = "The same inventory as a static YAML file: `terraform output -raw ansible_inventory_yaml > inventory.yml`."
  value = yamlencode({
    all = {
      hosts    = local.hostvars
      children = { for g, hosts in local.group_hosts : g => { hosts = { for h in hosts : h => {} } } }
    }
  })
}

output "security_group_ids" {
  description = "Security group IDs by role (fleet, prometheus, alertmanager, loki, grafana, victoriametrics)."
  value       = module.firewall.security_group_ids
}

output "ingress_rules" {
  description = "Every ingress rule of the monitoring policy, by \"group/service/source\"."
  value       = module.firewall.ingress_rules
}

output "public_ingress_rules" {
  description = "Each app server's own application ingress rules, by server then \"port/cidr\"."
  value       = { for name, m in module.server : name => m.public_ingress_rules }
}

output "vpc_id" {
  description = "ID of the VPC."
  value       = module.network.vpc_id
}

output "instances" {
  description = "Every server's aws_instance, every attribute (for audits and the tests)."
  value       = { for name, m in module.server : name => m.instance }
}
