# One EC2 instance, hardened as checkov expects: IMDSv2 only, encrypted root
# volume, detailed monitoring, EBS-optimised. Its reachability comes from the
# security groups it is given, plus (app servers) a group of its own for the
# application's public ports.

resource "aws_security_group" "public" {
  count = length(var.public_tcp_ports) > 0 ? 1 : 0

  name_prefix            = "${var.name}-public-"
  description            = "${var.name}: application ports open to the public"
  vpc_id                 = var.vpc_id
  revoke_rules_on_delete = true

  tags = { Name = "${var.name}-public" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "public" {
  for_each = {
    for pair in setproduct(var.public_tcp_ports, var.public_cidrs) : "${pair[0]}/${pair[1]}" => { port = pair[0], cidr = pair[1] }
  }

  security_group_id = aws_security_group.public[0].id
  description       = "${var.name} application port ${each.value.port} from ${each.value.cidr}"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr

  tags = { Name = "${var.name}-public-${each.value.port}" }
}

resource "aws_instance" "this" {
  ami                    = var.ami_id
  instance_type          = var.instance_type
  subnet_id              = var.subnet_id
  vpc_security_group_ids = concat(var.security_group_ids, aws_security_group.public[*].id)
  key_name               = var.key_name
  # checkov:skip=CKV_AWS_88: a public address is how operators reach SSH and users reach Grafana or the app; the security groups admit only what the policy allows.
  associate_public_ip_address = true
  # checkov:skip=CKV2_AWS_41: the agents and servers call no AWS API; an IAM role would be an empty grant to maintain.
  monitoring    = true
  ebs_optimized = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    encrypted             = true
    volume_type           = "gp3"
    volume_size           = var.root_volume_size_gb
    delete_on_termination = true
  }

  tags = {
    Name          = var.name
    Role          = var.role
    AnsibleGroups = join(",", var.ansible_groups)
  }

  lifecycle {
    # A newer AMI must not replace running servers by surprise; taint or
    # `terraform apply -replace` to rebuild one.
    ignore_changes = [ami]
  }
}
