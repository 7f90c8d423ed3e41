mock_provider "aws" {
  source = "../../tests/aws-mock"
}

variables {
  name               = "web-1"
  role               = "app"
  ansible_groups     = ["app_servers"]
  ami_id             = "ami-0123456789abcdef0"
  instance_type      = "t3.micro"
  vpc_id             = "vpc-0123456789abcdef0"
  subnet_id          = "subnet-0123456789abcdef0"
  security_group_ids = ["sg-0123456789abcdef0"]
  key_name           = "operators"
}

run "a_hardened_instance_with_no_public_ports" {
  command = apply

  assert {
    condition     = aws_instance.this.metadata_options[0].http_tokens == "required" && aws_instance.this.metadata_options[0].http_put_response_hop_limit == 1
    error_message = "the instance must require IMDSv2 with a hop limit of 1"
  }
  assert {
    condition     = aws_instance.this.root_block_device[0].encrypted && aws_instance.this.root_block_device[0].volume_size == 20
    error_message = "the root volume must be encrypted and 20 GiB by default"
  }
  assert {
    condition     = length(aws_security_group.public) == 0 && length(output.public_ingress_rules) == 0
    error_message = "no public_tcp_ports: no security group of its own"
  }
  assert {
    condition     = output.security_group_ids == toset(["sg-0123456789abcdef0"])
    error_message = "the instance should carry exactly the groups it is given"
  }
  assert {
    condition     = aws_instance.this.tags == tomap({ Name = "web-1", Role = "app", AnsibleGroups = "app_servers" })
    error_message = "the instance's tags should name it, its role and its Ansible groups"
  }
}

run "public_ports_get_a_group_of_their_own" {
  command = apply
  variables {
    public_tcp_ports = [80, 443]
    public_cidrs     = ["0.0.0.0/0", "198.51.100.0/24"]
  }

  assert {
    condition     = toset(keys(output.public_ingress_rules)) == toset(["80/0.0.0.0/0", "443/0.0.0.0/0", "80/198.51.100.0/24", "443/198.51.100.0/24"])
    error_message = "one rule per port and CIDR"
  }
  assert {
    condition     = alltrue([for r in values(output.public_ingress_rules) : r.security_group_id == aws_security_group.public[0].id && r.from_port == r.to_port && r.ip_protocol == "tcp"])
    error_message = "the public rules belong to the server's own group, one TCP port each"
  }
  assert {
    condition     = output.security_group_ids == toset(["sg-0123456789abcdef0", aws_security_group.public[0].id])
    error_message = "the instance should carry its own public group too"
  }
}

run "ami_id_rejects_a_name" {
  command = plan
  variables {
    ami_id = "debian-12"
  }
  expect_failures = [var.ami_id]
}

run "role_is_app_or_monitoring" {
  command = plan
  variables {
    role = "database"
  }
  expect_failures = [var.role]
}

run "root_volume_has_a_floor" {
  command = plan
  variables {
    root_volume_size_gb = 4
  }
  expect_failures = [var.root_volume_size_gb]
}

run "public_ports_are_tcp_ports" {
  command = plan
  variables {
    public_tcp_ports = [65536]
  }
  expect_failures = [var.public_tcp_ports]
}
