output "security_group_ids" {
  description = "Security group IDs by role: fleet, prometheus, alertmanager, loki, grafana."
  value       = { for k, g in aws_security_group.this : k => g.id }
}

output "policy" {
  description = "The policy as data: target group => service => {port, from_groups, cidrs}."
  value       = local.policy
}

output "ingress_rules" {
  description = "Every ingress rule created, by key \"group/service/source\" (the planned resources, for tests and audits)."
  value       = aws_vpc_security_group_ingress_rule.this
}

output "egress_rules" {
  description = "Every egress rule created (the planned resources)."
  value       = merge({ vpc = aws_vpc_security_group_egress_rule.vpc }, aws_vpc_security_group_egress_rule.internet)
}
