output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "IPv4 CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "subnet_ids" {
  description = "Subnet IDs by subnet name (the keys of var.subnets)."
  value       = { for k, s in aws_subnet.public : k => s.id }
}

output "subnet_cidrs" {
  description = "Subnet CIDR blocks by subnet name."
  value       = { for k, s in aws_subnet.public : k => s.cidr_block }
}

output "default_security_group" {
  description = "The VPC's default security group, emptied of every rule."
  value       = aws_default_security_group.this
}

output "flow_log_group_name" {
  description = "CloudWatch Logs group that receives the VPC flow logs."
  value       = aws_cloudwatch_log_group.flow_logs.name
}
