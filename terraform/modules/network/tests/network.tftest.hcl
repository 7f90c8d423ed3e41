mock_provider "aws" {
  source = "../../tests/aws-mock"
}

variables {
  name     = "net-test"
  vpc_cidr = "10.42.0.0/16"
  subnets = {
    a = { cidr = "10.42.1.0/24", availability_zone = "eu-central-1a" }
    b = { cidr = "10.42.2.0/24", availability_zone = "eu-central-1b" }
  }
}

run "public_subnets_with_a_route_out_and_a_closed_default_group" {
  command = apply

  assert {
    condition     = toset(keys(output.subnet_ids)) == toset(["a", "b"]) && output.subnet_cidrs == { a = "10.42.1.0/24", b = "10.42.2.0/24" }
    error_message = "one subnet per entry of var.subnets, with its CIDR"
  }
  assert {
    condition     = alltrue([for s in aws_subnet.public : !s.map_public_ip_on_launch])
    error_message = "subnets must not hand out public addresses by themselves"
  }
  assert {
    condition     = length(aws_route_table_association.public) == 2 && one(aws_route_table.public.route).cidr_block == "0.0.0.0/0" && one(aws_route_table.public.route).gateway_id == aws_internet_gateway.this.id
    error_message = "every subnet should route 0.0.0.0/0 through the internet gateway"
  }
  assert {
    condition     = length(output.default_security_group.ingress) == 0 && length(output.default_security_group.egress) == 0
    error_message = "the VPC's default security group must have no rules"
  }
  assert {
    condition     = aws_flow_log.this.traffic_type == "ALL" && aws_flow_log.this.log_destination == aws_cloudwatch_log_group.flow_logs.arn && aws_cloudwatch_log_group.flow_logs.retention_in_days == 365
    error_message = "the VPC should log all flows to its log group, kept a year"
  }
  assert {
    condition     = jsondecode(data.aws_iam_policy_document.flow_logs_write.json) != null && one(data.aws_iam_policy_document.flow_logs_write.statement).resources == toset(["${aws_cloudwatch_log_group.flow_logs.arn}:*"])
    error_message = "the flow log role may write to its own log group only"
  }
}

run "vpc_cidr_rejects_host_bits" {
  command = plan
  variables {
    vpc_cidr = "10.42.1.0/16"
  }
  expect_failures = [var.vpc_cidr]
}

run "vpc_cidr_rejects_a_too_large_block" {
  command = plan
  variables {
    vpc_cidr = "10.0.0.0/8"
    subnets  = { a = { cidr = "10.42.1.0/24" } }
  }
  expect_failures = [var.vpc_cidr]
}

run "subnets_must_lie_inside_the_vpc" {
  command = plan
  variables {
    subnets = { a = { cidr = "10.42.1.0/24" }, b = { cidr = "10.43.1.0/24" } }
  }
  expect_failures = [var.subnets]
}

run "subnets_may_not_be_larger_than_the_vpc" {
  command = plan
  variables {
    subnets = { a = { cidr = "10.42.0.0/15" } }
  }
  expect_failures = [var.subnets]
}

run "subnets_need_at_least_one" {
  command = plan
  variables {
    subnets = {}
  }
  expect_failures = [var.subnets]
}

run "flow_log_retention_must_be_a_cloudwatch_value" {
  command = plan
  variables {
    flow_log_retention_days = 100
  }
  expect_failures = [var.flow_log_retention_days]
}
