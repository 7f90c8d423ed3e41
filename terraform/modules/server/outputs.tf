output "id" {
  description = "EC2 instance ID."
  value       = aws_instance.this.id
}

output "instance" {
  description = "The planned instance (for tests)."
  value       = aws_instance.this
}

output "public_ip" {
  description = "Public IPv4 address (SSH, Grafana, the app)."
  value       = aws_instance.this.public_ip
}

output "private_ip" {
  description = "Private IPv4 address inside the VPC (scrape targets, Loki push URL)."
  value       = aws_instance.this.private_ip
}

output "public_ingress_rules" {
  description = "The server's own application ingress rules, by \"port/cidr\"."
  value       = aws_vpc_security_group_ingress_rule.public
}

output "security_group_ids" {
  description = "Every security group the instance carries."
  value       = aws_instance.this.vpc_security_group_ids
}
